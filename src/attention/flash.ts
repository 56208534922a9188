// FlashAttention: exact attention, tiled, online softmax, output + LSE, never materialising scores.
// Variants: 'portable' (any WebGPU device, any head dim) and 'subgroup-matrix' (f16 tensor cores, D 64/128).
import { UnsupportedError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Device } from '../runtime/device.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { flashAttentionCpu } from '../kernels/flash-cpu.js';
import { FLASH_PORTABLE_ROWS, flashPortableTile, flashPortableWgsl } from '../kernels/flash-wgsl.js';
import { flashSubgroupMatrixWgsl, SGMAT_HEAD_DIMS, SGMAT_ROWS } from '../kernels/flash-sgmat-wgsl.js';
import { attentionParams } from '../kernels/wgsl-common.js';
import { attentionShape, type AttentionOptions } from '../spine/problem.js';
import { runInHeadChunks, type GpuInputs } from './gpu-chunks.js';
import type { AttentionState } from '../spine/state.js';
import { buildBlockMask, type BlockMask } from '../spine/block-mask.js';
import { maskDocuments, maskKey, type MaskNode } from '../spine/mask.js';

export type FlashVariant = 'auto' | 'portable' | 'subgroup-matrix';

export interface FlashOptions extends AttentionOptions {
  variant?: FlashVariant;
  /** Block-sparse attention: only what this mask allows (causality then comes from the mask alone). */
  mask?: MaskNode;
}

/** A block mask built for one kernel variant's tiles, resident on the device. */
export interface GpuBlockMask {
  blocks: BlockMask;
  offsets: GPUBuffer;
  tiles: GPUBuffer;
  documents?: GPUBuffer;
  release(): void;
}

/** Builds `mask`'s block mask for the tiles of the kernel that will run, and uploads it. */
export async function prepareBlockMask(
  gpu: GpuContext,
  mask: MaskNode,
  queries: number,
  keys: number,
  headDim: number,
  dtype: Tensor['dtype'],
  variant: FlashVariant = 'auto',
): Promise<GpuBlockMask> {
  const which = chooseFlashVariant(gpu, headDim, dtype, variant);
  const rows = which === 'portable' ? FLASH_PORTABLE_ROWS : SGMAT_ROWS;
  const keyTile = which === 'portable' ? flashPortableTile(headDim) : 32;
  const blocks = buildBlockMask(mask, queries, keys, rows, keyTile);
  const owned = [await gpu.upload(blocks.offsets, 'block offsets'), await gpu.upload(blocks.tiles, 'block tiles')];
  const ids = maskDocuments(mask);
  if (ids) owned.push(await gpu.upload(ids, 'document ids'));
  return {
    blocks,
    offsets: owned[0],
    tiles: owned[1],
    documents: owned[2],
    release: () => owned.forEach((b) => gpu.release(b)),
  };
}

/** The variant that will run for these inputs on this device. */
export function chooseFlashVariant(
  gpu: GpuContext,
  headDim: number,
  dtype: Tensor['dtype'],
  asked: FlashVariant = 'auto',
): 'portable' | 'subgroup-matrix' {
  const canSgmat = gpu.features.subgroupMatrixF16 && SGMAT_HEAD_DIMS.includes(headDim) && dtype === 'f16';
  if (asked === 'subgroup-matrix' && !canSgmat) {
    throw new UnsupportedError(
      `the subgroup-matrix flash kernel needs f16 inputs, head dim ${SGMAT_HEAD_DIMS.join(' or ')} and a device with f16 subgroup matrices (this one: ${gpu.features.subgroupMatrixF16 ? 'has them' : 'has none'}, head dim ${headDim}, ${dtype})`,
    );
  }
  if (!canSgmat || asked === 'portable') checkPortableHeadDim(gpu, headDim);
  if (asked === 'portable') return 'portable';
  return canSgmat ? 'subgroup-matrix' : 'portable';
}

/** The portable kernel stages two f32 tiles of BC x D keys/values in workgroup memory: refuse before compiling. */
function checkPortableHeadDim(gpu: GpuContext, headDim: number): void {
  const bytes = 2 * flashPortableTile(headDim) * headDim * 4;
  if (bytes > gpu.maxWorkgroupStorageBytes || headDim >= 1 << 16)
    throw new UnsupportedError(
      `head dim ${headDim} needs ${bytes} bytes of workgroup memory in the portable flash kernel, more than this device's ${gpu.maxWorkgroupStorageBytes}; use --method dense or the CPU backend`,
    );
}

/** Encodes the flash kernel over GPU-resident buffers (used by attention() and the benchmarks). */
export async function flashAttentionGpu(
  gpu: GpuContext,
  x: GpuInputs,
  variant: FlashVariant = 'auto',
  mask?: GpuBlockMask,
): Promise<void> {
  const s = x.shape;
  const which = chooseFlashVariant(gpu, s.headDim, x.dtype, variant);
  const rows = which === 'portable' ? FLASH_PORTABLE_ROWS : SGMAT_ROWS;
  const wgslMask = mask && { predicate: maskKey(mask.blocks.mask), documents: mask.documents !== undefined };
  const pipeline =
    which === 'portable'
      ? await gpu.pipeline(`flash-portable-${s.headDim}-${x.dtype}-${wgslMask?.predicate ?? 'causal'}`, () =>
          flashPortableWgsl(s.headDim, x.dtype, wgslMask),
        )
      : await gpu.pipeline(`flash-sgmat-${s.headDim}-${wgslMask?.predicate ?? 'causal'}`, () =>
          flashSubgroupMatrixWgsl(s.headDim, wgslMask),
        );
  const params = gpu.uniform(
    attentionParams({ queries: s.queries, keys: s.keys, group: s.heads / s.kvHeads, causal: s.causal, scale: s.scale }),
  );
  const tiles = Math.ceil(s.queries / rows);
  if (tiles > gpu.maxWorkgroupsPerDim)
    throw new UnsupportedError(
      `${s.queries} queries need ${tiles} workgroups in one dimension; this device allows ${gpu.maxWorkgroupsPerDim}`,
    );
  const bound = [x.q, x.k, x.v, x.o, x.lse, params];
  if (mask) bound.push(mask.offsets, mask.tiles, ...(mask.documents ? [mask.documents] : []));
  const group = gpu.bind(pipeline, bound);
  await gpu.run('flash attention', (pass) => {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(tiles, s.heads);
  });
  params.destroy();
}

export async function flashAttention(
  device: Device,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: FlashOptions = {},
): Promise<AttentionState> {
  const s = attentionShape(q, k, v, opts);
  const mask = opts.mask;
  if (!device.gpu)
    return flashAttentionCpu(q, k, v, s, mask ? { blockMask: buildBlockMask(mask, s.queries, s.keys, 64, 64) } : {});
  const gpu = device.gpu;
  const dtype = q.dtype === 'f16' && !gpu.features.f16 ? 'f32' : q.dtype;
  const blocks = mask
    ? await prepareBlockMask(gpu, mask, s.queries, s.keys, s.headDim, dtype, opts.variant)
    : undefined;
  try {
    return await runInHeadChunks(gpu, q, k, v, s, (g, x) => flashAttentionGpu(g, x, opts.variant, blocks));
  } finally {
    blocks?.release();
  }
}
