// DSA's key selection: the lightning indexer's top-k keys per query token, on the CPU (row by row: scores of
// one row, then radix select) or on WebGPU (scores recomputed in each radix pass, never stored: topk-wgsl.ts).
import { UnsupportedError } from '../errors.js';
import { toDType } from '../tensor.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { indexRowScores, packInt8, type IndexerPrecision, type PreparedIndexer } from '../kernels/dsa-indexer-cpu.js';
import { indexerBlockQueries } from '../kernels/dsa-indexer-wgsl.js';
import { radixSelectRow, sampleStride, TOPK_MAX_PASSES, TOPK_MAX_PASSES_SAMPLED } from '../kernels/topk-cpu.js';
import { SELECTION_SCRATCH, STATE_WORDS, TOPK_THREADS, topkParams, topkPassWgsl } from '../kernels/topk-wgsl.js';
import { DEFAULT_DECIDE, decideGroups, topkDecideWgsl, type DecideVersion } from '../kernels/topk-decide-wgsl.js';
import type { GatheredKeys } from '../kernels/sparse-gather-cpu.js';
import { lastVisibleKey as indexLimit } from '../spine/problem.js';
import type { IndexerInputs } from '../kernels/dsa-indexer-cpu.js';
import { scratchBuffer, type Scratch } from './dsa-scratch.js';
import { wrapGrid } from './layers/gpu-binds.js';

export interface SelectShape {
  queries: number;
  keys: number;
  causal: boolean;
  topk: number;
}

/** Row width of the index list: min(topk, Nk). */
export function selectionWidth(s: SelectShape): number {
  return Math.max(1, Math.min(s.topk, s.keys));
}

function countFn(s: SelectShape, width: number): (t: number) => number {
  return (t) => Math.min(width, Math.max(0, indexLimit(s.queries, s.keys, s.causal, t) + 1));
}

export function selectCpu(p: PreparedIndexer, s: SelectShape): GatheredKeys {
  const width = selectionWidth(s);
  const indices = new Int32Array(s.queries * width);
  const scores = new Float32Array(s.keys);
  for (let t = 0; t < s.queries; t++) {
    const visible = Math.max(0, indexLimit(s.queries, s.keys, s.causal, t) + 1);
    indexRowScores(p, t, visible, scores);
    radixSelectRow(scores, visible, s.topk, indices, t * width, width, sampleStride(width));
  }
  return { indices, width, count: countFn(s, width) };
}

/** The indexer's inputs uploaded in the layout its kernels read. */
export interface GpuIndexer {
  precision: IndexerPrecision;
  dtype: 'f32' | 'f16';
  heads: number;
  dim: number;
  buffers: GPUBuffer[];
  release(): void;
}

export async function uploadIndexer(gpu: GpuContext, p: PreparedIndexer, index: IndexerInputs): Promise<GpuIndexer> {
  const owned: GPUBuffer[] = [];
  const up = async (data: ArrayBufferView, label: string) => {
    const b = await gpu.upload(data, label);
    owned.push(b);
    return b;
  };
  let dtype: 'f32' | 'f16' = 'f32';
  if (p.precision === 'int8') {
    await up(packInt8(p.q8!).packed, 'index q int8');
    await up(packInt8(p.k8!).packed, 'index k int8');
    await up(p.weights, 'index weights');
    await up(p.k8!.scales, 'index k scales');
  } else {
    dtype = index.q.dtype === 'f16' && gpu.features.f16 && index.k.dtype === 'f16' ? 'f16' : 'f32';
    await up(toDType(index.q, dtype).data, 'index q');
    await up(toDType(index.k, dtype).data, 'index k');
    await up(p.weights, 'index weights');
  }
  return {
    precision: p.precision,
    dtype,
    heads: p.heads,
    dim: p.dim,
    buffers: owned,
    release: () => owned.forEach((b) => gpu.release(b)),
  };
}

