// CCA-Attention (Core Context Aware attention, Chen et al., ICML 2025): every group of g tokens is pooled
// into one core token, and query m attends in one softmax to the cores of the groups wholly behind its
// raw window (c = max(0, floor((m + 1 - w) / g)) of them) plus the raw keys [c*g, m]. The plan: pass 1
// pools the cores (O(N/g) rows), pass 2 streams core tiles then raw window tiles through one online
// softmax (kernels/cca-wgsl.ts, CPU twin kernels/cca-cpu.ts). The output is a state on the spine.
import { ShapeError, SpecError, UnsupportedError } from '../errors.js';
import { asFloat32, bytesPerElement, toDType, type DType, type Tensor } from '../tensor.js';
import type { Device } from '../runtime/device.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { ccaAttendCpu, ccaPoolCpu, coresSeen, type CcaLayout } from '../kernels/cca-cpu.js';
import { CCA_POOL_SCORES, CCA_ROWS, ccaAttendWgsl, ccaParams, ccaPoolWgsl } from '../kernels/cca-wgsl.js';
import { CCA_SGMAT_HEAD_DIMS, ccaSubgroupMatrixWgsl } from '../kernels/cca-sgmat-wgsl.js';
import { CCA_TC_CONFIGS, ccaTcWgsl } from '../kernels/cca-tc-wgsl.js';
import { tc2Unsupported } from '../kernels/tc2-tiles-wgsl.js';
import { attentionShape, type AttentionOptions, type AttentionShape } from '../spine/problem.js';
import { runInHeadChunks, type GpuInputs } from './gpu-chunks.js';
import { intParam, variantParam, type MethodSpec } from './spec.js';
import type { AttentionState } from '../spine/state.js';

export { coresSeen, type CcaLayout } from '../kernels/cca-cpu.js';

export const CCA_DEFAULTS = { group: 16, window: 1024 } as const;

export interface CcaParams {
  /** Tokens per core (g). */
  group: number;
  /** Raw keys a query sees at least (w; at most w + g - 1). */
  window: number;
  /** WebGPU pass-2 kernel: portable, subgroup matrices v1, or the tc2 tiles (tensor cores; f16); auto picks. */
  variant?: CcaVariant;
}

export type CcaKernelVariant = 'portable' | 'subgroup-matrix' | 'tc2-128x32' | 'tc2-64x32';
export type CcaVariant = 'auto' | CcaKernelVariant;
export const CCA_VARIANTS: readonly CcaVariant[] = ['auto', 'portable', 'subgroup-matrix', 'tc2-128x32', 'tc2-64x32'];

/** Null when this pass-2 kernel runs these inputs on this device, else why not. */
export function ccaVariantUnsupported(gpu: GpuContext, v: CcaKernelVariant, headDim: number, dtype: DType) {
  if (v === 'portable') return dtype === 'f16' && !gpu.features.f16 ? 'the device has no shader-f16' : null;
  if (!gpu.features.subgroupMatrixF16) return 'the device has no f16 subgroup matrices';
  if (dtype !== 'f16') return `needs f16 inputs (got ${dtype})`;
  if (v === 'subgroup-matrix')
    return CCA_SGMAT_HEAD_DIMS.includes(headDim)
      ? null
      : `head dim ${headDim} is not ${CCA_SGMAT_HEAD_DIMS.join(' or ')}`;
  return tc2Unsupported(headDim, CCA_TC_CONFIGS[v], gpu.maxWorkgroupStorageBytes);
}

/** The pass-2 kernel that will run for these inputs on this device: auto takes the first of tc2-128x32,
 * tc2-64x32, subgroup-matrix (v1) and portable that runs here. */
export function chooseCcaVariant(
  gpu: GpuContext,
  headDim: number,
  dtype: DType,
  asked: CcaVariant = 'auto',
): CcaKernelVariant {
  if (asked !== 'auto') {
    const why = ccaVariantUnsupported(gpu, asked, headDim, dtype);
    if (why) throw new UnsupportedError(`the ${asked} CCA kernel cannot run here: ${why}; use variant=portable`);
    return asked;
  }
  const order: CcaKernelVariant[] = ['tc2-128x32', 'tc2-64x32', 'subgroup-matrix'];
  return order.find((v) => !ccaVariantUnsupported(gpu, v, headDim, dtype)) ?? 'portable';
}

