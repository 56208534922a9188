// Runs an attention kernel on WebGPU in chunks of key/value heads, so that no buffer exceeds the device's
// largest binding (lavapipe binds 128 MiB, the H100 2 GiB; K of 128K tokens x 32 heads x 128 dims in f16
// is 1 GiB). Each chunk uploads its q/k/v slice, runs, and its o/lse are read back into the full state.
import { UnsupportedError } from '../errors.js';
import { bytesPerElement, tensor, toDType, type Tensor } from '../tensor.js';
import type { GpuContext } from '../runtime/webgpu.js';
import type { AttentionShape } from '../spine/problem.js';
import { emptyState, type AttentionState } from '../spine/state.js';

export interface GpuInputs {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  o: GPUBuffer;
  lse: GPUBuffer;
  /** The chunk's shape: heads and kvHeads count only this chunk's heads. */
  shape: AttentionShape;
  dtype: Tensor['dtype'];
}

export type GpuKernel = (gpu: GpuContext, x: GpuInputs) => Promise<void>;

/** Bytes that one key/value head brings into the largest single binding, with its query heads. */
export function bytesPerKvHead(s: AttentionShape, elemBytes: number): number {
  const group = s.heads / s.kvHeads;
  return Math.max(
    group * s.queries * s.headDim * 4,
    s.keys * s.headDim * elemBytes,
    group * s.queries * s.headDim * elemBytes,
  );
}

export function kvHeadsPerChunk(s: AttentionShape, elemBytes: number, maxBindingBytes: number): number {
  const per = bytesPerKvHead(s, elemBytes);
  const n = Math.floor(maxBindingBytes / per);
  if (n < 1) {
    throw new UnsupportedError(
      `one key/value head needs ${per} bytes in one binding, more than this device's ${maxBindingBytes}; shorten the sequence or use the CPU backend`,
    );
  }
  return Math.min(n, s.kvHeads);
}

function slice(t: Tensor, from: number, to: number): Tensor {
  const per = t.shape[1] * t.shape[2];
  return tensor([to - from, t.shape[1], t.shape[2]], t.dtype, t.data.subarray(from * per, to * per));
}

/** Runs `kernel` over every head chunk and returns the whole state. Inputs are converted to f32 if the device lacks f16.
 * maxBindingBytes can be lowered (tests do) to force chunking. */
export async function runInHeadChunks(
  gpu: GpuContext,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  s: AttentionShape,
  kernel: GpuKernel,
  maxBindingBytes = gpu.maxBindingBytes,
): Promise<AttentionState> {
  const dtype = q.dtype === 'f16' && !gpu.features.f16 ? 'f32' : q.dtype;
  [q, k, v] = [toDType(q, dtype), toDType(k, dtype), toDType(v, dtype)];
  const group = s.heads / s.kvHeads;
  const step = kvHeadsPerChunk(s, bytesPerElement(dtype), maxBindingBytes);
  const out = emptyState(s.heads, s.queries, s.headDim);
  for (let a = 0; a < s.kvHeads; a += step) {
    const b = Math.min(s.kvHeads, a + step);
    const shape: AttentionShape = { ...s, kvHeads: b - a, heads: (b - a) * group };
    const rows = shape.heads * s.queries;
    const owned: GPUBuffer[] = [];
    try {
      const up = async (t: Tensor | Float32Array, label: string) => {
        const buf = await gpu.upload(t instanceof Float32Array ? t : t.data, label);
        owned.push(buf);
        return buf;
      };
      const x: GpuInputs = {
        q: await up(slice(q, a * group, b * group), 'q'),
        k: await up(slice(k, a, b), 'k'),
        v: await up(slice(v, a, b), 'v'),
        o: await up(new Float32Array(rows * s.headDim).fill(NaN), 'o'), // poisoned: every row must be written
        lse: await up(new Float32Array(rows).fill(NaN), 'lse'),
        shape,
        dtype,
      };
      await kernel(gpu, x);
      const o = new Float32Array(await gpu.read(x.o, rows * s.headDim * 4));
      const lse = new Float32Array(await gpu.read(x.lse, rows * 4));
      out.o.set(o, a * group * s.queries * s.headDim);
      out.lse.set(lse, a * group * s.queries);
    } finally {
      for (const buf of owned) gpu.release(buf);
    }
  }
  return out;
}
