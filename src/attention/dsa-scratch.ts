// Temporaries of DSA's GPU calls. Small ones (decoding: a few KB per token) are kept per device and reused,
// since creating and destroying buffers costs tens of microseconds each on the host (error scopes), a large
// share of a decode step; large ones (long prefills) are created per call and released at once. Reuse is
// safe because every user records all its work on a buffer in one submission and the queue runs in order.
import type { GpuContext } from '../runtime/webgpu.js';

/** Temporaries at most this large are kept for reuse. */
export const SCRATCH_KEEP_BYTES = 1 << 20;

const kept = new WeakMap<GpuContext, Map<string, GPUBuffer>>();

export interface Scratch {
  buffer: GPUBuffer;
  /** Whether the buffer is fresh (zeroed); a reused one holds what its last user left. */
  fresh: boolean;
  release(): void;
}

export async function scratchBuffer(gpu: GpuContext, bytes: number, label: string): Promise<Scratch> {
  if (bytes > SCRATCH_KEEP_BYTES) {
    const buffer = await gpu.createBuffer(bytes, label);
    return { buffer, fresh: true, release: () => gpu.release(buffer) };
  }
  let map = kept.get(gpu);
  if (!map) kept.set(gpu, (map = new Map()));
  const key = `${label}/${bytes}`;
  const old = map.get(key);
  if (old) return { buffer: old, fresh: false, release: () => {} };
  const buffer = await gpu.createBuffer(bytes, label);
  map.set(key, buffer);
  return { buffer, fresh: true, release: () => {} };
}