/** Pass 2's pipeline and its query rows per workgroup (dispatch: row tiles x query heads). */
export async function ccaAttendKernel(
  gpu: GpuContext,
  variant: CcaKernelVariant,
  headDim: number,
  dtype: DType,
): Promise<{ pipeline: GPUComputePipeline; rows: number }> {
  if (variant === 'portable')
    return {
      pipeline: await gpu.pipeline(`cca-attend-${headDim}-${dtype}`, () => ccaAttendWgsl(headDim, dtype)),
      rows: CCA_ROWS,
    };
  if (variant === 'subgroup-matrix')
    return {
      pipeline: await gpu.pipeline(`cca-attend-sgmat-${headDim}`, () => ccaSubgroupMatrixWgsl(headDim)),
      rows: CCA_ROWS,
    };
  const c = CCA_TC_CONFIGS[variant];
  return {
    pipeline: await gpu.pipeline(`cca-attend-${variant}-${headDim}`, () => ccaTcWgsl(headDim, c)),
    rows: 16 * c.subgroups,
  };
}

export interface CcaOptions extends AttentionOptions, Partial<CcaParams> {}

export function checkCcaParams(p: CcaParams): CcaParams {
  if (!Number.isInteger(p.group) || p.group < 1)
    throw new SpecError(`cca: group must be an integer >= 1, got ${p.group}`);
  if (!Number.isInteger(p.window) || p.window < 1)
    throw new SpecError(`cca: window must be an integer >= 1 (a query always sees itself), got ${p.window}`);
  return p;
}

/** `cca:group=G,window=W` (defaults 16 and 1024). */
export function ccaParamsFromSpec(spec: MethodSpec): CcaParams {
  return checkCcaParams({
    // Pooling keeps one weight per token of a group, so a group is bounded (64K tokens) before anything allocates.
    group: intParam(spec, 'group', CCA_DEFAULTS.group, 1 << 16),
    window: intParam(spec, 'window', CCA_DEFAULTS.window),
    variant: variantParam(spec, CCA_VARIANTS),
  });
}

/** Bytes of a CcaKVCache after n tokens: pooled cores plus a raw ring of w + g - 1 tokens, keys and values. */
export function ccaCacheBytes(n: number, kvHeads: number, headDim: number, dtype: DType, p: CcaParams): number {
  const rows = Math.floor(n / p.group) + Math.min(n, p.window + p.group - 1);
  return 2 * rows * kvHeads * headDim * bytesPerElement(dtype);
}

/** Where a GPU call's rows sit, and which groups pass 1 pools (into core rows [poolFirst, poolFirst + poolCount)). */
export interface CcaGpuPlan extends CcaParams {
  queryStart: number;
  rawStart: number;
  /** Core rows per KV head in the core buffers (>= the cores any query sees). */
  cores: number;
  poolFirst: number;
  poolCount: number;
}

