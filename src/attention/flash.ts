// FlashAttention: exact attention, tiled, online softmax, output + LSE, never materialising scores.
// Variants: 'portable' (any WebGPU device, any head dim) and 'subgroup-matrix' (f16 tensor cores, D 64/128).
import { UnsupportedError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Device } from '../runtime/device.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { flashAttentionCpu } from '../kernels/flash-cpu.js';
import { FLASH_PORTABLE_ROWS, flashPortableWgsl } from '../kernels/flash-wgsl.js';
import { flashSubgroupMatrixWgsl, SGMAT_HEAD_DIMS, SGMAT_ROWS } from '../kernels/flash-sgmat-wgsl.js';
import { attentionParams } from '../kernels/wgsl-common.js';
import { attentionShape, type AttentionOptions } from './problem.js';
import { runInHeadChunks, type GpuInputs } from './gpu-chunks.js';
import type { AttentionState } from './state.js';

export type FlashVariant = 'auto' | 'portable' | 'subgroup-matrix';

export interface FlashOptions extends AttentionOptions {
  variant?: FlashVariant;
}

/** The variant that will run for these inputs on this device. */
export function chooseFlashVariant(gpu: GpuContext, headDim: number, dtype: Tensor['dtype'], asked: FlashVariant = 'auto'): 'portable' | 'subgroup-matrix' {
  const canSgmat = gpu.features.subgroupMatrixF16 && SGMAT_HEAD_DIMS.includes(headDim) && dtype === 'f16';
  if (asked === 'subgroup-matrix' && !canSgmat) {
    throw new UnsupportedError(`the subgroup-matrix flash kernel needs f16 inputs, head dim ${SGMAT_HEAD_DIMS.join(' or ')} and a device with f16 subgroup matrices (this one: ${gpu.features.subgroupMatrixF16 ? 'has them' : 'has none'}, head dim ${headDim}, ${dtype})`);
  }
  if (asked === 'portable') return 'portable';
  return canSgmat ? 'subgroup-matrix' : 'portable';
}

/** Encodes the flash kernel over GPU-resident buffers (used by attention() and the benchmarks). */
export async function flashAttentionGpu(gpu: GpuContext, x: GpuInputs, variant: FlashVariant = 'auto'): Promise<void> {
  const s = x.shape;
  const which = chooseFlashVariant(gpu, s.headDim, x.dtype, variant);
  const rows = which === 'portable' ? FLASH_PORTABLE_ROWS : SGMAT_ROWS;
  const pipeline = which === 'portable'
    ? await gpu.pipeline(`flash-portable-${s.headDim}-${x.dtype}`, () => flashPortableWgsl(s.headDim, x.dtype))
    : await gpu.pipeline(`flash-sgmat-${s.headDim}`, () => flashSubgroupMatrixWgsl(s.headDim));
  const params = gpu.uniform(attentionParams({ queries: s.queries, keys: s.keys, group: s.heads / s.kvHeads, causal: s.causal, scale: s.scale }));
  const tiles = Math.ceil(s.queries / rows);
  if (tiles > gpu.maxWorkgroupsPerDim) throw new UnsupportedError(`${s.queries} queries need ${tiles} workgroups in one dimension; this device allows ${gpu.maxWorkgroupsPerDim}`);
  const group = gpu.bind(pipeline, [x.q, x.k, x.v, x.o, x.lse, params]);
  await gpu.run('flash attention', (pass) => {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(tiles, s.heads);
  });
  params.destroy();
}

export async function flashAttention(device: Device, q: Tensor, k: Tensor, v: Tensor, opts: FlashOptions = {}): Promise<AttentionState> {
  const s = attentionShape(q, k, v, opts);
  if (!device.gpu) return flashAttentionCpu(q, k, v, s);
  return runInHeadChunks(device.gpu, q, k, v, s, (gpu, x) => flashAttentionGpu(gpu, x, opts.variant));
}
