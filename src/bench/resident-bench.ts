// Times the resident CCA and DSA layers (attention/layers/cca-gpu.ts, dsa-gpu.ts) as one layer of a model
// (Llama-3.2-1B's attention shape by default: 32 query heads, 8 KV heads, head dim 64, f16) at long contexts,
// beside causal flash attention over the same shape in the same run: prefill in chunks up to the context,
// then single-token decode steps (per layer, per token), with the host reads and GPU creations of the decode
// steps (both must be 0). One command on the GPU machine: `longctx bench resident` (cli/bench-resident.ts).
import type { GpuContext } from '../runtime/webgpu.js';
import { CcaGpuLayer } from '../attention/layers/cca-gpu.js';
import { DsaGpuLayer } from '../attention/layers/dsa-gpu.js';
import type { LayerAttention } from '../attention/layer.js';
import { flashAttentionGpu } from '../attention/flash.js';
import { randomGpuBuffer } from './gpu-fill.js';
import type { DType } from '../tensor.js';
import { DEFAULT_DECIDE, type DecideVersion } from '../kernels/topk-decide-wgsl.js';

export interface ResidentShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  dtype: DType;
}

export interface ResidentRow {
  method: string;
  context: number;
  prefillMs: number;
  decodeMsPerToken: number;
  decodeHostReads: number;
  decodeCreations: number;
  cacheBytes: number;
  plan: string;
}

/** The training-free indexer's layout without weights: 4 rotary pairs per KV head (half RoPE layout). */
function benchIndexer(s: ResidentShape) {
  const pairs = 4;
  const channels = Array.from({ length: s.kvHeads }, (_, j) =>
    Int32Array.from({ length: 2 * pairs }, (_, c) => ((j + c) % pairs) + (c >= pairs ? s.headDim / 2 : 0)),
  );
  return { heads: s.kvHeads, dim: s.kvHeads * 2 * pairs, channels };
}

async function timeLayer(
  gpu: GpuContext,
  layer: LayerAttention<GPUBuffer>,
  s: ResidentShape,
  context: number,
  chunk: number,
  decode: number,
): Promise<Omit<ResidentRow, 'method' | 'context'>> {
  const f16 = s.dtype === 'f16';
  const q = await randomGpuBuffer(gpu, s.heads * chunk * s.headDim, f16, 1, 'bench q');
  const k = await randomGpuBuffer(gpu, s.kvHeads * chunk * s.headDim, f16, 2, 'bench k');
  const v = await randomGpuBuffer(gpu, s.kvHeads * chunk * s.headDim, f16, 3, 'bench v');
  const out = await gpu.createBuffer(s.heads * chunk * s.headDim * 4, 'bench out');
  try {
    let start = 0;
    const t0 = performance.now();
    while (start < context) {
      const tokens = Math.min(chunk, context - start);
      await layer.forward({ q, k, v, out, start, tokens });
      start += tokens;
    }
    await gpu.idle();
    const prefillMs = performance.now() - t0;
    for (let i = 0; i < 2; i++) await layer.forward({ q, k, v, out, start: start++, tokens: 1 });
    await gpu.idle();
    const before = { ...gpu.counters };
    const t1 = performance.now();
    for (let i = 0; i < decode; i++) await layer.forward({ q, k, v, out, start: start++, tokens: 1 });
    await gpu.idle();
    const decodeMsPerToken = (performance.now() - t1) / decode;
    const c = gpu.counters;
    return {
      prefillMs,
      decodeMsPerToken,
      decodeHostReads: c.hostReads - before.hostReads,
      decodeCreations:
        c.buffersCreated +
        c.uniformsCreated +
        c.bindGroupsCreated -
        before.buffersCreated -
        before.uniformsCreated -
        before.bindGroupsCreated,
      cacheBytes: layer.cacheBytes,
      plan: layer.plan,
    };
  } finally {
    for (const b of [q, k, v, out]) gpu.release(b);
  }
}

