// The Star-model measurement (issue 16): for each context, time to first token and decode speed of a model
// spread over H host processes with Star (blocks of N/16 with the anchor a block; blocks of N/4, one per
// host) and Ring, beside one process with flash, on the same random prompt; the query host's wait per
// layer and the bytes moved. Greedy ids are compared with one process (Ring must agree; Star's agreement
// is the accuracy it costs). Hosts run on the backend they were started with (`--backend`); on WebGPU a
// host's model matrices run on the device, Star's and Ring's KV and flash too (star-model-host.ts);
// the one-process baseline runs flash on the same backend as the hosts, in the same
// storage (f16: weights and KV in f16 on every device; what travels over NATS stays f32).
import { uniformSchedule } from '../attention/sparse.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { CpuDecoder } from '../model/forward/decoder-cpu.js';
import { GpuDecoder } from '../model/forward/decoder-gpu.js';
import type { Decoder } from '../model/forward/decoder-cpu.js';
import type { Cluster } from './cluster.js';
import { DistributedDecoder } from './star-model.js';
import type { Phase2Split } from '../model/caches/remote-layer.js';
import { modelHash, type ModelStorage } from './star-model-hash.js';
import { loadModelSource } from './star-model-host.js';

export interface StarModelBenchOptions {
  model: string;
  contexts: number[];
  decodeTokens: number;
  /** The settings to run across hosts (default both). */
  methods?: ('star' | 'ring')[];
  timeoutMs: number;
  /** The one-process baseline's GPU (hosts on WebGPU); absent: the baseline runs on the CPU. */
  gpu?: GpuContext;
  /** Every decoder's storage (f16: WebGPU only; default f32). */
  storage?: ModelStorage;
  /** Called with each finished row (so a run cut short keeps what it measured). */
  onRow(row: StarModelBenchRow): void;
}

export interface StarModelBenchRow {
  context: number;
  setting: string;
  hosts: number;
  ttftMs: number;
  decodeTokensPerS: number;
  /** The query host's wait per generated token, all layers (ms). */
  waitMsPerToken?: number;
  bytes?: number;
  phase1Ms?: number[];
  /** The query host's phase-2 time per generated token by component, all layers (ms; remote-layer.ts). */
  split?: Record<string, number>;
  /** Greedy ids equal to one process with flash. */
  sameIdsAsFlash: boolean;
}

const argmax = (x: Float32Array) => {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
};

/** TTFT and decode of one decoder: the prompt's forward, then greedy tokens one by one. */
async function timeDecoder(d: Decoder, ids: number[], tokens: number) {
  const t0 = performance.now();
  let logits = await d.forward(ids);
  const ttftMs = performance.now() - t0;
  const out = [argmax(logits)];
  const t1 = performance.now();
  for (let i = 1; i < tokens; i++) {
    logits = await d.forward([out[out.length - 1]]);
    out.push(argmax(logits));
  }
  const s = (performance.now() - t1) / 1000;
  return { ttftMs, decodeTokensPerS: s > 0 ? (tokens - 1) / s : 0, ids: out };
}

export async function benchStarModel(cluster: Cluster, o: StarModelBenchOptions): Promise<StarModelBenchRow[]> {
  const model = loadModelSource(o.model);
  const storage = o.storage ?? 'f32';
  const hash = modelHash(model, storage);
  const H = cluster.hosts.length;
  const rows: StarModelBenchRow[] = [];
  const push = (r: StarModelBenchRow) => {
    rows.push(r);
    o.onRow(r);
  };
  for (const N of o.contexts) {
    let seed = N;
    const ids = Array.from({ length: N }, () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return 3 + (seed % (model.config.vocabSize - 3));
    });
    const one = { maxTokens: N + o.decodeTokens, chunk: 512, storage };
    const flash = o.gpu
      ? await GpuDecoder.create(o.gpu, model, uniformSchedule('flash'), one)
      : new CpuDecoder(model, uniformSchedule('flash'), one);
    const f = await timeDecoder(flash, ids, o.decodeTokens).finally(() => flash.destroy());
    push({
      context: N,
      setting: `flash, one process (${o.gpu ? `webgpu, ${storage}` : 'cpu'})`,
      hosts: 1,
      ...f,
      sameIdsAsFlash: true,
    });
    const settings = [
      { setting: `star blocks N/16 (${N / 16}), anchor = block`, method: 'star' as const, block: N / 16 },
      { setting: `star blocks N/${H} (${N / H}), anchor = block`, method: 'star' as const, block: N / H },
      { setting: 'ring (exact)', method: 'ring' as const, block: N },
    ];
    for (const s of settings.filter((x) => (o.methods ?? ['star', 'ring']).includes(x.method))) {
      const block = Math.max(1, Math.floor(s.block));
      const d = await DistributedDecoder.start(cluster, {
        model: o.model,
        hash,
        storage,
        config: model.config,
        plan: {
          method: s.method,
          block,
          anchor: block,
          query: 0,
          promptTokens: N,
          newTokens: o.decodeTokens,
          chunk: 512,
        },
        timeoutMs: o.timeoutMs,
      });
      try {
        const r = await timeDecoder(d, ids, o.decodeTokens);
        const t = d.timings;
        push({
          context: N,
          setting: s.setting,
          hosts: H,
          ttftMs: r.ttftMs,
          decodeTokensPerS: r.decodeTokensPerS,
          waitMsPerToken: t.waitMs.reduce((a, b) => a + b, 0) / Math.max(1, t.steps),
          bytes: t.hostBytes.reduce((a, b) => a + b, 0),
          phase1Ms: t.phase1Ms,
          split: perStep(t.split, t.steps),
          sameIdsAsFlash: r.ids.every((id, i) => id === f.ids[i]),
        });
      } finally {
        d.destroy();
      }
    }
  }
  return rows;
}

/** A split's times per forward (rounded to microseconds). */
function perStep(s: Phase2Split, steps: number): Record<string, number> {
  const { steps: _, ...times } = s;
  return Object.fromEntries(
    Object.entries(times).map(([k, v]) => [k, Math.round((v / Math.max(1, steps)) * 1000) / 1000]),
  );
}

/** A markdown table of the rows, with Star's TTFT speed-up over Ring per context. */
export function starModelBenchTable(rows: StarModelBenchRow[]): string {
  const lines = [
    '| context | setting | hosts | TTFT ms | vs ring | decode tok/s | wait ms/token | MiB moved | ids = flash |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const r of rows) {
    const ring = rows.find((x) => x.context === r.context && x.setting.startsWith('ring'));
    lines.push(
      `| ${r.context} | ${r.setting} | ${r.hosts} | ${r.ttftMs.toFixed(0)} | ` +
        `${ring ? (ring.ttftMs / r.ttftMs).toFixed(2) : '-'}x | ${r.decodeTokensPerS.toFixed(1)} | ` +
        `${r.waitMsPerToken?.toFixed(2) ?? '-'} | ${r.bytes !== undefined ? (r.bytes / 2 ** 20).toFixed(1) : '-'} | ` +
        `${r.sameIdsAsFlash ? 'yes' : 'no'} |`,
    );
  }
  return lines.join('\n');
}
