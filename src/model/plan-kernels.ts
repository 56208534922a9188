// Which kernel each layer method runs, from the planner (attention/planner.ts), for `longctx plan`: the
// same choice the layers make at run time, for a device profile named on the command line.
import { SpecError } from '../errors.js';
import type { GpuFeatures } from '../runtime/webgpu.js';
import { formatChoice, planFlash, planMatmul } from '../attention/planner.js';
import { kvMethod, KV_METHODS } from '../attention/layers/kv-method.js';
import type { MethodSpec } from '../attention/spec.js';
import type { ModelConfig } from './types.js';
import { matmulShapes } from './forward/llama-forward.js';

export interface DeviceProfile {
  features?: GpuFeatures;
  /** Workgroup memory of one workgroup (what the tensor-core tiles need). */
  maxWorkgroupStorageBytes?: number;
  description: string;
}

export const DEVICE_PROFILES: Record<string, DeviceProfile> = {
  'tensor-cores': {
    features: { f16: true, subgroups: true, subgroupMatrixF16: true, timestamps: true },
    maxWorkgroupStorageBytes: 49152,
    description: 'WebGPU with f16 subgroup matrices (NVIDIA tensor cores through Dawn: H100, H200)',
  },
  lavapipe: {
    features: { f16: true, subgroups: true, subgroupMatrixF16: false, timestamps: true },
    maxWorkgroupStorageBytes: 32768,
    description: 'Mesa lavapipe (shader-f16 and 8-wide subgroups, no subgroup matrices)',
  },
  portable: {
    features: { f16: true, subgroups: false, subgroupMatrixF16: false, timestamps: false },
    maxWorkgroupStorageBytes: 16384,
    description: 'WebGPU with shader-f16 only',
  },
  cpu: { description: 'the CPU backend' },
};

export interface LayerKernels {
  prefill: string;
  decode: string;
}

export function deviceProfile(name: string): DeviceProfile {
  const p = DEVICE_PROFILES[name];
  if (!p) throw new SpecError(`unknown device profile '${name}'; known: ${Object.keys(DEVICE_PROFILES).join(', ')}`);
  return p;
}

export function layerKernels(
  c: ModelConfig,
  spec: MethodSpec,
  o: {
    context: number;
    chunk: number;
    dtype: 'f16' | 'f32';
    features?: GpuFeatures;
    maxWorkgroupStorageBytes?: number;
  },
): LayerKernels {
  if (!(KV_METHODS as readonly string[]).includes(spec.name)) {
    const inside =
      spec.name === 'cca' ? 'CCA pooling + attention kernels' : 'DSA indexer, top-k and gathered attention';
    return { prefill: `${inside} inside the layer`, decode: `${inside} inside the layer` };
  }
  const m = kvMethod(spec, o.context);
  if (m.kernel === 'dense') return { prefill: 'dense: materialised scores', decode: 'dense: materialised scores' };
  const base = {
    features: o.features,
    maxWorkgroupStorageBytes: o.maxWorkgroupStorageBytes,
    dtype: o.features ? o.dtype : ('f32' as const),
    headDim: c.headDim,
  };
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

/** The matmul kernels of a prefill chunk and of one row (decode steps, the logits), one line per choice with
 * the (outputs x inputs) shapes it runs: the choice the WebGPU decoder makes (forward/gpu-ops.ts). */
export function matmulKernels(
  c: ModelConfig,
  o: { chunk: number; dtype: 'f16' | 'f32'; profile: DeviceProfile },
): LayerKernels {
  const shapes = matmulShapes(c);
  const lines = (rows: number, all: Array<[number, number]>) => {
    const byLine = new Map<string, string[]>();
    for (const [n, k] of all) {
      const t = {
        features: o.profile.features,
        maxWorkgroupStorageBytes: o.profile.maxWorkgroupStorageBytes,
        dtype: o.profile.features ? o.dtype : ('f32' as const),
        headDim: 0,
        queries: rows,
        keys: k,
        columns: n,
      };
      const line = formatChoice(planMatmul(t));
      if (!byLine.get(line)?.includes(`${n}x${k}`)) byLine.set(line, [...(byLine.get(line) ?? []), `${n}x${k}`]);
    }
    return [...byLine].map(([line, s]) => `${line} [outputs x inputs: ${s.join(', ')}]`).join('\n             ');
  };
  return {
    prefill: lines(
      o.chunk,
      shapes.filter(([n, k]) => n !== c.vocabSize || k !== c.hiddenSize),
    ),
    decode: lines(1, shapes),
  };
}
