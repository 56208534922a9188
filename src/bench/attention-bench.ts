// Times one attention configuration on one device: median milliseconds over repetitions after warm-up,
// TFLOP/s, and the peak device memory of the call (inputs, outputs and temporaries, as PyTorch's
// max_memory_allocated counts them). WebGPU inputs are generated on the device and stay there.
import { denseAttentionGpu } from '../attention/dense.js';
import {
  flashAttentionGpu,
  chooseFlashVariant,
  prepareBlockMask,
  type FlashVariant,
  type GpuBlockMask,
} from '../attention/flash.js';
import { buildBlockMask } from '../spine/block-mask.js';
import {
  chooseCcaVariant,
  ccaAttendedPairs,
  ccaAttentionGpu,
  ccaCacheBytes,
  ccaParamsFromSpec,
  ccaPrefillCpu,
  ccaPrefillPlan,
  type CcaGpuPlan,
} from '../attention/cca.js';
import { maskForSpec, scheduleFromSpec } from '../attention/sparse.js';
import { formatMethodSpec, variantParam, vcheckParam, type MethodSpec } from '../attention/spec.js';
import type { FlashVCheck } from '../kernels/flash-tc-wgsl.js';
import { kvHeadsPerChunk, type GpuInputs } from '../attention/gpu-chunks.js';
import type { AttentionShape } from '../spine/problem.js';
import { denseAttentionCpu, denseScoreBytes } from '../kernels/dense-cpu.js';
import { flashAttentionCpu } from '../kernels/flash-cpu.js';
import { LongctxError, OutOfMemoryError } from '../errors.js';
import type { Device } from '../runtime/device.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { bytesPerElement, randomNormal, type DType } from '../tensor.js';
import { randomGpuBuffer } from './gpu-fill.js';
import { benchDsaPrefill, dsaAttendedPairs } from './dsa-bench.js';
import type { BenchRow } from './report.js';

export interface AttentionCase {
  /** dense, flash, window, sinks or hybrid (a layer schedule: the mean per layer over one cycle). */
  method: MethodSpec;
  dtype: DType;
  seqLen: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  causal: boolean;
}

