// Support for the resident GPU layer tests (cca-gpu-layer, dsa-gpu-layer): the caller's chunk buffers
// (made once at the largest chunk, as a decoder would), writes of host tensors into them, NaN poisoning,
// reading the output and the GPU counters that must not move across decode steps.
import assert from 'node:assert/strict';
import { tensor, type Tensor } from '../src/tensor.js';
import type { GpuContext, GpuCounters } from '../src/runtime/webgpu.js';
import type { LayerAttention } from '../src/attention/layer.js';

export interface ChunkBuffers {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  out: GPUBuffer;
}

export async function chunkBuffers(
  gpu: GpuContext,
  s: { heads: number; kvHeads: number; headDim: number; dtype: 'f32' | 'f16' },
  maxTokens: number,
): Promise<ChunkBuffers> {
  const e = s.dtype === 'f16' ? 2 : 4;
  const [Hq, Hkv, D] = [s.heads, s.kvHeads, s.headDim];
  return {
    q: await gpu.createBuffer(Hq * maxTokens * D * e, 'test q'),
    k: await gpu.createBuffer(Hkv * maxTokens * D * e, 'test k'),
    v: await gpu.createBuffer(Hkv * maxTokens * D * e, 'test v'),
    out: await gpu.createBuffer(Hq * maxTokens * D * 4, 'test out'),
  };
}

/** Writes a host tensor at the start of a buffer (padded to 4 bytes, as writeBuffer needs). */
export function writeTensor(gpu: GpuContext, buffer: GPUBuffer, t: Tensor): void {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
  padded.set(bytes);
  gpu.device.queue.writeBuffer(buffer, 0, padded);
}

/** Tokens [from, to) of q [Hq, N, D], k and v [Hkv, N, D] into a chunk's buffers. */
export function writeChunk(
  gpu: GpuContext,
  bufs: ChunkBuffers,
  x: { q: Tensor; k: Tensor; v: Tensor },
  from: number,
  to: number,
): void {
  for (const name of ['q', 'k', 'v'] as const) writeTensor(gpu, bufs[name], tokens(x[name], from, to));
}

export function poison(gpu: GpuContext, buffer: GPUBuffer, floats: number): void {
  gpu.device.queue.writeBuffer(buffer, 0, new Float32Array(floats).fill(Number.NaN));
}

export async function readFloats(gpu: GpuContext, buffer: GPUBuffer, floats: number): Promise<Float32Array> {
  return new Float32Array(await gpu.read(buffer, floats * 4));
}

/** Tokens [from, to) of a [H, N, D] tensor. */
export function tokens(t: Tensor, from: number, to: number): Tensor {
  const [H, N, D] = t.shape;
  const out = t.dtype === 'f32' ? new Float32Array(H * (to - from) * D) : new Uint16Array(H * (to - from) * D);
  for (let h = 0; h < H; h++) out.set(t.data.subarray((h * N + from) * D, (h * N + to) * D), h * (to - from) * D);
  return tensor([H, to - from, D], t.dtype, out);
}

export function counters(gpu: GpuContext): GpuCounters {
  return { ...gpu.counters };
}

/** Nothing read back, created or bound between two snapshots (submissions and writes aside). */
export function assertSameCounters(before: GpuCounters, after: GpuCounters, label: string): void {
  // Submissions and queue writes are work, not allocation: a decode step makes them.
  const { submits: _a, writes: _aw, writesSkipped: _as, ...a } = after;
  const { submits: _b, writes: _bw, writesSkipped: _bs, ...b } = before;
  assert.deepEqual(a, b, `${label}: a decode step read back or created something`);
}

/** |got - want| <= tol * max(1, max |want|), no NaN. */
export function assertClose(got: Float32Array, want: Float32Array, tol: number, label: string): void {
  assert.equal(got.length, want.length, `${label}: lengths`);
  let scale = 1;
  for (const x of want) scale = Math.max(scale, Math.abs(x));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(got[i])) assert.fail(`${label}: out[${i}] is NaN (left unwritten)`);
    const e = Math.abs(got[i] - want[i]);
    if (e > worst) [worst, at] = [e, i];
  }
  assert.ok(
    worst <= tol * scale,
    `${label}: error ${worst} at ${at} (got ${got[at]}, want ${want[at]}) > ${tol * scale}`,
  );
}

/** One chunk through a GPU layer as a decoder would feed it: tokens [start, start + T) of q, k, v written
 * into the chunk buffers, the output poisoned with NaN, then forward; with `holdCounters`, nothing may be
 * created or read back during the call. Returns the chunk's host tensors (for the CPU twin). */
export async function feedChunk(
  gpu: GpuContext,
  layer: LayerAttention<GPUBuffer>,
  bufs: ChunkBuffers,
  [q, k, v]: Tensor[],
  start: number,
  T: number,
  holdCounters: string | undefined,
): Promise<Tensor[]> {
  const chunk = [q, k, v].map((t) => tokens(t, start, start + T));
  writeTensor(gpu, bufs.q, chunk[0]);
  writeTensor(gpu, bufs.k, chunk[1]);
  writeTensor(gpu, bufs.v, chunk[2]);
  poison(gpu, bufs.out, q.shape[0] * T * q.shape[2]);
  const before = counters(gpu);
  await layer.forward({ ...bufs, start, tokens: T });
  if (holdCounters) assertSameCounters(before, counters(gpu), holdCounters);
  return chunk;
}
