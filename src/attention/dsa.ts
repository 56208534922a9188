// DeepSeek Sparse Attention (DeepSeek-V3.2 tech report, sec. 2.1): the lightning indexer scores every visible
// key of each query token, the top-k keys per token are selected (shared by all heads of the token), and
// exact attention runs over those keys only: O(N k) attention instead of O(N^2), plus an O(N^2) indexer of
// a few small heads. Plan: select (CPU: dsa-select.ts row by row; WebGPU: fused radix select) -> gathered
// attention (sparse-gather-*) -> an attention state on the spine.
import { InputError, ShapeError, SpecError, UnsupportedError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Device } from '../runtime/device.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { prepareIndexer, type IndexerInputs, type IndexerPrecision } from '../kernels/dsa-indexer-cpu.js';
import { sparseGatherAttentionCpu, type GatheredKeys } from '../kernels/sparse-gather-cpu.js';
import { sparseGatherParams, sparseGatherWgsl } from '../kernels/sparse-gather-wgsl.js';
import { attentionShape, type AttentionOptions } from '../spine/problem.js';
import { runInHeadChunks, type GpuInputs } from './gpu-chunks.js';
import type { AttentionState } from '../spine/state.js';
import { readSelection, selectCpu, selectGpu, uploadIndexer, type SelectShape } from './dsa-select.js';
import { intParam, choiceParam, type MethodSpec } from './spec.js';
import { chooseLanes, DEFAULT_LANES, sparseLanesGpu, type SparseOptions } from './dsa-lanes.js';

export type { IndexerInputs, IndexerPrecision } from '../kernels/dsa-indexer-cpu.js';
export type { SelectShape } from './dsa-select.js';
export type { GatheredKeys } from '../kernels/sparse-gather-cpu.js';
export type { SparseOptions, SparseVariant } from './dsa-lanes.js';
export const DSA_DEFAULT_TOPK = 2048;

export interface DsaOptions extends AttentionOptions {
  /** The indexer's inputs: q [H_I, Nq, D_I], k [Nk, D_I], w [Nq, H_I]. Required. */
  index?: IndexerInputs;
  /** Keys per query token (default 2048); a token sees min(topk, visible keys). */
  topk?: number;
  /** int8 (default; one scale per vector, exact integer dots) or float (f32/f16 as given). */
  indexer?: IndexerPrecision;
}

/** The options a `dsa:topk=K,indexer=int8|float` spec sets. */
export function dsaOptionsFromSpec(spec: MethodSpec): Pick<DsaOptions, 'topk' | 'indexer'> {
  const topk = intParam(spec, 'topk', DSA_DEFAULT_TOPK);
  if (topk < 1) throw new SpecError('dsa: topk must be at least 1');
  return { topk, indexer: choiceParam(spec, 'indexer', ['int8', 'float'] as const, 'int8') };
}

/** Checks the indexer inputs against Nq and Nk; returns H_I and D_I. */
export function indexerShape(
  index: IndexerInputs | undefined,
  queries: number,
  keys: number,
): { heads: number; dim: number } {
  if (!index || !index.q || !index.k || !index.w) {
    throw new InputError(
      'dsa needs the indexer inputs: index = { q [H_I, Nq, D_I], k [Nk, D_I], w [Nq, H_I] } (attend: --index-q, --index-k, --index-w)',
    );
  }
  const { q, k, w } = index;
  if (q.shape.length !== 3 || k.shape.length !== 2 || w.shape.length !== 2) {
    throw new ShapeError(
      `indexer inputs must be q [H_I, Nq, D_I], k [Nk, D_I], w [Nq, H_I]; got q [${q.shape}], k [${k.shape}], w [${w.shape}]`,
    );
  }
  const [heads, nq, dim] = q.shape;
  if (nq !== queries) throw new ShapeError(`index q has ${nq} tokens but attention has ${queries} queries`);
  if (k.shape[0] !== keys) throw new ShapeError(`index k has ${k.shape[0]} tokens but attention has ${keys} keys`);
  if (k.shape[1] !== dim) throw new ShapeError(`index q dim ${dim} differs from index k dim ${k.shape[1]}`);
  if (w.shape[0] !== queries || w.shape[1] !== heads)
    throw new ShapeError(`index w must be [Nq, H_I] = [${queries}, ${heads}], got [${w.shape}]`);
  if (heads < 1 || dim < 1) throw new ShapeError('indexer heads and dim must be at least 1');
  return { heads, dim };
}

/**
 * Encodes the gathered-key attention over GPU-resident buffers (a chunk of heads; see gpu-chunks.ts).
 * keyStride: rows per KV head in x.k and x.v when they hold more than the visible keys (a decode cache).
 * Variant auto (default): the register-resident lanes kernel with split-KV (dsa-lanes.ts) where the
 * device's subgroups are wide enough, else the workgroup-memory tiles kernel.
 */
