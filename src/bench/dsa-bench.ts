// Times DSA on WebGPU with its parts apart: the indexer (one scoring pass over all visible keys), the
// selection (the whole fused radix select, minus that one pass), and the attention over the gathered keys;
// against flash attention over all keys for the same queries (prefill: Nq = N; decode: Nq = 1, which is
// dense decoding). Inputs are random and stay on the device; the indexer has H_I heads of D_I dims.
import { flashAttentionGpu } from '../attention/flash.js';
import { dsaAttention, dsaOptionsFromSpec, sparseGatherGpu, type SparseVariant } from '../attention/dsa.js';
import type { MethodSpec } from '../attention/spec.js';
import type { Device } from '../runtime/device.js';
import { scoreOnceGpu, selectGpu, type GpuIndexer, type SelectShape } from '../attention/dsa-select.js';
import { kvHeadsPerChunk, type GpuInputs } from '../attention/gpu-chunks.js';
import type { AttentionShape } from '../spine/problem.js';
import type { IndexerPrecision } from '../kernels/dsa-indexer-cpu.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { bytesPerElement, randomNormal, tensor, type DType } from '../tensor.js';
import { DsaGpuKVCache } from '../attention/dsa-gpu-cache.js';
import { randomGpuBuffer } from './gpu-fill.js';

export interface DsaBenchCase {
  seqLen: number;
  /** seqLen for prefill, 1 for a decode step. */
  queries: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  dtype: DType;
  topk: number;
  indexHeads: number;
  indexDim: number;
  precision: IndexerPrecision;
  /** Also time the previous kernels (tiles attention, unaggregated selection) for a before/after table. */
  compareOld?: boolean;
}

export interface DsaTimes {
  indexerMs: number;
  selectionMs: number;
  attentionMs: number;
  /** select + attention, as one call runs them */
  ms: number;
  peakBytes: number;
  /** The previous kernels, when compareOld: tiles attention and the selection without subgroup aggregation. */
  attentionOldMs?: number;
  selectionOldMs?: number;
  /** The selection with aggregated atomics but no sample pass (where the device has subgroups). */
  selectionAggregateOnlyMs?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timed(reps: number, warmup: number, f: () => Promise<void>): Promise<number> {
  for (let i = 0; i < warmup; i++) await f();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await f();
    times.push(performance.now() - t0);
  }
  return median(times);
}

function shapeOf(c: DsaBenchCase): AttentionShape {
  return {
    heads: c.heads,
    kvHeads: c.kvHeads,
    queries: c.queries,
    keys: c.seqLen,
    headDim: c.headDim,
    causal: true,
    scale: 1 / Math.sqrt(c.headDim),
  };
}

/** q/k/v/o/lse per chunk of KV heads (no buffer above one binding). */
async function attentionInputs(gpu: GpuContext, c: DsaBenchCase, owned: GPUBuffer[]): Promise<GpuInputs[]> {
  const s = shapeOf(c);
  const f16 = c.dtype === 'f16';
  const group = s.heads / s.kvHeads;
  const step = kvHeadsPerChunk(s, bytesPerElement(c.dtype), gpu.maxBindingBytes);
  const chunks: GpuInputs[] = [];
  for (let a = 0; a < s.kvHeads; a += step) {
    const kv = Math.min(step, s.kvHeads - a);
    const shape = { ...s, kvHeads: kv, heads: kv * group };
    const bufs = [
      await randomGpuBuffer(gpu, shape.heads * s.queries * s.headDim, f16, 3 * a + 1, 'q'),
      await randomGpuBuffer(gpu, kv * s.keys * s.headDim, f16, 3 * a + 2, 'k'),
      await randomGpuBuffer(gpu, kv * s.keys * s.headDim, f16, 3 * a + 3, 'v'),
      await gpu.createBuffer(shape.heads * s.queries * s.headDim * 4, 'o'),
      await gpu.createBuffer(shape.heads * s.queries * 4, 'lse'),
    ];
    owned.push(...bufs);
    chunks.push({ q: bufs[0], k: bufs[1], v: bufs[2], o: bufs[3], lse: bufs[4], shape, dtype: c.dtype });
  }
  return chunks;
}