/** Encodes pass 1 (when poolCount > 0) and pass 2 over GPU-resident buffers; cores in coreBuffers or made here. */
export async function ccaAttentionGpu(
  gpu: GpuContext,
  x: GpuInputs,
  plan: CcaGpuPlan,
  coreBuffers?: { k: GPUBuffer; v: GPUBuffer },
): Promise<void> {
  const s = x.shape;
  const G = s.heads / s.kvHeads;
  const coreCapacity = Math.max(1, plan.cores);
  if (plan.poolCount > 0 && G * plan.group + plan.group > CCA_POOL_SCORES) {
    throw new UnsupportedError(
      `cca pooling holds (query heads per KV head + 1) x group = ${(G + 1) * plan.group} scores in workgroup ` +
        `memory, at most ${CCA_POOL_SCORES}; use a smaller group or the CPU backend`,
    );
  }
  const attend = await ccaAttendKernel(
    gpu,
    chooseCcaVariant(gpu, s.headDim, x.dtype, plan.variant),
    s.headDim,
    x.dtype,
  );
  const rowTiles = Math.ceil(s.queries / attend.rows);
  for (const n of [rowTiles, plan.poolCount]) {
    if (n > gpu.maxWorkgroupsPerDim)
      throw new UnsupportedError(
        `cca needs ${n} workgroups in one dimension; this device allows ${gpu.maxWorkgroupsPerDim}`,
      );
  }
  const owned: GPUBuffer[] = [];
  try {
    let cores = coreBuffers;
    if (!cores) {
      const bytes = s.kvHeads * coreCapacity * s.headDim * bytesPerElement(x.dtype);
      cores = {
        k: await gpu.createBuffer(bytes, 'cca core keys'),
        v: await gpu.createBuffer(bytes, 'cca core values'),
      };
      owned.push(cores.k, cores.v);
    }
    const params = gpu.uniform(ccaPlanParams(s, plan, coreCapacity));
    const pool =
      plan.poolCount > 0
        ? await gpu.pipeline(`cca-pool-${s.headDim}-${x.dtype}`, () => ccaPoolWgsl(s.headDim, x.dtype))
        : undefined;
    const poolGroup = pool && gpu.bind(pool, [x.q, x.k, x.v, cores.k, cores.v, params]);
    const attendGroup = gpu.bind(attend.pipeline, [x.q, cores.k, cores.v, x.k, x.v, x.o, x.lse, params]);
    // Dispatches of one pass are ordered with their storage writes visible to later ones.
    await gpu.run('cca attention', (pass) => {
      if (pool && poolGroup) {
        pass.setPipeline(pool);
        pass.setBindGroup(0, poolGroup);
        pass.dispatchWorkgroups(plan.poolCount, s.kvHeads);
      }
      pass.setPipeline(attend.pipeline);
      pass.setBindGroup(0, attendGroup);
      pass.dispatchWorkgroups(rowTiles, s.heads);
    });
    params.destroy();
  } finally {
    for (const b of owned) gpu.release(b);
  }
}

/** The plan of a prefill call: queries are the last Nq of Nk positions; the groups their cores cover are pooled. */
export function ccaPrefillPlan(s: AttentionShape, p: CcaParams): CcaGpuPlan {
  checkCcaParams(p);
  if (!s.causal) throw new UnsupportedError('CCA attention is causal by definition; drop --no-causal / causal: false');
  if (s.queries > s.keys) throw new ShapeError(`cca needs at most as many queries (${s.queries}) as keys (${s.keys})`);
  const queryStart = s.keys - s.queries;
  const cores = s.queries > 0 ? coresSeen(s.keys - 1, p.group, p.window) : 0;
  if (cores > 0 && p.group - 1 < queryStart) {
    throw new ShapeError(
      `cca pools group 0 with the query of token ${p.group - 1}, but the queries start at token ${queryStart}; ` +
        'prefill with a cache or decode through CcaKVCache, which keeps the cores already pooled',
    );
  }
  return { ...p, queryStart, rawStart: 0, cores, poolFirst: 0, poolCount: cores };
}

/** The CCA kernels' uniform block for a prefill plan over `coreCapacity` core rows per KV head (no ring). */
export function ccaPlanParams(s: AttentionShape, plan: CcaGpuPlan, coreCapacity: number): ArrayBuffer {
  return ccaParams({
    queries: s.queries,
    queryStart: plan.queryStart,
    raw: s.keys,
    rawStart: plan.rawStart,
    coreCapacity,
    poolFirst: plan.poolFirst,
    group: plan.group,
    window: plan.window,
    headsPerKv: s.heads / s.kvHeads,
    scale: s.scale,
  });
}

export function ccaLayoutOf(s: AttentionShape, plan: CcaGpuPlan): CcaLayout {
  return {
    heads: s.heads,
    kvHeads: s.kvHeads,
    headDim: s.headDim,
    scale: s.scale,
    group: plan.group,
    window: plan.window,
    queries: s.queries,
    queryStart: plan.queryStart,
    raw: s.keys,
    rawStart: plan.rawStart,
    cores: Math.max(1, plan.cores),
  };
}

/** CCA attention of q [Hq, Nq, D] over k, v [Hkv, Nk, D], causal, bottom-right aligned. */
export async function ccaAttention(
  device: Device,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: CcaOptions = {},
): Promise<AttentionState> {
  const s = attentionShape(q, k, v, opts);
  const plan = ccaPrefillPlan(s, {
    group: opts.group ?? CCA_DEFAULTS.group,
    window: opts.window ?? CCA_DEFAULTS.window,
    variant: opts.variant,
  });
  if (!device.gpu) return ccaPrefillCpu(q, k, v, s, plan);
  return runInHeadChunks(device.gpu, q, k, v, s, (gpu, x) => ccaAttentionGpu(gpu, x, plan));
}