/**
 * Records init + TOPK_MAX_PASSES (sampled: TOPK_MAX_PASSES_SAMPLED) x (pass, decide) and returns the [Nq, width] index buffer (caller releases).
 * Temporaries: state, counters, a 256-bin histogram and TOPK_CANDIDATES candidates per query token.
 */
/** Keys per thread and scoring pass at least, when the keys are split over workgroups. */
export const SELECT_KEYS_PER_THREAD = 2;
/** Workgroups a scoring pass aims at. */
export const SELECT_FILL_WORKGROUPS = 2048;

/** Few query blocks (decoding): the keys are split over workgroups so that the GPU fills up. */
export function selectSplits(gpu: GpuContext, s: SelectShape, blocks: number): number {
  return Math.max(
    1,
    Math.min(
      Math.ceil(s.keys / (TOPK_THREADS * SELECT_KEYS_PER_THREAD)),
      Math.ceil(SELECT_FILL_WORKGROUPS / blocks),
      gpu.maxWorkgroupsPerDim,
    ),
  );
}

export interface SelectOptions {
  /** Subgroup-aggregated atomics in the scoring passes (default off: slower than plain ones on the H100). */
  aggregate?: boolean;
  /** A sample pass guesses the first digit (kernels/topk-cpu.ts sampleStride; default off). */
  sample?: boolean;
  /** The decide step's version (kernels/topk-decide-wgsl.ts; default DEFAULT_DECIDE). */
  decide?: DecideVersion;
}

/** The decide step's pipeline for a version (one pipeline key per version). */
export function decidePipeline(gpu: GpuContext, version: DecideVersion): Promise<GPUComputePipeline> {
  return gpu.pipeline(`dsa-topk-decide-${version}`, () => topkDecideWgsl(version));
}

function passPipeline(gpu: GpuContext, ix: GpuIndexer, opts: SelectOptions): Promise<GPUComputePipeline> {
  const aggregate = (opts.aggregate ?? false) && gpu.features.subgroups;
  const shape = { precision: ix.precision, dtype: ix.dtype, heads: ix.heads, dim: ix.dim };
  return gpu.pipeline(
    `dsa-topk-pass-${ix.precision}-${ix.dtype}-${ix.heads}-${ix.dim}${aggregate ? '-aggregate' : ''}`,
    () => topkPassWgsl(shape, aggregate),
  );
}

