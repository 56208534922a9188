// What a session's context costs before anything is allocated: model/plan.ts's weights + KV cache +
// activations for the chosen attention method, against a memory budget; when it does not fit, the same
// sums for the other methods say which would.
import { planModel, type ModelPlan, formatBytes } from '../model/plan.js';
import type { ModelConfig, WeightTensor } from '../model/types.js';
import { ContextTooLargeError } from './errors.js';
import { isGpuQuant, quantGpuBytes } from '../weights/quant-gpu.js';

export interface ContextPlanOptions {
  contextSize: number;
  /** Attention method spec (default flash: exact). */
  attention?: string;
  /** Where the KV cache lives: 'cpu' holds f32; 'webgpu' holds `storage`. */
  backend?: 'cpu' | 'webgpu';
  storage?: 'f32' | 'f16';
  chunk?: number;
  /** Bytes the run may use (default: the host's total memory). */
  memoryBytes?: number;
  /** Bytes of the weights as held (default: parameters x 2). */
  weightBytes?: number;
}

export interface ContextPlan extends ModelPlan {
  budgetBytes: number;
  fits: boolean;
  /** Methods that fit at this context size when the chosen one does not, closest to exact first. */
  alternatives: Array<{ attention: string; totalBytes: number }>;
}

/** Methods offered instead, closest to exact attention first (every one runs on both backends). */
export const FALLBACK_METHODS = [
  'flash',
  'hybrid:every=4,window=4096',
  'cca:group=16,window=1024',
  'sinks:tokens=4,left=4096',
  'window:left=4096',
  'window:left=1024',
] as const;

export async function defaultMemoryBudget(): Promise<number> {
  const os = await import('node:os').catch(() => undefined);
  return os ? os.totalmem() : 4 * 2 ** 30;
}

export function planContext(config: ModelConfig, o: ContextPlanOptions & { memoryBytes: number }): ContextPlan {
  const attention = o.attention ?? 'flash';
  const dtype = o.backend === 'webgpu' ? (o.storage ?? 'f32') : 'f32';
  const one = (spec: string) =>
    planModel(config, { context: o.contextSize, attention: spec, dtype, chunk: o.chunk, weightBytes: o.weightBytes });
  const p = one(attention);
  const fits = p.totalBytes <= o.memoryBytes;
  const alternatives = fits
    ? []
    : FALLBACK_METHODS.filter((m) => m !== attention)
        .map((m) => ({ attention: m, totalBytes: one(m).totalBytes }))
        .filter((a) => a.totalBytes <= o.memoryBytes);
  return { ...p, budgetBytes: o.memoryBytes, fits, alternatives };
}

export function refuse(p: ContextPlan): ContextTooLargeError {
  const fits = p.alternatives.map((a) => `${a.attention} (${formatBytes(a.totalBytes)})`);
  return new ContextTooLargeError(
    `a context of ${p.context} tokens with ${p.attention} needs ${formatBytes(p.totalBytes)} ` +
      `(weights ${formatBytes(p.weightBytes)}, KV cache ${formatBytes(p.kvCacheBytes)}, activations ${formatBytes(p.activationBytes)}) ` +
      `but the budget is ${formatBytes(p.budgetBytes)}; ` +
      (fits.length ? `methods that fit: ${fits.join(', ')}` : 'no method fits: use a smaller context size'),
    p.totalBytes,
    p.budgetBytes,
    p.alternatives.map((a) => a.attention),
  );
}

/** Bytes the decoder holds for the weights: the GPU keeps quantised matrices quantised (Q8_0 tiles, quant-gpu.ts
 * planes; a Q8_0 token embedding excepted) and expands the rest to the storage type (gpu-weights.ts); the CPU
 * decodes small models to f32 once and keeps larger ones in their file encoding (decoder-cpu's rule). */
export function heldWeightBytes(
  tensors: readonly WeightTensor[],
  backend: 'cpu' | 'webgpu',
  storage: 'f32' | 'f16',
  embedding?: WeightTensor,
): number {
  let elements = 0;
  let fileBytes = 0;
  let gpuBytes = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    elements += n;
    fileBytes += t.bytes.byteLength;
    const matrix = t.shape.length === 2;
    // Q8_0 tables are looked up in the storage dtype; the 4-6 bit ones stay quantised, as every matrix does.
    if (matrix && t.dtype === 'q8_0' && t !== embedding)
      gpuBytes += (n * 9) / 8; // int8s, then an f32 per 32
    else if (matrix && isGpuQuant(t.dtype)) gpuBytes += quantGpuBytes(t.dtype, t.shape[0], t.shape[1]);
    else gpuBytes += t.shape.length === 2 && storage === 'f16' ? 2 * n : 4 * n;
  }
  if (backend === 'webgpu') return gpuBytes;
  return elements * 4 < 256 * 2 ** 20 ? elements * 4 : fileBytes;
}