/** Both passes on the CPU (the twin), synchronously; the benchmark times this. */
export function ccaPrefillCpu(q: Tensor, k: Tensor, v: Tensor, s: AttentionShape, plan: CcaGpuPlan): AttentionState {
  const L = ccaLayoutOf(s, plan);
  const [Q, K, V] = [asFloat32(q), asFloat32(k), asFloat32(v)];
  const coreK = new Float32Array(s.kvHeads * L.cores * s.headDim);
  const coreV = new Float32Array(coreK.length);
  ccaPoolCpu(Q, K, V, L, 0, plan.cores, coreK, coreV, q.dtype === 'f16');
  return ccaAttendCpu(Q, coreK, coreV, K, V, L);
}

/** Query-key pairs CCA attends over N causal tokens: each query's cores plus its raw window. */
export function ccaAttendedPairs(n: number, p: CcaParams): number {
  let pairs = 0;
  for (let m = 0; m < n; m++) {
    const c = coresSeen(m, p.group, p.window);
    pairs += c + m - c * p.group + 1;
  }
  return pairs;
}

/**
 * Pass 2 alone, over cores already pooled (coreK, coreV [Hkv, C, D], C >= the cores any query sees) and raw
 * rows k, v [Hkv, R, D] at positions [rawStart, rawStart + R); queries at [queryStart, queryStart + Nq).
 * What CcaKVCache runs for prefill with a cache and for decoding.
 */
export async function ccaAttendPooled(
  device: Device,
  q: Tensor,
  coreK: Tensor,
  coreV: Tensor,
  k: Tensor,
  v: Tensor,
  plan: CcaParams & { queryStart: number; rawStart: number },
  scale?: number,
): Promise<AttentionState> {
  const s = attentionShape(q, k, v, { scale });
  const cores = coreK.shape[1];
  if (coreK.shape[0] !== s.kvHeads || coreK.shape[2] !== s.headDim || coreV.shape.join() !== coreK.shape.join()) {
    throw new ShapeError(`cores [${coreK.shape}] / [${coreV.shape}] do not fit k [${k.shape}]`);
  }
  const lastCore = s.queries > 0 ? coresSeen(plan.queryStart + s.queries - 1, plan.group, plan.window) : 0;
  if (lastCore > cores) throw new ShapeError(`the last query sees ${lastCore} cores, only ${cores} given`);
  const firstRaw = coresSeen(plan.queryStart, plan.group, plan.window) * plan.group;
  if (s.queries > 0 && (firstRaw < plan.rawStart || plan.queryStart + s.queries > plan.rawStart + s.keys)) {
    throw new ShapeError(
      `the queries see raw positions [${firstRaw}, ${plan.queryStart + s.queries}), the raw rows hold [${plan.rawStart}, ${plan.rawStart + s.keys})`,
    );
  }
  const full: CcaGpuPlan = { ...plan, cores, poolFirst: 0, poolCount: 0 };
  if (!device.gpu) {
    return ccaAttendCpu(
      asFloat32(q),
      asFloat32(coreK),
      asFloat32(coreV),
      asFloat32(k),
      asFloat32(v),
      ccaLayoutOf(s, full),
    );
  }
  const gpu = device.gpu;
  let done = 0; // runInHeadChunks visits KV heads in order; each chunk gets its slice of the cores
  return runInHeadChunks(gpu, q, k, v, s, async (g, x) => {
    const per = Math.max(1, cores) * s.headDim;
    const slice = (t: Tensor) => {
      const data = toDType(t, x.dtype).data;
      const part = data.subarray(done * cores * s.headDim, (done + x.shape.kvHeads) * cores * s.headDim);
      return part.length ? part : new (data.constructor as Float32ArrayConstructor)(x.shape.kvHeads * per);
    };
    const bufs = {
      k: await g.upload(slice(coreK), 'cca core keys'),
      v: await g.upload(slice(coreV), 'cca core values'),
    };
    try {
      await ccaAttentionGpu(g, x, full, bufs);
    } finally {
      g.release(bufs.k);
      g.release(bufs.v);
      done += x.shape.kvHeads;
    }
  });
}
