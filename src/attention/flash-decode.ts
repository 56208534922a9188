// Split-KV flash decoding over GPU-resident buffers (kernels/flash-decode-wgsl.ts): one query per head over
// a cache read in place, its keys split over workgroups and the partial states merged. The planner picks
// it for decoding steps over long caches whose every row the query sees (planner.ts, split-kv-decode).
import { ShapeError } from '../errors.js';
import type { GpuContext } from '../runtime/webgpu.js';
import {
  DECODE_MAX_SPLITS,
  decodeParams,
  decodeSplits,
  flashDecodeMergeWgsl,
  flashDecodePartialWgsl,
} from '../kernels/flash-decode-wgsl.js';
import type { GpuInputs } from './gpu-chunks.js';

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

/** x.shape.queries must be 1 and non-causal over x.shape.keys rows (kvStride rows per KV head). */
export async function flashDecodeCalls(
  gpu: GpuContext,
  x: GpuInputs,
  scratch: DecodeScratch,
  kvStride = x.shape.keys,
): Promise<DecodeCalls> {
  const s = x.shape;
  if (s.queries !== 1) throw new ShapeError(`split-KV decoding takes one query per head, got ${s.queries}`);
  if (scratch.heads < s.heads || scratch.headDim !== s.headDim)
    throw new ShapeError(
      `decode scratch of ${scratch.heads} heads x ${scratch.headDim} cannot hold ${s.heads} x ${s.headDim}`,
    );
  const { splits, keysPerSplit } = decodeSplits(s.keys);
  const params = decodeParams({
    keys: s.keys,
    kvStride,
    group: s.heads / s.kvHeads,
    scale: s.scale,
    splits,
    keysPerSplit,
  });
  const partial = await gpu.pipeline(`flash-decode-${s.headDim}-${x.dtype}`, () =>
    flashDecodePartialWgsl(s.headDim, x.dtype),
  );
  const merge = await gpu.pipeline(`flash-decode-merge-${s.headDim}`, () => flashDecodeMergeWgsl(s.headDim));
  return {
    params,
    splits,
    partial: { pipeline: partial, buffers: [x.q, x.k, x.v, scratch.o, scratch.lse], groups: [splits, s.heads] },
    merge: { pipeline: merge, buffers: [scratch.o, scratch.lse, x.o, x.lse], groups: [s.heads, 1] },
  };
}

/** One decoding step on its own (tests, benchmarks): scratch and uniform made and freed here. */
export async function flashDecodeGpu(gpu: GpuContext, x: GpuInputs, kvStride = x.shape.keys): Promise<void> {
  const scratch = await createDecodeScratch(gpu, x.shape.heads, x.shape.headDim);
  const calls = await flashDecodeCalls(gpu, x, scratch, kvStride);
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
