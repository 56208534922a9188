// The adapter's limits, read and checked against what the model would put in one buffer: the largest weight
// tensor as the GPU holds it (dequantised to f32 or f16 on upload) and one layer's KV cache at the chosen
// context. What cannot fit is refused with the numbers before anything is uploaded.
import { OutOfMemoryError, type Device, type Model } from '../../src/index.js';
import { formatBytes } from './dom.js';

export interface AdapterLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
}

export function adapterLimits(device: Device): AdapterLimits | undefined {
  const l = device.gpu?.device.limits;
  if (!l) return undefined;
  return {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
  };
}

export function describeLimits(l: AdapterLimits | undefined): string {
  if (!l) return 'CPU backend: no adapter limits';
  return (
    `binding ${formatBytes(l.maxStorageBufferBindingSize)}, buffer ${formatBytes(l.maxBufferSize)}, ` +
    `workgroup storage ${formatBytes(l.maxComputeWorkgroupStorageSize)}, ${l.maxComputeInvocationsPerWorkgroup} invocations`
  );
}

/** Throws an OutOfMemoryError naming the tensor (or the cache) and both sizes when one buffer cannot hold it. */
export function checkFitsAdapter(model: Model, contextSize: number, limits: AdapterLimits | undefined): string {
  if (!limits) return 'no GPU limits to check';
  const bytesPerValue = model.storage === 'f16' ? 2 : 4;
  const w = model.modelFiles.model.weights;
  const tensors = [w.tokenEmbedding, w.outputNorm, ...(w.output ? [w.output] : [])];
  for (const l of w.layers) for (const t of Object.values(l)) if (t && 'shape' in t && 'bytes' in t) tensors.push(t);
  const largest = tensors.reduce((a, b) => (held(b) > held(a) ? b : a));
  function held(t: { shape: readonly number[] }): number {
    return t.shape.reduce((x, y) => x * y, 1) * bytesPerValue;
  }
  const bind = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  if (held(largest) > bind)
    throw new OutOfMemoryError(
      `tensor ${largest.name} needs ${held(largest)} bytes (${formatBytes(held(largest))}) in one buffer; ` +
        `this adapter binds at most ${bind} bytes (${formatBytes(bind)})`,
      held(largest),
      bind,
    );
  const c = model.config;
  const kvLayer = contextSize * c.kvHeads * c.headDim * bytesPerValue;
  if (kvLayer > bind)
    throw new OutOfMemoryError(
      `one layer's keys at ${contextSize} tokens need ${kvLayer} bytes (${formatBytes(kvLayer)}) in one buffer; ` +
        `this adapter binds at most ${bind} bytes (${formatBytes(bind)}): choose a shorter context or a window`,
      kvLayer,
      bind,
    );
  return `largest tensor ${largest.name}: ${formatBytes(held(largest))} of ${formatBytes(bind)}; one layer's keys ${formatBytes(kvLayer)}`;
}