export async function sparseGatherGpu(
  gpu: GpuContext,
  x: GpuInputs,
  indices: GPUBuffer,
  width: number,
  keyStride = x.shape.keys,
  opts: SparseOptions = {},
): Promise<void> {
  const s = x.shape;
  const group = s.heads / s.kvHeads;
  const variant = opts.variant ?? 'auto';
  if (variant !== 'tiles') {
    const layout = await chooseLanes(gpu, s.headDim, group, opts.lanes);
    if (layout) return sparseLanesGpu(gpu, x, indices, width, keyStride, layout, opts.splits);
    if (variant === 'lanes')
      throw new UnsupportedError(
        `the lanes sparse kernel needs subgroups of at least ${opts.lanes ?? DEFAULT_LANES} lanes and head ` +
          `dim a multiple of ${4 * (opts.lanes ?? DEFAULT_LANES)} (group ${group}, dim ${s.headDim})`,
      );
  }
  const pipeline = await gpu.pipeline(`sparse-gather-${s.headDim}-${group}-${x.dtype}`, () =>
    sparseGatherWgsl(s.headDim, group, x.dtype),
  );
  const params = gpu.uniform(
    sparseGatherParams({
      queries: s.queries,
      keys: s.keys,
      group,
      causal: s.causal,
      scale: s.scale,
      width,
      headDim: s.headDim,
      keyStride,
    }),
  );
  const cols = Math.min(s.queries, gpu.maxWorkgroupsPerDim);
  const rows = Math.ceil(s.queries / cols);
  if (rows > gpu.maxWorkgroupsPerDim)
    throw new UnsupportedError(`${s.queries} query tokens exceed this device's dispatch grid`);
  const bound = gpu.bind(pipeline, [x.q, x.k, x.v, x.o, x.lse, indices, params]);
  await gpu.run('dsa sparse attention', (pass) => {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bound);
    pass.dispatchWorkgroups(cols, rows, s.kvHeads);
  });
  params.destroy();
}

export async function dsaAttention(
  device: Device,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: DsaOptions = {},
): Promise<AttentionState> {
  const s = attentionShape(q, k, v, opts);
  indexerShape(opts.index, s.queries, s.keys);
  const topk = opts.topk ?? DSA_DEFAULT_TOPK;
  if (!Number.isInteger(topk) || topk < 1) throw new SpecError(`dsa: topk must be a positive integer, got ${topk}`);
  const sel: SelectShape = { queries: s.queries, keys: s.keys, causal: s.causal, topk };
  const prepared = prepareIndexer(opts.index!, opts.indexer ?? 'int8');
  if (!device.gpu) return sparseGatherAttentionCpu(q, k, v, s, selectCpu(prepared, sel));
  const gpu = device.gpu;
  const ix = await uploadIndexer(gpu, prepared, opts.index!);
  let chosen: { indices: GPUBuffer; width: number } | undefined;
  try {
    chosen = await selectGpu(gpu, ix, sel);
    const { indices, width } = chosen;
    return await runInHeadChunks(gpu, q, k, v, s, (g, x) => sparseGatherGpu(g, x, indices, width));
  } finally {
    ix.release();
    if (chosen) gpu.release(chosen.indices);
  }
}

/** The keys DSA picks for each query token: [Nq, width] indices, on the CPU or (read back from) the GPU. */
export async function dsaSelect(
  device: Device,
  index: IndexerInputs,
  shape: SelectShape,
  precision: IndexerPrecision = 'int8',
): Promise<GatheredKeys> {
  indexerShape(index, shape.queries, shape.keys);
  const prepared = prepareIndexer(index, precision);
  if (!device.gpu) return selectCpu(prepared, shape);
  const ix = await uploadIndexer(device.gpu, prepared, index);
  try {
    const chosen = await selectGpu(device.gpu, ix, shape);
    try {
      return await readSelection(device.gpu, chosen, shape);
    } finally {
      device.gpu.release(chosen.indices);
    }
  } finally {
    ix.release();
  }
}

/** Exact attention over given key lists (from dsaSelect, or a trained indexer elsewhere). */
export async function attendSelected(
  device: Device,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  keys: GatheredKeys,
  opts: AttentionOptions & { sparse?: SparseOptions } = {},
): Promise<AttentionState> {
  const s = attentionShape(q, k, v, opts);
  if (keys.indices.length !== s.queries * keys.width)
    throw new ShapeError(
      `key lists of ${keys.indices.length} entries do not fit ${s.queries} queries x width ${keys.width}`,
    );
  for (let t = 0; t < s.queries; t++) {
    for (let e = 0; e < keys.count(t); e++) {
      const j = keys.indices[t * keys.width + e];
      if (!(j >= 0 && j < s.keys)) throw new InputError(`key list of query ${t} holds ${j}, outside 0..${s.keys - 1}`);
    }
  }
  if (!device.gpu) return sparseGatherAttentionCpu(q, k, v, s, keys);
  const gpu = device.gpu;
  const indices = await gpu.upload(keys.indices, 'dsa indices');
  try {
    return await runInHeadChunks(gpu, q, k, v, s, (g, x) =>
      sparseGatherGpu(g, x, indices, keys.width, s.keys, opts.sparse),
    );
  } finally {
    gpu.release(indices);
  }
}