/** Random indexer inputs on the device, in the layout of the chosen precision. */
async function randomIndexer(gpu: GpuContext, c: DsaBenchCase, owned: GPUBuffer[]): Promise<GpuIndexer> {
  const up = async (data: ArrayBufferView, label: string) => {
    const b = await gpu.upload(data, label);
    owned.push(b);
    return b;
  };
  const weights = randomNormal([c.queries, c.indexHeads], 7).data as Float32Array;
  if (c.precision === 'int8') {
    const words = Math.ceil(c.indexDim / 4);
    const randomWords = (n: number, seed: number) => {
      let x = seed >>> 0;
      return Uint32Array.from({ length: n }, () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0));
    };
    const buffers = [
      await up(randomWords(c.indexHeads * c.queries * words, 1), 'index q int8'),
      await up(randomWords(c.seqLen * words, 2), 'index k int8'),
      await up(weights, 'index weights'),
      await up(new Float32Array(c.seqLen).fill(1 / 127), 'index k scales'),
    ];
    return { precision: 'int8', dtype: 'f32', heads: c.indexHeads, dim: c.indexDim, buffers, release: () => {} };
  }
  const f16 = c.dtype === 'f16';
  const buffers = [
    await randomGpuBuffer(gpu, c.indexHeads * c.queries * c.indexDim, f16, 11, 'index q'),
    await randomGpuBuffer(gpu, c.seqLen * c.indexDim, f16, 12, 'index k'),
    await up(weights, 'index weights'),
  ];
  owned.push(buffers[0], buffers[1]);
  return { precision: 'float', dtype: c.dtype, heads: c.indexHeads, dim: c.indexDim, buffers, release: () => {} };
}

export async function timeDsaGpu(gpu: GpuContext, c: DsaBenchCase, reps: number, warmup: number): Promise<DsaTimes> {
  const owned: GPUBuffer[] = [];
  const before = gpu.allocatedBytes;
  gpu.resetPeak();
  let scorer: { run: () => Promise<void>; release: () => void } | undefined;
  try {
    const chunks = await attentionInputs(gpu, c, owned);
    const ix = await randomIndexer(gpu, c, owned);
    const sel: SelectShape = { queries: c.queries, keys: c.seqLen, causal: true, topk: c.topk };
    scorer = await scoreOnceGpu(gpu, ix, sel);
    const indexerMs = await timed(reps, warmup, scorer.run);
    scorer.release();
    scorer = undefined;
    const chosen = await selectGpu(gpu, ix, sel);
    owned.push(chosen.indices);
    const selectMs = await timed(reps, warmup, async () => {
      const again = await selectGpu(gpu, ix, sel);
      await gpu.idle();
      gpu.release(again.indices);
    });
    const attend = (variant: SparseVariant) => async () => {
      for (const x of chunks) await sparseGatherGpu(gpu, x, chosen.indices, chosen.width, x.shape.keys, { variant });
      await gpu.idle();
    };
    const attentionMs = await timed(reps, warmup, attend('auto'));
    const out: DsaTimes = {
      indexerMs,
      selectionMs: Math.max(0, selectMs - indexerMs),
      attentionMs,
      ms: selectMs + attentionMs,
      peakBytes: gpu.peakBytes - before,
    };
    if (c.compareOld) {
      // The old kernels are slow at long prefills: one timed run there.
      const [r, w] = c.queries > 16384 ? [1, 0] : [reps, warmup];
      out.attentionOldMs = await timed(r, w, attend('tiles'));
      const oldSelectMs = await timed(r, w, async () => {
        const again = await selectGpu(gpu, ix, sel, { aggregate: false, sample: false });
        await gpu.idle();
        gpu.release(again.indices);
      });
      out.selectionOldMs = Math.max(0, oldSelectMs - indexerMs);
      const aggregateOnlyMs = await timed(r, w, async () => {
        const again = await selectGpu(gpu, ix, sel, { aggregate: true, sample: false });
        await gpu.idle();
        gpu.release(again.indices);
      });
      out.selectionAggregateOnlyMs = Math.max(0, aggregateOnlyMs - indexerMs);
    }
    return out;
  } finally {
    scorer?.release();
    owned.forEach((b) => gpu.release(b));
  }
}

