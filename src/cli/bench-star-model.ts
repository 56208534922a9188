// `longctx bench-star-model`: the Star-model measurement (src/cluster/star-model-bench.ts) on H spawned host
// processes over a private loopback nats-server; rows as JSON lines while it runs, then a markdown table.
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { Cluster } from '../cluster/cluster.js';
import { benchStarModel, starModelBenchTable } from '../cluster/star-model-bench.js';
import { acquireDevice } from '../runtime/device.js';
import { backendOption, numberOption, parse, required } from './args.js';

export const BENCH_STAR_MODEL_USAGE = `usage: longctx bench-star-model --model F|random:llama-3.2-1b[:layers=L] --contexts 1K,2K [--hosts 4]
                                [--decode N] [--timeout S] [--out-dir D] [--backend cpu|webgpu] [--methods star,ring]
                                [--storage f32|f16]
  Time to first token and decode tokens/s of a model across H host processes (on --backend, default cpu):
  Star with blocks of N/16 (anchor = block) and of N/H, and Ring (exact), beside one process with flash on
  the same backend. On WebGPU hosts Star's and Ring's KV and flash run on the GPU (--methods star leaves
  Ring out). --storage f16 (WebGPU): every host and the baseline keep weights and KV
  in f16 (what travels over NATS stays f32).`;

const parseLength = (s: string) => {
  const m = /^(\d+)([kK]?)$/.exec(s.trim());
  if (!m) throw new InputError(`--contexts: '${s}' is not a length like 4096 or 4K`);
  return Number(m[1]) * (m[2] ? 1024 : 1);
};

export async function benchStarModelCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    model: { type: 'string' },
    contexts: { type: 'string' },
    hosts: { type: 'string' },
    decode: { type: 'string' },
    timeout: { type: 'string' },
    'out-dir': { type: 'string' },
    backend: { type: 'string' },
    methods: { type: 'string' },
    storage: { type: 'string' },
  });
  const storage = (v.storage as string | undefined) ?? 'f32';
  if (storage !== 'f32' && storage !== 'f16') throw new InputError(`--storage must be f32 or f16, got '${storage}'`);
  const methods = ((v.methods as string | undefined) ?? 'star,ring').split(',').map((m) => m.trim());
  if (!methods.length || methods.some((m) => m !== 'star' && m !== 'ring'))
    throw new InputError(`--methods takes star and/or ring, got '${String(v.methods)}'`);
  const backend = v.backend === undefined ? 'cpu' : backendOption(v);
  const contexts = required(v, 'contexts').split(',').map(parseLength);
  const hosts = numberOption(v, 'hosts') ?? 4;
  const out = (v['out-dir'] as string | undefined) ?? 'bench-out/star-model';
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'rows.jsonl'), '');
  const timeoutMs = (numberOption(v, 'timeout') ?? 60) * 1000;
  if (storage === 'f16' && backend !== 'webgpu')
    throw new InputError('--storage f16 is for WebGPU hosts: add --backend webgpu (CPU hosts keep f32)');
  const device = await acquireDevice(backend);
  const cluster = await Cluster.start({ hosts, backend: device.backend, storage, timeoutMs }).catch((e: Error) => {
    device.destroy();
    throw e;
  });
  try {
    const rows = await benchStarModel(cluster, {
      model: required(v, 'model'),
      contexts,
      decodeTokens: numberOption(v, 'decode') ?? 16,
      timeoutMs,
      gpu: device.gpu,
      storage,
      methods: methods as ('star' | 'ring')[],
      onRow: (r) => {
        appendFileSync(join(out, 'rows.jsonl'), `${JSON.stringify(r)}\n`);
        process.stderr.write(
          `bench-star-model: ${r.context} ${r.setting}: TTFT ${r.ttftMs.toFixed(0)} ms, ` +
            `decode ${r.decodeTokensPerS.toFixed(1)} tok/s` +
            (r.split
              ? `; per token, ms: ${Object.entries(r.split)
                  .map(([k, x]) => `${k.replace(/Ms$/, '')} ${x.toFixed(2)}`)
                  .join(', ')}`
              : '') +
            '\n',
        );
      },
    });
    const table = starModelBenchTable(rows);
    writeFileSync(join(out, 'star-model.md'), `${table}\n`);
    process.stdout.write(`${table}\n`);
  } finally {
    await cluster.close();
    device.destroy();
  }
}