export async function selectGpu(
  gpu: GpuContext,
  ix: GpuIndexer,
  s: SelectShape,
  opts: SelectOptions = {},
): Promise<{ indices: GPUBuffer; width: number }> {
  const width = selectionWidth(s);
  const shape = { precision: ix.precision, dtype: ix.dtype, heads: ix.heads, dim: ix.dim };
  const bq = indexerBlockQueries(shape);
  const blocks = Math.ceil(s.queries / bq);
  if (blocks > gpu.maxWorkgroupsPerDim)
    throw new UnsupportedError(
      `${s.queries} query tokens need ${blocks} indexer workgroups in one dimension; this device allows ${gpu.maxWorkgroupsPerDim}`,
    );
  const splits = selectSplits(gpu, s, blocks);
  const pass = await passPipeline(gpu, ix, opts);
  const decideVersion = opts.decide ?? DEFAULT_DECIDE;
  const decide = await decidePipeline(gpu, decideVersion);
  const scratch: Scratch[] = [];
  const temps: GPUBuffer[] = [];
  const indices = await gpu.createBuffer(s.queries * width * 4, 'dsa indices');
  try {
    for (const [label, words] of SELECTION_SCRATCH) {
      const t = await scratchBuffer(gpu, s.queries * words * 4, `dsa select ${label}`);
      scratch.push(t);
      temps.push(t.buffer);
      // State mode 0 = init and an empty histogram to start (a finished run leaves the histogram empty;
      // zeroed anyway); counters are set by init, candidates written before they are read.
      if (!t.fresh && (label === 'state' || label === 'histogram'))
        gpu.write(t.buffer, 0, new Uint32Array(s.queries * words));
    }
    // Plain radix passes are the default: on the H100 (docs/BENCHMARKS.md) plain atomics without the
    // sample pass were fastest at every length (128K: 524 ms, sampled 544, aggregated 679). Both
    // options stay for devices where atomics contend more; they select the same keys.
    const sampled = opts.sample ?? false;
    const stride = sampled ? sampleStride(width) : 0;
    const params = gpu.uniform(
      topkParams({ queries: s.queries, keys: s.keys, causal: s.causal, width, splits, stride }),
    );
    const sel = [...temps, indices];
    const passGroup = gpu.bind(pass, [params, ...ix.buffers, ...sel]);
    const decideGroup = gpu.bind(decide, [params, ...sel]);
    const [dx, dy] = wrapGrid(gpu, decideGroups(decideVersion, s.queries));
    await gpu.run('dsa select', (enc) => {
      const runDecide = () => {
        enc.setPipeline(decide);
        enc.setBindGroup(0, decideGroup);
        enc.dispatchWorkgroups(dx, dy);
      };
      runDecide();
      for (let i = 0; i < (stride ? TOPK_MAX_PASSES_SAMPLED : TOPK_MAX_PASSES); i++) {
        enc.setPipeline(pass);
        enc.setBindGroup(0, passGroup);
        enc.dispatchWorkgroups(blocks, splits);
        runDecide();
      }
    });
    params.destroy();
  } catch (e) {
    gpu.release(indices);
    throw e;
  } finally {
    scratch.forEach((t) => t.release());
  }
  return { indices, width };
}

/** Reads a selection back (tests, the CLI's checks). */
export async function readSelection(
  gpu: GpuContext,
  sel: { indices: GPUBuffer; width: number },
  s: SelectShape,
): Promise<GatheredKeys> {
  const indices = new Int32Array(await gpu.read(sel.indices, s.queries * sel.width * 4));
  return { indices, width: sel.width, count: countFn(s, sel.width) };
}

/**
 * One scoring pass of the select kernel with every token histogramming its first digit: the indexer's own
 * cost (all Nq x visible scores computed once, nothing written but 256 bins per token). For benchmarks.
 */
export async function scoreOnceGpu(
  gpu: GpuContext,
  ix: GpuIndexer,
  s: SelectShape,
  opts: SelectOptions = {},
): Promise<{ run: () => Promise<void>; release: () => void }> {
  const width = selectionWidth(s);
  const shape = { precision: ix.precision, dtype: ix.dtype, heads: ix.heads, dim: ix.dim };
  const blocks = Math.ceil(s.queries / indexerBlockQueries(shape));
  const splits = selectSplits(gpu, s, blocks);
  const pass = await passPipeline(gpu, ix, opts);
  const state = new Uint32Array(s.queries * STATE_WORDS);
  for (let t = 0; t < s.queries; t++) state[t * STATE_WORDS] = 1; // refine, empty prefix
  const bufs = [
    await gpu.upload(state, 'state'),
    await gpu.createBuffer(s.queries * 8, 'counters'),
    await gpu.createBuffer(s.queries * 1024, 'histogram'),
    await gpu.createBuffer(16, 'candidates'),
    await gpu.createBuffer(16, 'indices'),
  ];
  const params = gpu.uniform(topkParams({ queries: s.queries, keys: s.keys, causal: s.causal, width, splits }));
  const group = gpu.bind(pass, [params, ...ix.buffers, ...bufs]);
  const run = async () => {
    await gpu.run('dsa score pass', (enc) => {
      enc.setPipeline(pass);
      enc.setBindGroup(0, group);
      enc.dispatchWorkgroups(blocks, splits);
    });
    await gpu.idle();
  };
  return {
    run,
    release: () => {
      bufs.forEach((b) => gpu.release(b));
      params.destroy();
    },
  };
}
