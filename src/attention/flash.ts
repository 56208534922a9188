// FlashAttention: exact attention, tiled, online softmax, output + LSE, never materialising scores.
// Variants: 'portable' (any WebGPU device, any head dim) and 'subgroup-matrix' (f16 tensor cores, D 64/128).
import { UnsupportedError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Device } from '../runtime/device.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { flashAttentionCpu } from '../kernels/flash-cpu.js';
import { FLASH_PORTABLE_ROWS, flashPortableTile, flashPortableWgsl } from '../kernels/flash-wgsl.js';
import { flashSubgroupMatrixWgsl, SGMAT_ROWS } from '../kernels/flash-sgmat-wgsl.js';
import { attentionParams } from '../kernels/wgsl-common.js';
import { attentionShape, type AttentionOptions } from '../spine/problem.js';
import { runInHeadChunks, type GpuInputs } from './gpu-chunks.js';
import type { AttentionState } from '../spine/state.js';
import { buildBlockMask, type BlockMask } from '../spine/block-mask.js';
import { maskDocuments, maskKey, type MaskNode } from '../spine/mask.js';
import type { FlashVariant } from './spec.js';
import { planFlash, TC2_VERSION, type KernelTarget } from './planner.js';
import { flashVersion } from '../kernels/versions.js';
import { FLASH_TC_PARTS, FLASH_VCHECK_DEFAULT, type FlashVCheck } from '../kernels/flash-tc-wgsl.js';
import type { CallSites } from '../runtime/call-sites.js';
import { vFinitePrePass, type FlashPrePass } from './v-finite.js';

export type { FlashVariant } from './spec.js';

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

/** The planner's target for a flash call on this device: every caller plans with the device's limits, so a
 * block mask is built for the tiles of the kernel that then runs (tc2 needs the workgroup memory limit). */
export function gpuFlashTarget(
  gpu: GpuContext,
  t: Omit<KernelTarget, 'features' | 'maxWorkgroupStorageBytes'>,
): KernelTarget {
  return { ...t, features: gpu.features, maxWorkgroupStorageBytes: gpu.maxWorkgroupStorageBytes };
}

