// Times one attention configuration on one device: median milliseconds over repetitions after warm-up,
// TFLOP/s, and the peak device memory of the call (inputs, outputs and temporaries, as PyTorch's
// max_memory_allocated counts them). WebGPU inputs are generated on the device and stay there.
import { denseAttentionGpu } from '../attention/dense.js';
import { flashAttentionGpu, chooseFlashVariant, type FlashVariant } from '../attention/flash.js';
import { kvHeadsPerChunk, type GpuInputs } from '../attention/gpu-chunks.js';
import type { AttentionShape } from '../attention/problem.js';
import { denseAttentionCpu, denseScoreBytes } from '../kernels/dense-cpu.js';
import { flashAttentionCpu } from '../kernels/flash-cpu.js';
import { LongctxError, OutOfMemoryError } from '../errors.js';
import type { Device } from '../runtime/device.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { bytesPerElement, randomNormal, type DType } from '../tensor.js';
import { randomGpuBuffer } from './gpu-fill.js';
import { attentionFlops, type BenchRow } from './report.js';

export interface AttentionCase {
  method: 'dense' | 'flash';
  variant?: FlashVariant;
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

function shapeOf(c: AttentionCase): AttentionShape {
  return { heads: c.heads, kvHeads: c.kvHeads, queries: c.seqLen, keys: c.seqLen, headDim: c.headDim, causal: c.causal, scale: 1 / Math.sqrt(c.headDim) };
}

async function timeGpu(gpu: GpuContext, c: AttentionCase, t: BenchTiming): Promise<{ ms: number; peak: number; variant: string }> {
  const s = shapeOf(c);
  const f16 = c.dtype === 'f16';
  const group = s.heads / s.kvHeads;
  const step = kvHeadsPerChunk(s, bytesPerElement(c.dtype), gpu.maxBindingBytes);
  const variant = c.method === 'flash' ? chooseFlashVariant(gpu, s.headDim, c.dtype, c.variant) : 'tiled';
  const chunks: GpuInputs[] = [];
  const owned: GPUBuffer[] = [];
  const before = gpu.allocatedBytes;
  gpu.resetPeak();
  try {
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
    }
    const once = async () => {
      for (const x of chunks) await (c.method === 'dense' ? denseAttentionGpu(gpu, x) : flashAttentionGpu(gpu, x, c.variant));
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
    return { ms: median(times), peak: gpu.peakBytes - before, variant };
  } finally {
    for (const b of owned) gpu.release(b);
  }
}

function timeCpu(c: AttentionCase, t: BenchTiming): { ms: number; peak: number; variant: string } {
  const s = shapeOf(c);
  const q = randomNormal([s.heads, s.queries, s.headDim], 1, c.dtype);
  const k = randomNormal([s.kvHeads, s.keys, s.headDim], 2, c.dtype);
  const v = randomNormal([s.kvHeads, s.keys, s.headDim], 3, c.dtype);
  const run = () => (c.method === 'dense' ? denseAttentionCpu(q, k, v, s) : flashAttentionCpu(q, k, v, s));
  for (let i = 0; i < t.warmup; i++) run();
  const times: number[] = [];
  for (let i = 0; i < t.reps; i++) {
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  const io = (q.data.byteLength + k.data.byteLength + v.data.byteLength) + s.heads * s.queries * (s.headDim + 1) * 4;
  // CPU memory is not measured per call (the JS heap is shared); this is what the call must hold.
  return { ms: median(times), peak: io + (c.method === 'dense' ? denseScoreBytes(s) : 0), variant: c.method === 'dense' ? 'js' : 'js-tiled' };
}

export async function benchAttentionCase(device: Device, c: AttentionCase, t: BenchTiming): Promise<BenchRow> {
  const base: BenchRow = {
    source: 'longctx', method: c.method, backend: device.backend, dtype: c.dtype, seqLen: c.seqLen,
    heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, causal: c.causal, ms: null, tflops: null, peakBytes: null, status: 'ok',
  };
  try {
    const r = device.gpu ? await timeGpu(device.gpu, c, t) : timeCpu(c, t);
    return { ...base, variant: r.variant, ms: r.ms, peakBytes: r.peak, tflops: attentionFlops(c.seqLen, c.heads, c.headDim, c.causal) / (r.ms * 1e-3) / 1e12 };
  } catch (e) {
    if (e instanceof OutOfMemoryError) return { ...base, status: 'oom', note: e.message.slice(0, 120) };
    if (e instanceof LongctxError) return { ...base, status: 'error', note: e.message.slice(0, 160) };
    throw e;
  }
}