/** Flash attention over all keys for the same queries: the dense baseline (Nq = 1: dense decoding). */
export async function timeFlashGpu(gpu: GpuContext, c: DsaBenchCase, reps: number, warmup: number): Promise<number> {
  const owned: GPUBuffer[] = [];
  try {
    const chunks = await attentionInputs(gpu, c, owned);
    return await timed(reps, warmup, async () => {
      for (const x of chunks) await flashAttentionGpu(gpu, x, 'auto');
      await gpu.idle();
    });
  } finally {
    owned.forEach((b) => gpu.release(b));
  }
}

/** Query-key pairs DSA attends over N causal tokens: sum over t of min(topk, t + 1). */
export function dsaAttendedPairs(n: number, topk: number): number {
  const ramp = Math.min(n, topk);
  return (ramp * (ramp + 1)) / 2 + Math.max(0, n - topk) * topk;
}

/** A `bench attention --method dsa[:topk=K,indexer=P]` row (prefill): the parts go into the note. */
export async function benchDsaPrefill(
  device: Device,
  spec: MethodSpec,
  c: { seqLen: number; heads: number; kvHeads: number; headDim: number; dtype: DType },
  reps: number,
  warmup: number,
): Promise<{ ms: number; peak: number; variant: string; note: string }> {
  const { topk, indexer } = dsaOptionsFromSpec(spec);
  const dc: DsaBenchCase = { ...c, queries: c.seqLen, topk: topk!, indexHeads: 4, indexDim: 64, precision: indexer! };
  if (device.gpu) {
    const r = await timeDsaGpu(device.gpu, dc, reps, warmup);
    return {
      ms: r.ms,
      peak: r.peakBytes,
      variant: `indexer-${indexer}`,
      note: `indexer ${r.indexerMs.toFixed(2)} ms, selection ${r.selectionMs.toFixed(2)} ms, attention ${r.attentionMs.toFixed(2)} ms`,
    };
  }
  const q = randomNormal([c.heads, c.seqLen, c.headDim], 1, c.dtype);
  const k = randomNormal([c.kvHeads, c.seqLen, c.headDim], 2, c.dtype);
  const v = randomNormal([c.kvHeads, c.seqLen, c.headDim], 3, c.dtype);
  const index = {
    q: randomNormal([4, c.seqLen, 64], 4),
    k: randomNormal([c.seqLen, 64], 5),
    w: randomNormal([c.seqLen, 4], 6),
  };
  const ms = await timed(reps, warmup, async () => {
    await dsaAttention(device, q, k, v, { index, topk, indexer });
  });
  return {
    ms,
    peak: q.data.byteLength + k.data.byteLength + v.data.byteLength,
    variant: `js-indexer-${indexer}`,
    note: '',
  };
}

/**
 * One decode step through the device-resident cache, as a model would run it: upload the new token's
 * query, index query and weights, select, attend, read the state back. The cache holds c.seqLen tokens
 * (constant K/V, which do not change the speed; random index keys, which decide the selection).
 */
export async function timeDsaCacheDecodeGpu(
  gpu: GpuContext,
  c: DsaBenchCase,
  reps: number,
  warmup: number,
): Promise<number> {
  const cache = await DsaGpuKVCache.create(gpu, c.kvHeads, c.headDim, c.indexDim, c.seqLen, c.dtype, c.precision);
  try {
    const n = c.kvHeads * c.seqLen * c.headDim;
    const kv =
      c.dtype === 'f16'
        ? tensor([c.kvHeads, c.seqLen, c.headDim], 'f16', new Uint16Array(n).fill(0x3c00))
        : tensor([c.kvHeads, c.seqLen, c.headDim], 'f32', new Float32Array(n).fill(1));
    cache.append(kv, kv, randomNormal([c.seqLen, c.indexDim], 9));
    const q = randomNormal([c.heads, 1, c.headDim], 10, c.dtype);
    const iq = randomNormal([c.indexHeads, 1, c.indexDim], 11);
    const iw = randomNormal([1, c.indexHeads], 12);
    return await timed(reps, warmup, async () => {
      await cache.attend(q, iq, iw, { topk: c.topk });
    });
  } finally {
    cache.destroy();
  }
}