/** The planner's target for a tiled (prefill-style) flash call on this device. */
function tiledTarget(gpu: GpuContext, headDim: number, dtype: Tensor['dtype'], masked: boolean): KernelTarget {
  return gpuFlashTarget(gpu, { dtype, headDim, queries: 0, keys: 0, masked });
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
  const plan = planFlash(tiledTarget(gpu, headDim, dtype, true), variant);
  const blocks = buildBlockMask(mask, queries, keys, plan.rows, plan.keyTile);
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

/** The tiled variant that will run for these inputs on this device (the planner's choice). */
export function chooseFlashVariant(
  gpu: GpuContext,
  headDim: number,
  dtype: Tensor['dtype'],
  asked: FlashVariant = 'auto',
): 'portable' | 'subgroup-matrix' | 'tc2' {
  const version = planFlash(tiledTarget(gpu, headDim, dtype, false), asked).version;
  if (version === 'portable') checkPortableHeadDim(gpu, headDim);
  return version as 'portable' | 'subgroup-matrix' | 'tc2';
}

/** One flash dispatch: its pipeline, its bindings around the uniform (inserted at binding 5), params, grid. */
export interface FlashCall {
  pipeline: GPUComputePipeline;
  /** Bindings 0-4 (q, k, v, o, lse). */
  head: GPUBuffer[];
  /** Bindings 6.. (the block mask, then tc2's V flags). */
  tail: GPUBuffer[];
  params: ArrayBuffer;
  groups: [number, number];
  /** tc2 with the hoisted V check: the pre-pass writing the V flags, recorded first (flashRecorder); `pipeline` is
   * then the part for finite heads and `flagged` the part for the others, over the same bindings and grid. */
  pre?: FlashPrePass;
  flagged?: GPUComputePipeline;
}

/** Prepares the flash kernel over GPU-resident buffers; kvStride: rows per KV head in k and v (a cache);
 * vcheck: where tc2 tests V for NaN and infinities (kernels/flash-tc-wgsl.ts; other variants have one way). */
export async function flashCall(
  gpu: GpuContext,
  x: GpuInputs,
  variant: FlashVariant = 'auto',
  mask?: GpuBlockMask,
  kvStride?: number,
  vcheck: FlashVCheck = FLASH_VCHECK_DEFAULT,
): Promise<FlashCall> {
  const s = x.shape;
  const which = chooseFlashVariant(gpu, s.headDim, x.dtype, variant);
  // The V flags are one more storage binding: a device with too few for them (q k v o lse, a mask's three,
  // the flags) keeps the per-tile check.
  if (mask?.documents && gpu.device.limits.maxStorageBuffersPerShaderStage < 9) vcheck = 'tile';
  const tc2 = which === 'tc2' ? flashVersion(TC2_VERSION)! : undefined;
  const rows = tc2?.tiles(s.headDim).rows ?? (which === 'portable' ? FLASH_PORTABLE_ROWS : SGMAT_ROWS);
  const wgslMask = mask && { predicate: maskKey(mask.blocks.mask), documents: mask.documents !== undefined };
  const parts = tc2?.hoistedVCheck ? FLASH_TC_PARTS[vcheck] : (['tile'] as const);
  const tc2Parts =
    tc2 &&
    (await Promise.all(
      parts.map((part) =>
        gpu.pipeline(`flash-${TC2_VERSION}-${s.headDim}-${wgslMask?.predicate ?? 'causal'}-${part}`, () =>
          tc2.wgsl(s.headDim, x.dtype, wgslMask, part),
        ),
      ),
    ));
  const pipeline = tc2Parts
    ? tc2Parts[0]
    : which === 'portable'
      ? await gpu.pipeline(`flash-portable-${s.headDim}-${x.dtype}-${wgslMask?.predicate ?? 'causal'}`, () =>
          flashPortableWgsl(s.headDim, x.dtype, wgslMask),
        )
      : await gpu.pipeline(`flash-sgmat-${s.headDim}-${wgslMask?.predicate ?? 'causal'}`, () =>
          flashSubgroupMatrixWgsl(s.headDim, wgslMask),
        );
  const params = attentionParams({
    queries: s.queries,
    keys: s.keys,
    group: s.heads / s.kvHeads,
    causal: s.causal,
    scale: s.scale,
    kvStride,
  });
  const tiles = Math.ceil(s.queries / rows);
  if (tiles > gpu.maxWorkgroupsPerDim)
    throw new UnsupportedError(
      `${s.queries} queries need ${tiles} workgroups in one dimension; this device allows ${gpu.maxWorkgroupsPerDim}`,
    );
  const tail = mask ? [mask.offsets, mask.tiles, ...(mask.documents ? [mask.documents] : [])] : [];
  const head = [x.q, x.k, x.v, x.o, x.lse];
  if (!tc2Parts || tc2Parts.length === 1) return { pipeline, head, tail, params, groups: [tiles, s.heads] };
  const { pre, flags } = await vFinitePrePass(gpu, x.v, s, kvStride);
  return { pipeline, head, tail: [...tail, flags], params, groups: [tiles, s.heads], pre, flagged: tc2Parts[1] };
}

/** Records a flash call through call sites (a uniform each): its V pre-pass first where it has one. */
export function flashRecorder(sites: CallSites, call: FlashCall): (pass: GPUComputePassEncoder) => void {
  const pre = call.pre && { ...call.pre, u: sites.uniform(call.pre.params) };
  const u = sites.uniform(call.params);
  return (pass) => {
    if (pre) sites.dispatch(pass, pre.pipeline, [...pre.buffers, pre.u], pre.groups, pre.u);
    for (const p of call.flagged ? [call.pipeline, call.flagged] : [call.pipeline])
      sites.dispatch(pass, p, [...call.head, u, ...call.tail], call.groups, u);
  };
}

/** The portable kernel stages two f32 tiles of BC x D keys/values in workgroup memory: refuse before compiling. */
function checkPortableHeadDim(gpu: GpuContext, headDim: number): void {
  const bytes = 2 * flashPortableTile(headDim) * headDim * 4;
  if (bytes > gpu.maxWorkgroupStorageBytes || headDim >= 1 << 16)
    throw new UnsupportedError(
      `head dim ${headDim} needs ${bytes} bytes of workgroup memory in the portable flash kernel, more than this ` +
        `device's ${gpu.maxWorkgroupStorageBytes}; use --method dense or the CPU backend`,
    );
}

/** Encodes the flash kernel over GPU-resident buffers (used by attention() and the benchmarks). */
export async function flashAttentionGpu(
  gpu: GpuContext,
  x: GpuInputs,
  variant: FlashVariant = 'auto',
  mask?: GpuBlockMask,
  kvStride?: number,
  vcheck?: FlashVCheck,
): Promise<void> {
  const call = await flashCall(gpu, x, variant, mask, kvStride, vcheck);
  const params = gpu.uniform(call.params);
  const pre = call.pre && { ...call.pre, u: gpu.uniform(call.pre.params) };
  const steps: Array<[GPUComputePipeline, GPUBindGroup, [number, number]]> = [];
  if (pre) steps.push([pre.pipeline, gpu.bind(pre.pipeline, [...pre.buffers, pre.u]), pre.groups]);
  for (const p of call.flagged ? [call.pipeline, call.flagged] : [call.pipeline])
    steps.push([p, gpu.bind(p, [...call.head, params, ...call.tail]), call.groups]);
  await gpu.run('flash attention', (pass) => {
    for (const [p, group, groups] of steps) {
      pass.setPipeline(p);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(...groups);
    }
  });
  params.destroy();
  pre?.u.destroy();
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
