// Runs one kernel version (kernels/versions.ts) over device-resident buffers: the one dispatch path
// that the version test and `longctx bench kernels` share, so what is timed is what was checked.
import type { GpuContext } from '../runtime/webgpu.js';
import type { DType } from '../tensor.js';
import type { FlashVersion, MatmulVersion } from '../kernels/versions.js';
import type { WgslMask } from '../kernels/flash-wgsl.js';
import { attentionParams } from '../kernels/wgsl-common.js';
import { matmulParams, type WeightStorage } from '../kernels/matmul-wgsl.js';
import type { ActivationStorage } from '../kernels/matmul-tc-wgsl.js';

export interface FlashShape {
  heads: number;
  kvHeads: number;
  queries: number;
  keys: number;
  headDim: number;
  causal: boolean;
  /** Rows between KV heads (0: the key count); only versions with kvStride take it. */
  kvStride?: number;
}

export interface FlashBuffers {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  o: GPUBuffer;
  lse: GPUBuffer;
  /** Block mask (CSR offsets and tiles, built with the version's tiles) and document ids. */
  mask?: { wgsl: WgslMask; offsets: GPUBuffer; tiles: GPUBuffer; documents?: GPUBuffer };
}

/** A recorder: encodes the version's dispatch into a pass, `times` times. */
export type Dispatcher = (pass: GPUComputePassEncoder, times?: number) => void;

export async function flashDispatcher(
  gpu: GpuContext,
  v: FlashVersion,
  s: FlashShape,
  dtype: DType,
  b: FlashBuffers,
): Promise<{ record: Dispatcher; release(): void }> {
  const key = `kv-${v.name}-${s.headDim}-${dtype}-${b.mask?.wgsl.predicate ?? 'causal'}`;
  const pipeline = await gpu.pipeline(key, () => v.wgsl(s.headDim, dtype, b.mask?.wgsl));
  const words = attentionParams({
    queries: s.queries,
    keys: s.keys,
    group: s.heads / s.kvHeads,
    causal: s.causal,
    scale: 1 / Math.sqrt(s.headDim),
  });
  if (v.kvStride) new Uint32Array(words)[7] = s.kvStride ?? 0;
  const params = gpu.uniform(words);
  const bound = [b.q, b.k, b.v, b.o, b.lse, params];
  if (b.mask) bound.push(b.mask.offsets, b.mask.tiles, ...(b.mask.documents ? [b.mask.documents] : []));
  const group = gpu.bind(pipeline, bound);
  const [gx, gy] = v.grid(s.queries, s.heads, s.headDim);
  return {
    record: (pass, times = 1) => {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      for (let t = 0; t < times; t++) pass.dispatchWorkgroups(gx, gy);
    },
    release: () => params.destroy(),
  };
}

export interface MatmulBuffers {
  x: GPUBuffer;
  w: GPUBuffer;
  bias?: GPUBuffer;
  y: GPUBuffer;
}

export async function matmulDispatcher(
  gpu: GpuContext,
  v: MatmulVersion,
  shape: { m: number; n: number; k: number },
  weights: WeightStorage,
  x: ActivationStorage,
  b: MatmulBuffers,
): Promise<{ record: Dispatcher; release(): void }> {
  const pipeline = await gpu.pipeline(`kv-${v.family}-${v.name}-${weights}-${x}`, () => v.wgsl(weights, x));
  const params = gpu.uniform(matmulParams(shape.m, shape.n, shape.k, b.bias !== undefined));
  const none = b.bias ? undefined : await gpu.createBuffer(16, 'no bias');
  const group = gpu.bind(pipeline, [b.x, b.w, b.bias ?? none!, b.y, params]);
  const [gx, gy] = v.grid(shape.m, shape.n);
  return {
    record: (pass, times = 1) => {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      for (let t = 0; t < times; t++) pass.dispatchWorkgroups(gx, gy);
    },
    release: () => {
      params.destroy();
      if (none) gpu.release(none);
    },
  };
}
