// The V pre-pass that a tensor-core flash call with the hoisted NaN check runs first (kernels/v-finite-wgsl.ts):
// one dispatch over exactly the V rows the flash dispatch reads, every call, so the flag is right for a chunk and
// for a KV cache read in place alike. Its flag words live in one small buffer per device context, grown when a
// call has more KV heads: a pre-pass and its flash kernel are always recorded back to back (flashRecorder,
// flashAttentionGpu, bench/kernel-run.ts), and WebGPU orders dispatches, so calls can share the words.
import type { GpuContext } from '../runtime/webgpu.js';
import {
  vFiniteFlagBytes,
  vFiniteGrid,
  vFiniteParams,
  vFiniteUnsupported,
  vFiniteWgsl,
} from '../kernels/v-finite-wgsl.js';
import { UnsupportedError } from '../errors.js';

/** A dispatch that must be recorded before its flash kernel: bindings before the uniform, params, grid. */
export interface FlashPrePass {
  pipeline: GPUComputePipeline;
  buffers: GPUBuffer[];
  params: ArrayBuffer;
  groups: [number, number];
}

const flagWords = new WeakMap<GpuContext, GPUBuffer>();

/** The context's flag words, at least `bytes` of them (the old buffer goes back once its work is done). */
async function flagBuffer(gpu: GpuContext, bytes: number): Promise<GPUBuffer> {
  const held = flagWords.get(gpu);
  if (held && held.size >= bytes) return held;
  if (held) gpu.release(held);
  const b = await gpu.createBuffer(bytes, 'flash V flags');
  flagWords.set(gpu, b);
  return b;
}

/** The pre-pass over rows [0, keys) of each of v's kvHeads heads (rowsPerHead apart; 0: packed), and the flag
 * words it writes, which the flash kernel binds last. */
export async function vFinitePrePass(
  gpu: GpuContext,
  v: GPUBuffer,
  s: { kvHeads: number; keys: number; headDim: number },
  rowsPerHead?: number,
): Promise<{ pre: FlashPrePass; flags: GPUBuffer }> {
  const why = vFiniteUnsupported(s.headDim);
  if (why) throw new UnsupportedError(why);
  const params = vFiniteParams({ rows: s.keys, headDim: s.headDim, rowsPerHead });
  const flags = await flagBuffer(gpu, vFiniteFlagBytes(s.kvHeads));
  const pipeline = await gpu.pipeline('flash-v-finite', vFiniteWgsl);
  return { pre: { pipeline, buffers: [v, flags], params, groups: vFiniteGrid(s.kvHeads) }, flags };
}
