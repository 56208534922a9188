// Runs one kernel version (kernels/versions.ts) over device-resident buffers: the one dispatch path
// that the version test and `longctx bench kernels` share, so what is timed is what was checked.
import type { GpuContext } from '../runtime/webgpu.js';
import type { DType } from '../tensor.js';
import type { FlashVersion, MatmulVersion } from '../kernels/versions.js';
import type { WgslMask } from '../kernels/flash-wgsl.js';
import { attentionParams } from '../kernels/wgsl-common.js';
import { matmulParams, type WeightStorage } from '../kernels/matmul-wgsl.js';
import type { ActivationStorage } from '../kernels/matmul-tc-wgsl.js';
import { FLASH_TC_PARTS, type FlashVCheck } from '../kernels/flash-tc-wgsl.js';
import { vFinitePrePass } from '../attention/v-finite.js';

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

/** A recorder: encodes the version's dispatch into a pass, `times` times (each after its V pre-pass, if any). */
export type Dispatcher = (pass: GPUComputePassEncoder, times?: number) => void;

export async function flashDispatcher(
  gpu: GpuContext,
  v: FlashVersion,
  s: FlashShape,
  dtype: DType,
  b: FlashBuffers,
  vcheck: FlashVCheck = 'hoisted',
): Promise<{ record: Dispatcher; release(): void; flags?: GPUBuffer }> {
  const parts = v.hoistedVCheck ? FLASH_TC_PARTS[vcheck] : (['tile'] as const);
  const key = `kv-${v.name}-${s.headDim}-${dtype}-${b.mask?.wgsl.predicate ?? 'causal'}`;
  const pipelines = await Promise.all(
    parts.map((part) => gpu.pipeline(`${key}-${part}`, () => v.wgsl(s.headDim, dtype, b.mask?.wgsl, part))),
  );
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
  const vf = parts.length > 1 ? await vFinitePrePass(gpu, b.v, s, s.kvStride) : undefined;
  if (vf) bound.push(vf.flags);
  const preParams = vf && gpu.uniform(vf.pre.params);
  const steps: Array<[GPUComputePipeline, GPUBindGroup, [number, number]]> = [];
  if (vf) steps.push([vf.pre.pipeline, gpu.bind(vf.pre.pipeline, [...vf.pre.buffers, preParams!]), vf.pre.groups]);
  const grid = v.grid(s.queries, s.heads, s.headDim);
  for (const p of pipelines) steps.push([p, gpu.bind(p, bound), grid]);
  return {
    flags: vf?.flags,
    record: (pass, times = 1) => {
      for (let t = 0; t < times; t++)
        for (const [p, group, groups] of steps) {
          // One kernel: bound once, dispatched `times` times.
          if (t === 0 || steps.length > 1) {
            pass.setPipeline(p);
            pass.setBindGroup(0, group);
          }
          pass.dispatchWorkgroups(...groups);
        }
    },
    release: () => {
      params.destroy();
      preParams?.destroy();
    },
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
