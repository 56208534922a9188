// What a resident GPU layer (cca-gpu.ts, dsa-gpu.ts) reuses between chunks so that a decode step creates
// nothing: bind groups made once per set of caller buffers (a decoder hands the same q, k, v and out
// buffers to every step), uniform blocks rewritten in place, and dispatch grids that wrap onto y.
import type { GpuContext } from '../../runtime/webgpu.js';

export class BindGroupCache {
  private entries: Array<{ key: GPUBuffer[]; groups: GPUBindGroup[] }> = [];

  /** limit: caller buffer sets remembered (prefill and decode buffers of a decoder, with room). */
  constructor(private readonly limit = 8) {}

  get(key: GPUBuffer[], make: () => GPUBindGroup[]): GPUBindGroup[] {
    const hit = this.entries.find((e) => e.key.length === key.length && e.key.every((b, i) => b === key[i]));
    if (hit) return hit.groups;
    const groups = make();
    this.entries.unshift({ key, groups });
    if (this.entries.length > this.limit) this.entries.pop();
    return groups;
  }

  clear(): void {
    this.entries = [];
  }
}

/** A uniform block made once (bytes: its largest content) and rewritten with GpuContext.write per chunk. */
export function persistentUniform(gpu: GpuContext, bytes: number): GPUBuffer {
  return gpu.uniform(new ArrayBuffer(Math.ceil(bytes / 16) * 16));
}

export function writeUniform(gpu: GpuContext, buffer: GPUBuffer, words: ArrayBuffer): void {
  gpu.write(buffer, 0, words);
}

/** A grid of `groups` workgroups as (columns, rows) within the device's per-dimension limit. */
export function wrapGrid(gpu: GpuContext, groups: number): [number, number] {
  const columns = Math.max(1, Math.min(groups, gpu.maxWorkgroupsPerDim));
  return [columns, Math.ceil(groups / columns)];
}

const shared = new WeakMap<GpuContext, Map<string, { buffer: GPUBuffer; refs: number }>>();

/**
 * A scratch buffer shared by the resident layers of one device (keyed by label and size): for temporaries
 * that one submit writes and reads in full (stored scores, selection state), so layers need not hold a copy
 * each. A fresh buffer is zeroed. Give it back with releaseShared.
 */
export async function sharedBuffer(gpu: GpuContext, bytes: number, label: string): Promise<GPUBuffer> {
  let map = shared.get(gpu);
  if (!map) shared.set(gpu, (map = new Map()));
  const key = `${label}/${bytes}`;
  const hit = map.get(key);
  if (hit) {
    hit.refs++;
    return hit.buffer;
  }
  const buffer = await gpu.createBuffer(bytes, label);
  map.set(key, { buffer, refs: 1 });
  return buffer;
}

export function releaseShared(gpu: GpuContext, buffer: GPUBuffer): void {
  const map = shared.get(gpu);
  for (const [key, e] of map ?? []) {
    if (e.buffer !== buffer) continue;
    if (--e.refs === 0) {
      map!.delete(key);
      gpu.release(buffer);
    }
    return;
  }
}
