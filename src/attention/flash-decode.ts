// Split-KV flash decoding over GPU-resident buffers (kernels/flash-decode-wgsl.ts): one query per head over
// a cache read in place, its keys split over workgroups and the partial states merged. The planner picks
// it for decoding steps over long caches whose every row the query sees (planner.ts, split-kv-decode).
import { ShapeError } from '../errors.js';
import type { GpuContext } from '../runtime/webgpu.js';
import {
  DECODE_MAX_SPLITS,
  DECODE_SPLITTING,
  type DecodeSplitting,
  decodeParams,
  decodeSplits,
  flashDecodeMergeWgsl,
  flashDecodePartialWgsl,
} from '../kernels/flash-decode-wgsl.js';
import { decodeGqaGrid, flashDecodeGqaPartialWgsl } from '../kernels/flash-decode-gqa-wgsl.js';
import { decodeV3Grid, decodeV3Lanes, flashDecodeV3PartialWgsl } from '../kernels/flash-decode-v3-wgsl.js';
import { subgroupMinSize } from './dsa-lanes.js';
import type { GpuInputs } from './gpu-chunks.js';
import { DECODE_KERNELS, type DecodeKernel } from './spec.js';

/** Partial states of every head: o [heads, DECODE_MAX_SPLITS, D] and lse [heads, DECODE_MAX_SPLITS] (f32). */
export interface DecodeScratch {
  o: GPUBuffer;
  lse: GPUBuffer;
  heads: number;
  headDim: number;
}

export async function createDecodeScratch(gpu: GpuContext, heads: number, headDim: number): Promise<DecodeScratch> {
  const o = await gpu.createBuffer(heads * DECODE_MAX_SPLITS * headDim * 4, 'decode partial o');
  const lse = await gpu.createBuffer(heads * DECODE_MAX_SPLITS * 4, 'decode partial lse');
  return { o, lse, heads, headDim };
}

/** The two dispatches of one decoding step; both bind `params` (a uniform the caller owns) last. */
export interface DecodeCalls {
  params: ArrayBuffer;
  partial: { pipeline: GPUComputePipeline; buffers: GPUBuffer[]; groups: [number, number] };
  merge: { pipeline: GPUComputePipeline; buffers: GPUBuffer[]; groups: [number, number] };
  splits: number;
}

/** The partial kernels, side by side: v1 a workgroup per query head, gqa-v2 one per KV head's query heads,
 * v3 one per KV head's query heads with 16-byte loads, many in flight (flash-decode-v3-wgsl.ts), v4 the same with
 * its per-head rescale and slice merge unrolled (no private array indexed by a loop variable). */
export const DECODE_VERSIONS = DECODE_KERNELS.filter((k) => k !== 'auto') as Exclude<DecodeKernel, 'auto'>[];
export type DecodeVersion = Exclude<DecodeKernel, 'auto'>;
/** The default, measured on the H200 (docs/BENCHMARKS.md, decode sweep run 3 of 2026-12-02, 32 query heads, 8 KV
 * heads, D 64, f16, one layer): v4 at 64 splits of >= 256 keys ran 128K keys in 177 us (1,515 GB/s) and 32K in 83 us,
 * against v3's 348 and 133 us at its best splitting, v1's 1,471 and 430, gqa-v2's 4,228 and 1,090; at 4K all of v3
 * and v4 are within 36-43 us. */
export const DECODE_DEFAULT: DecodeVersion = 'decode-v4';

/** The splitting measured best on the H200 for each version (the 1B model's attention, 4K-128K keys). */
export function decodeSplitting(version: DecodeVersion): DecodeSplitting {
  return version === 'decode-v1' ? DECODE_SPLITTING : { maxSplits: 64, minKeys: 256 };
}

/** v3/v4's lanes per key: up to `cap` within the device's smallest subgroup (8 on lavapipe and NVIDIA; 1: no
 * subgroup operation). */
