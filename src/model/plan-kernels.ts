// Which kernel each layer method runs, from the planner (attention/planner.ts), for `longctx plan`: the
// same choice the layers make at run time, for a device profile named on the command line.
import { SpecError } from '../errors.js';
import type { GpuFeatures } from '../runtime/webgpu.js';
import { formatChoice, planFlash } from '../attention/planner.js';
import { kvMethod, KV_METHODS } from '../attention/layers/kv-method.js';
import type { MethodSpec } from '../attention/spec.js';
import type { ModelConfig } from './types.js';

export const DEVICE_PROFILES: Record<string, { features?: GpuFeatures; description: string }> = {
  'tensor-cores': {
    features: { f16: true, subgroups: true, subgroupMatrixF16: true, timestamps: true },
    description: 'WebGPU with f16 subgroup matrices (NVIDIA tensor cores through Dawn: H100, H200)',
  },
  portable: {
    features: { f16: true, subgroups: false, subgroupMatrixF16: false, timestamps: false },
    description: 'WebGPU with shader-f16 only (e.g. lavapipe)',
  },
  cpu: { description: 'the CPU backend' },
};

export interface LayerKernels {
  prefill: string;
  decode: string;
}

export function deviceProfile(name: string): { features?: GpuFeatures; description: string } {
  const p = DEVICE_PROFILES[name];
  if (!p) throw new SpecError(`unknown device profile '${name}'; known: ${Object.keys(DEVICE_PROFILES).join(', ')}`);
  return p;
}

export function layerKernels(
  c: ModelConfig,
  spec: MethodSpec,
  o: { context: number; chunk: number; dtype: 'f16' | 'f32'; features?: GpuFeatures },
): LayerKernels {
  if (!(KV_METHODS as readonly string[]).includes(spec.name)) {
    const inside =
      spec.name === 'cca' ? 'CCA pooling + attention kernels' : 'DSA indexer, top-k and gathered attention';
    return { prefill: `${inside} inside the layer`, decode: `${inside} inside the layer` };
  }
  const m = kvMethod(spec, o.context);
  if (m.kernel === 'dense') return { prefill: 'dense: materialised scores', decode: 'dense: materialised scores' };
  const base = { features: o.features, dtype: o.features ? o.dtype : ('f32' as const), headDim: c.headDim };
  const masked = m.mask(o.context) !== undefined;
  return {
    prefill: formatChoice(
      planFlash({ ...base, queries: Math.min(o.chunk, o.context), keys: o.context, masked }, m.variant),
    ),
    decode: formatChoice(
      planFlash({ ...base, queries: 1, keys: m.layout.held(o.context), allKeysVisible: true }, m.variant),
    ),
  };
}
