// One upload of a model's weights per device and storage dtype, shared by every decoder made from it. Each
// decoder took its own copy before: a session created for a 1B model at 128K re-read, converted and uploaded
// 2.4 GB of weights (~8 s on the H200, most of a saved session's load), and two live sessions held two copies
// on the GPU. A lease counts its users; the buffers are freed when the last one lets go (the api's Model holds
// one for its lifetime, so sessions made one after another reuse the upload).
import type { GpuContext } from '../../runtime/webgpu.js';
import type { LoadedModel } from '../types.js';
import { uploadWeights, type GpuWeights } from './gpu-weights.js';

interface Held {
  weights: Promise<GpuWeights>;
  owned: GPUBuffer[];
  users: number;
}

export interface WeightsLease {
  weights: GpuWeights;
  /** Lets go of the weights; the last lease frees their buffers. Idempotent. */
  release(): void;
}

// Per device, per weights object (a LoadedModel whose config changed, e.g. its RoPE, keeps the same weights), per
// storage dtype.
const held = new WeakMap<GpuContext, WeakMap<object, Map<string, Held>>>();

export async function leaseWeights(gpu: GpuContext, model: LoadedModel, storage: 'f32' | 'f16'): Promise<WeightsLease> {
  let byModel = held.get(gpu);
  if (!byModel) held.set(gpu, (byModel = new WeakMap()));
  let byStorage = byModel.get(model.weights);
  if (!byStorage) byModel.set(model.weights, (byStorage = new Map()));
  let h = byStorage.get(storage);
  if (!h) {
    const owned: GPUBuffer[] = [];
    const entry: Held = { weights: uploadWeights(gpu, model, storage, owned), owned, users: 0 };
    byStorage.set(storage, entry);
    entry.weights.catch(() => {
      // A failed upload is forgotten (the next lease tries again) and what it made is freed.
      if (byStorage.get(storage) === entry) byStorage.delete(storage);
      owned.forEach((b) => gpu.release(b));
    });
    h = entry;
  }
  const entry = h;
  entry.users++;
  let weights: GpuWeights;
  try {
    weights = await entry.weights;
  } catch (e) {
    entry.users--;
    throw e;
  }
  let released = false;
  return {
    weights,
    release() {
      if (released) return;
      released = true;
      if (--entry.users > 0) return;
      if (byStorage.get(storage) === entry) byStorage.delete(storage);
      entry.owned.forEach((b) => gpu.release(b));
      entry.owned.length = 0;
    },
  };
}