export async function decodeLanes(gpu: GpuContext, cap = 8): Promise<number> {
  return decodeV3Lanes(Math.min(cap, await subgroupMinSize(gpu)));
}

/** x.shape.queries must be 1 and non-causal over x.shape.keys rows (kvStride rows per KV head). `lanes` caps
 * decode-v3's lanes per key below what the device's subgroups allow (tests of its narrower paths). */
export async function flashDecodeCalls(
  gpu: GpuContext,
  x: GpuInputs,
  scratch: DecodeScratch,
  kvStride = x.shape.keys,
  asked: DecodeKernel = 'auto',
  splitting?: DecodeSplitting,
  lanes = 8,
): Promise<DecodeCalls> {
  const version = asked === 'auto' ? DECODE_DEFAULT : asked;
  splitting ??= decodeSplitting(version);
  const s = x.shape;
  if (s.queries !== 1) throw new ShapeError(`split-KV decoding takes one query per head, got ${s.queries}`);
  if (scratch.heads < s.heads || scratch.headDim !== s.headDim)
    throw new ShapeError(
      `decode scratch of ${scratch.heads} heads x ${scratch.headDim} cannot hold ${s.heads} x ${s.headDim}`,
    );
  const { splits, keysPerSplit } = decodeSplits(s.keys, splitting);
  const group = s.heads / s.kvHeads;
  const params = decodeParams({
    keys: s.keys,
    kvStride,
    group,
    scale: s.scale,
    splits,
    keysPerSplit,
  });
  let partial: GPUComputePipeline;
  let groups: [number, number];
  if (version === 'decode-v1') {
    partial = await gpu.pipeline(`flash-decode-${s.headDim}-${x.dtype}`, () =>
      flashDecodePartialWgsl(s.headDim, x.dtype),
    );
    groups = [splits, s.heads];
  } else if (version === 'decode-gqa-v2') {
    partial = await gpu.pipeline(`flash-decode-gqa-${s.headDim}-${x.dtype}-g${group}`, () =>
      flashDecodeGqaPartialWgsl(s.headDim, x.dtype, group),
    );
    groups = decodeGqaGrid(splits, s.heads, s.kvHeads);
  } else {
    const l = await decodeLanes(gpu, lanes);
    const unrolled = version === 'decode-v4';
    partial = await gpu.pipeline(`flash-${version}-${s.headDim}-${x.dtype}-g${group}-l${l}`, () =>
      flashDecodeV3PartialWgsl(s.headDim, x.dtype, group, l, unrolled),
    );
    groups = decodeV3Grid(splits, s.heads, s.kvHeads);
  }
  const merge = await gpu.pipeline(`flash-decode-merge-${s.headDim}`, () => flashDecodeMergeWgsl(s.headDim));
  return {
    params,
    splits,
    partial: { pipeline: partial, buffers: [x.q, x.k, x.v, scratch.o, scratch.lse], groups },
    merge: { pipeline: merge, buffers: [scratch.o, scratch.lse, x.o, x.lse], groups: [s.heads, 1] },
  };
}

/** One decoding step on its own (tests, benchmarks): scratch and uniform made and freed here. */
export async function flashDecodeGpu(
  gpu: GpuContext,
  x: GpuInputs,
  kvStride = x.shape.keys,
  version: DecodeVersion = DECODE_DEFAULT,
  lanes?: number,
): Promise<void> {
  const scratch = await createDecodeScratch(gpu, x.shape.heads, x.shape.headDim);
  const calls = await flashDecodeCalls(gpu, x, scratch, kvStride, version, undefined, lanes);
  const params = gpu.uniform(calls.params);
  try {
    await gpu.run('flash decoding', (pass) => {
      for (const c of [calls.partial, calls.merge]) {
        pass.setPipeline(c.pipeline);
        pass.setBindGroup(0, gpu.bind(c.pipeline, [...c.buffers, params]));
        pass.dispatchWorkgroups(...c.groups);
      }
    });
  } finally {
    params.destroy();
    gpu.release(scratch.o);
    gpu.release(scratch.lse);
  }
}
