// A WebGPU kv cache ([kvHeads, slots, D] in two buffers) as a saved state and back (kv-cache-state.ts says what
// a state holds). Restoring writes each run of saved rows straight from the state's arrays into the buffers:
// no cache-sized image on the host, since a 1B model's f16 cache at 128K tokens is 4 GiB and building, filling
// and uploading an image of it cost most of a session's load. Saving reads each buffer back whole.
import type { GpuContext } from '../../runtime/webgpu.js';
import { GpuUploader, uploadModeFromEnv, type UploadData } from '../../runtime/gpu-upload.js';
import type { DType, HostData } from '../../tensor.js';
import type { LayerCacheState } from '../layer.js';
import { planKvRestore, restoreKvCache, saveKvCache } from './kv-cache-state.js';
import type { RingLayout } from './ring-layout.js';

export interface GpuKvCache {
  spec: string;
  kvHeads: number;
  headDim: number;
  dtype: DType;
  layout: RingLayout;
  k: GPUBuffer;
  v: GPUBuffer;
}

const elementBytes = (c: GpuKvCache) => (c.dtype === 'f16' ? 2 : 4);
const imageElements = (c: GpuKvCache) => c.kvHeads * c.layout.slots * c.headDim;
const hostArray = (c: GpuKvCache, x: ArrayBuffer | number): HostData =>
  c.dtype === 'f16' ? new Uint16Array(x as ArrayBuffer) : new Float32Array(x as ArrayBuffer);

/** The state of the first `tokens` tokens (the positions the layout holds, in position order). */
export async function saveGpuKvCache(gpu: GpuContext, c: GpuKvCache, tokens: number): Promise<LayerCacheState> {
  const bytes = imageElements(c) * elementBytes(c);
  const k = hostArray(c, await gpu.read(c.k, bytes));
  const v = hostArray(c, await gpu.read(c.v, bytes));
  return saveKvCache(c.spec, tokens, { ...c, k, v });
}

/** Writes a saved state into the buffers; false when the layout holds a position the state lacks. */
export async function restoreGpuKvCache(gpu: GpuContext, c: GpuKvCache, state: LayerCacheState): Promise<boolean> {
  const plan = planKvRestore(state, c);
  if (!plan) return false;
  const D = c.headDim;
  const size = elementBytes(c);
  // writeBuffer moves multiples of 4 bytes: f16 rows of an odd head dim go up as one whole image instead.
  if ((D * size) % 4 !== 0) return restoreImage(gpu, c, state);
  const up = new GpuUploader(gpu, uploadModeFromEnv());
  for (const [buffer, data] of [
    [c.k, plan.k],
    [c.v, plan.v],
  ] as const)
    for (let head = 0; head < c.kvHeads; head++)
      for (const x of plan.copies)
        await up.write(
          buffer,
          (head * c.layout.slots + x.slot) * D * size,
          data as UploadData,
          (head * plan.rows + x.row) * D,
          x.rows * D,
        );
  await up.settle(); // this layer's rows are on the GPU and the staging memory is given back
  return true;
}

function restoreImage(gpu: GpuContext, c: GpuKvCache, state: LayerCacheState): boolean {
  const k = hostArray(c, imageElements(c));
  const v = hostArray(c, imageElements(c));
  if (!restoreKvCache(state, { ...c, k, v })) return false;
  gpu.write(c.k, 0, k.buffer as ArrayBuffer);
  gpu.write(c.v, 0, v.buffer as ArrayBuffer);
  return true;
}