/** Causal flash prefill over the whole context and one decode query over it (the same shape). */
async function timeFlash(
  gpu: GpuContext,
  s: ResidentShape,
  context: number,
): Promise<Omit<ResidentRow, 'method' | 'context'>> {
  const f16 = s.dtype === 'f16';
  const bufs: GPUBuffer[] = [];
  const make = async (n: number, seed: number, label: string) => {
    bufs.push(await randomGpuBuffer(gpu, n, f16, seed, label));
    return bufs[bufs.length - 1];
  };
  try {
    const q = await make(s.heads * context * s.headDim, 1, 'flash q');
    const k = await make(s.kvHeads * context * s.headDim, 2, 'flash k');
    const v = await make(s.kvHeads * context * s.headDim, 3, 'flash v');
    const o = await gpu.createBuffer(s.heads * context * s.headDim * 4, 'flash o');
    const lse = await gpu.createBuffer(s.heads * context * 4, 'flash lse');
    bufs.push(o, lse);
    const run = async (queries: number) => {
      const shape = { ...s, queries, keys: context, causal: true, scale: 1 / Math.sqrt(s.headDim) };
      await flashAttentionGpu(gpu, { q, k, v, o, lse, shape, dtype: s.dtype });
      await gpu.idle();
    };
    await run(1);
    const t0 = performance.now();
    await run(context);
    const prefillMs = performance.now() - t0;
    const t1 = performance.now();
    for (let i = 0; i < 8; i++) await run(1);
    const decodeMsPerToken = (performance.now() - t1) / 8;
    return {
      prefillMs,
      decodeMsPerToken,
      decodeHostReads: 0,
      decodeCreations: -1,
      cacheBytes: 2 * s.kvHeads * context * s.headDim * (f16 ? 2 : 4),
      plan: 'flash (attention/flash.ts default variant; decode: one query row, no split-KV)',
    };
  } finally {
    bufs.forEach((b) => gpu.release(b));
  }
}

export interface ResidentBenchOptions {
  shape: ResidentShape;
  contexts: number[];
  chunk: number;
  decode: number;
  /** flash, cca, dsa. */
  methods: string[];
  /** DSA's decide versions, one row each (default: the default version). */
  decide?: readonly DecideVersion[];
  /** CCA's group and window (16 and 1024). */
  group?: number;
  window?: number;
  log?: (line: string) => void;
}

/** Each method at each context, in that order. */
export async function benchResident(gpu: GpuContext, o: ResidentBenchOptions): Promise<ResidentRow[]> {
  const s = o.shape;
  const rows: ResidentRow[] = [];
  for (const context of o.contexts) {
    const runs: Array<{ method: string; decide?: DecideVersion }> = o.methods.flatMap((method) =>
      method === 'dsa' ? (o.decide ?? [DEFAULT_DECIDE]).map((decide) => ({ method, decide })) : [{ method }],
    );
    for (const { method, decide } of runs) {
      const maxTokens = context + o.decode + 2;
      const opts = { ...s, maxTokens, maxChunk: o.chunk };
      let result: Omit<ResidentRow, 'method' | 'context'>;
      let spec = method;
      if (method === 'flash') result = await timeFlash(gpu, s, context);
      else {
        const layer =
          method === 'cca'
            ? await CcaGpuLayer.create(gpu, { ...opts, group: o.group ?? 16, window: o.window ?? 1024 })
            : await DsaGpuLayer.create(gpu, {
                ...opts,
                topk: 2048,
                precision: 'int8',
                sinks: 4,
                local: 64,
                indexer: benchIndexer(s),
                decide,
              });
        spec = layer.spec;
        try {
          result = await timeLayer(gpu, layer, s, context, o.chunk, o.decode);
        } finally {
          layer.destroy();
        }
      }
      const row = { method: spec, context, ...result };
      rows.push(row);
      o.log?.(
        `${spec} @ ${context}: prefill ${row.prefillMs.toFixed(1)} ms, decode ${row.decodeMsPerToken.toFixed(3)} ms/token/layer, ` +
          `decode reads ${row.decodeHostReads}, creations ${row.decodeCreations}`,
      );
    }
  }
  return rows;
}

/** The rows as a markdown table, with the cache against a dense cache of the same context. */
export function residentTable(rows: ResidentRow[], s: ResidentShape): string {
  const dense = (n: number) => 2 * s.kvHeads * n * s.headDim * (s.dtype === 'f16' ? 2 : 4);
  return [
    '| method | context | prefill ms | decode ms/token (one layer) | decode reads | decode creations | cache MiB | cache / dense |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.method} | ${r.context} | ${r.prefillMs.toFixed(1)} | ${r.decodeMsPerToken.toFixed(3)} | ` +
        `${r.decodeHostReads} | ${r.decodeCreations} | ${(r.cacheBytes / 2 ** 20).toFixed(1)} | ` +
        `${((100 * r.cacheBytes) / dense(r.context)).toFixed(2)}% |`,
    ),
  ].join('\n');
}