export interface BenchTiming {
  reps: number;
  warmup: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** One cycle of layers: a plain method is one call; hybrid:every=E is E calls, timed as their mean. */
function layerCycle(method: MethodSpec): MethodSpec[] {
  if (method.name !== 'hybrid') return [method];
  const schedule = scheduleFromSpec(method);
  return Array.from({ length: Number(method.params.every ?? 3) }, (_, layer) => schedule.methodFor(layer));
}

function shapeOf(c: AttentionCase): AttentionShape {
  return {
    heads: c.heads,
    kvHeads: c.kvHeads,
    queries: c.seqLen,
    keys: c.seqLen,
    headDim: c.headDim,
    causal: c.causal,
    scale: 1 / Math.sqrt(c.headDim),
  };
}

async function timeGpu(
  gpu: GpuContext,
  c: AttentionCase,
  t: BenchTiming,
): Promise<{ ms: number; peak: number; variant: string }> {
  const s = shapeOf(c);
  const f16 = c.dtype === 'f16';
  const group = s.heads / s.kvHeads;
  const step = kvHeadsPerChunk(s, bytesPerElement(c.dtype), gpu.maxBindingBytes);
  const chunks: GpuInputs[] = [];
  const owned: GPUBuffer[] = [];
  const masks: GpuBlockMask[] = [];
  const ccaCores = new Map<GpuInputs, { k: GPUBuffer; v: GPUBuffer }>();
  const before = gpu.allocatedBytes;
  gpu.resetPeak();
  try {
    const calls: Array<{
      dense: boolean;
      variant: FlashVariant;
      mask?: GpuBlockMask;
      cca?: CcaGpuPlan;
      vcheck?: FlashVCheck;
    }> = [];
    for (const spec of layerCycle(c.method)) {
      if (spec.name === 'cca') {
        calls.push({ dense: false, variant: 'portable', cca: ccaPrefillPlan(s, ccaParamsFromSpec(spec)) });
        continue;
      }
      const variant = variantParam(spec);
      const mask = maskForSpec(spec, s.causal);
      const blocks = mask
        ? await prepareBlockMask(gpu, mask, s.queries, s.keys, s.headDim, c.dtype, variant)
        : undefined;
      if (blocks) masks.push(blocks);
      calls.push({ dense: spec.name === 'dense', variant, mask: blocks, vcheck: vcheckParam(spec) });
    }
    const variant = calls
      .map((x) =>
        x.cca
          ? `cca-${chooseCcaVariant(gpu, s.headDim, c.dtype, x.cca.variant)}`
          : x.dense
            ? 'tiled'
            : chooseFlashVariant(gpu, s.headDim, c.dtype, x.variant),
      )
      .join('+');
    for (let a = 0; a < s.kvHeads; a += step) {
      const kv = Math.min(step, s.kvHeads - a);
      const shape = { ...s, kvHeads: kv, heads: kv * group };
      const n = s.keys * s.headDim;
      const bufs = [
        await randomGpuBuffer(gpu, shape.heads * n, f16, 3 * a + 1, 'q'),
        await randomGpuBuffer(gpu, kv * n, f16, 3 * a + 2, 'k'),
        await randomGpuBuffer(gpu, kv * n, f16, 3 * a + 3, 'v'),
        await gpu.createBuffer(shape.heads * n * 4, 'o'),
        await gpu.createBuffer(shape.heads * s.queries * 4, 'lse'),
      ];
      owned.push(...bufs);
      chunks.push({ q: bufs[0], k: bufs[1], v: bufs[2], o: bufs[3], lse: bufs[4], shape, dtype: c.dtype });
      // CCA's pooled cores (O(N/g) rows) are allocated once, outside the timed calls.
      const cca = calls.find((x) => x.cca)?.cca;
      if (cca) {
        const bytes = kv * Math.max(1, cca.cores) * s.headDim * bytesPerElement(c.dtype);
        const cores = {
          k: await gpu.createBuffer(bytes, 'cca core keys'),
          v: await gpu.createBuffer(bytes, 'cca core values'),
        };
        owned.push(cores.k, cores.v);
        ccaCores.set(chunks[chunks.length - 1], cores);
      }
    }
    const once = async () => {
      for (const call of calls) {
        for (const x of chunks)
          await (call.cca
            ? ccaAttentionGpu(gpu, x, call.cca, ccaCores.get(x))
            : call.dense
              ? denseAttentionGpu(gpu, x)
              : flashAttentionGpu(gpu, x, call.variant, call.mask, undefined, call.vcheck));
      }
      await gpu.idle();
    };
    await gpu.idle();
    for (let i = 0; i < t.warmup; i++) await once();
    const times: number[] = [];
    for (let i = 0; i < t.reps; i++) {
      const t0 = performance.now();
      await once();
      times.push(performance.now() - t0);
    }
    return { ms: median(times) / calls.length, peak: gpu.peakBytes - before, variant };
  } finally {
    for (const b of owned) gpu.release(b);
    for (const m of masks) m.release();
  }
}

function timeCpu(c: AttentionCase, t: BenchTiming): { ms: number; peak: number; variant: string } {
  const s = shapeOf(c);
  const q = randomNormal([s.heads, s.queries, s.headDim], 1, c.dtype);
  const k = randomNormal([s.kvHeads, s.keys, s.headDim], 2, c.dtype);
  const v = randomNormal([s.kvHeads, s.keys, s.headDim], 3, c.dtype);
  const calls = layerCycle(c.method).map((spec) => {
    const mask = maskForSpec(spec, s.causal);
    const blockMask = mask && buildBlockMask(mask, s.queries, s.keys, 64, 64);
    if (spec.name === 'cca') return () => ccaPrefillCpu(q, k, v, s, ccaPrefillPlan(s, ccaParamsFromSpec(spec)));
    return spec.name === 'dense'
      ? () => denseAttentionCpu(q, k, v, s)
      : () => flashAttentionCpu(q, k, v, s, { blockMask });
  });
  const run = () => calls.forEach((call) => call());
  for (let i = 0; i < t.warmup; i++) run();
  const times: number[] = [];
  for (let i = 0; i < t.reps; i++) {
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  const io = q.data.byteLength + k.data.byteLength + v.data.byteLength + s.heads * s.queries * (s.headDim + 1) * 4;
  // CPU memory is not measured per call (the JS heap is shared); this is what the call must hold.
  return {
    ms: median(times) / calls.length,
    peak: io + (c.method.name === 'dense' ? denseScoreBytes(s) : 0),
    variant: c.method.name === 'dense' ? 'js' : 'js-tiled',
  };
}

/** Query-key pairs a method attends to over N causal tokens (sparse methods count only what they keep). */
export function attendedPairs(spec: MethodSpec, n: number, isCausal: boolean): number {
  const windowPairs = (reach: number) => {
    // Row i sees min(i + 1, reach) keys: i + 1 until the window is full, then reach.
    const full = Math.max(0, n - reach);
    const ramp = Math.min(n, reach);
    return (ramp * (ramp + 1)) / 2 + full * reach;
  };
  const all = isCausal ? (n * (n + 1)) / 2 : n * n;
  switch (spec.name) {
    case 'window':
      return isCausal
        ? windowPairs(Number(spec.params.left) + 1)
        : Math.min(all, n * (Number(spec.params.left) + Number(spec.params.right ?? 0) + 1));
    case 'sinks':
      return isCausal ? windowPairs(Number(spec.params.left) + 1 + Number(spec.params.tokens)) : all;
    case 'cca':
      return ccaAttendedPairs(n, ccaParamsFromSpec(spec));
    case 'hybrid': {
      const every = Number(spec.params.every ?? 3);
      const local = attendedPairs({ name: 'window', params: { left: spec.params.window ?? '128' } }, n, isCausal);
      return (all + (every - 1) * local) / every;
    }
    default:
      return all;
  }
}

export async function benchAttentionCase(device: Device, c: AttentionCase, t: BenchTiming): Promise<BenchRow> {
  const base: BenchRow = {
    source: 'longctx',
    method: formatMethodSpec(c.method),
    backend: device.backend,
    dtype: c.dtype,
    seqLen: c.seqLen,
    heads: c.heads,
    kvHeads: c.kvHeads,
    headDim: c.headDim,
    causal: c.causal,
    ms: null,
    tflops: null,
    peakBytes: null,
    status: 'ok',
  };
  try {
    if (c.method.name === 'dsa') {
      const r = await benchDsaPrefill(device, c.method, c, t.reps, t.warmup);
      return {
        ...base,
        variant: r.variant,
        ms: r.ms,
        peakBytes: r.peak,
        note: r.note,
        tflops:
          (4 * dsaAttendedPairs(c.seqLen, Number(c.method.params.topk ?? 2048)) * c.heads * c.headDim) /
          (r.ms * 1e-3) /
          1e12,
      };
    }
    const r = device.gpu ? await timeGpu(device.gpu, c, t) : timeCpu(c, t);
    // CCA: what its decoding cache would hold for these N tokens, against a dense cache.
    const cca =
      c.method.name === 'cca'
        ? ccaCacheBytes(c.seqLen, c.kvHeads, c.headDim, c.dtype, ccaParamsFromSpec(c.method))
        : undefined;
    const kvNote =
      cca === undefined
        ? {}
        : {
            note:
              `KV cache ${(cca / 2 ** 20).toFixed(1)} MiB = ` +
              `${((100 * cca) / (2 * c.seqLen * c.kvHeads * c.headDim * bytesPerElement(c.dtype))).toFixed(2)}% of dense`,
          };
    return {
      ...base,
      ...kvNote,
      variant: r.variant,
      ms: r.ms,
      peakBytes: r.peak,
      tflops: (4 * attendedPairs(c.method, c.seqLen, c.causal) * c.heads * c.headDim) / (r.ms * 1e-3) / 1e12,
    };
  } catch (e) {
    if (e instanceof OutOfMemoryError) return { ...base, status: 'oom', note: e.message.slice(0, 120) };
    if (e instanceof LongctxError) return { ...base, status: 'error', note: e.message.slice(0, 160) };
    throw e;
  }
}
