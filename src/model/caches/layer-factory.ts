// The one factory of attention layers: for each layer of a model, the object that serves its method on
// the decoder's backend (attention/layer.ts). Methods whose cache is keys in rows share one implementation
// per backend (attention/layers/kv-layer-*.ts); on WebGPU, CCA and DSA are resident layers registered in
// `gpuLayerFactories` (attention/layers/cca-gpu.ts, dsa-gpu.ts); a trained DSA indexer (which reads the
// attention input h) still goes through its host implementation (host-layers.ts), as the CPU decoder does.
import { SpecError } from '../../errors.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import type { MethodSpec } from '../../attention/spec.js';
import type { LayerAttention, LayerDims } from '../../attention/layer.js';
import { KV_METHODS } from '../../attention/layers/kv-method.js';
import { CpuKvLayer } from '../../attention/layers/kv-layer-cpu.js';
import { GpuKvLayer, type GpuLayerScratch } from '../../attention/layers/kv-layer-gpu.js';
import { CcaGpuLayer } from '../../attention/layers/cca-gpu.js';
import { DsaGpuLayer } from '../../attention/layers/dsa-gpu.js';
import { ccaParamsFromSpec } from '../../attention/cca.js';
import { CcaHostLayer, DsaCpuLayer, cpuIo } from './host-layers.js';
import { dsaLayerParams } from './dsa-layer.js';
import { layerIndexer, residentTrainedIndexer } from './dsa-indexer.js';
import { checkDecoderMethod } from './method-caches.js';
import type { LayerWeights, ModelConfig } from '../types.js';
import type { PositionMethod } from '../positions/position-method.js';
import { createPositionedGpuLayer } from './positioned-layer-gpu.js';
import { HostArraysGpuLayer } from './star-host-layer-gpu.js';

export { GpuLayerScratch } from '../../attention/layers/kv-layer-gpu.js';

/** What a layer is made from: its method, the model's shape and the run's size, its weights (DSA's indexer). */
export interface LayerSetup {
  index: number;
  method: MethodSpec;
  dims: LayerDims;
  config: ModelConfig;
  weights: LayerWeights;
  /** A training-free positional method (model/positions): the layer caches keys per rotation it needs. */
  positions?: PositionMethod;
  /** A layer of host arrays that serves this layer instead of the method's (a host of a model spread over
   * processes: DecoderOptions.cpuLayer); on WebGPU it runs behind HostArraysGpuLayer. */
  hostLayer?: LayerAttention<Float32Array>;
}

export type GpuLayerFactory = (
  gpu: GpuContext,
  setup: LayerSetup,
  scratch: GpuLayerScratch,
) => Promise<LayerAttention<GPUBuffer>>;

/** CCA resident on the device: cores and ring in one buffer per K and V, pooled and appended on the GPU. */
const ccaGpuLayer: GpuLayerFactory = (gpu, { method, dims }, scratch) =>
  CcaGpuLayer.create(gpu, {
    ...ccaParamsFromSpec(method),
    heads: dims.heads,
    kvHeads: dims.kvHeads,
    headDim: dims.headDim,
    maxTokens: dims.maxTokens,
    maxChunk: dims.chunk,
    dtype: dims.dtype,
    decodeScratch: scratch.decode,
  });

/** DSA resident, with the training-free indexer or a trained one (which reads the attention input h). */
const dsaGpuLayer: GpuLayerFactory = (gpu, s) => {
  const p = dsaLayerParams(s.method);
  const plain = layerIndexer(s.weights, s.config, { pairsPerHead: p.pairs });
  const indexer = plain.trained ? { ...plain, resident: residentTrainedIndexer(plain) } : plain;
  const d = s.dims;
  return DsaGpuLayer.create(gpu, {
    ...p,
    heads: d.heads,
    kvHeads: d.kvHeads,
    headDim: d.headDim,
    maxTokens: d.maxTokens,
    maxChunk: d.chunk,
    dtype: d.dtype,
    indexer,
  });
};

/**
 * GPU-resident layers by method name, consulted before the built-in ones. (Registering CCA and DSA here
 * once failed the model check while their layer tests passed: their own append kernel and kv-layer-gpu.ts's
 * were both cached as `kv-append-<dtype>`, so in a process that had run a flash layer first they got the
 * other kernel with their own uniforms. There is one append kernel now, keyed by kvAppendKernel.)
 */
export const gpuLayerFactories: Partial<Record<string, GpuLayerFactory>> = { cca: ccaGpuLayer, dsa: dsaGpuLayer };

const isKvMethod = (name: string) => (KV_METHODS as readonly string[]).includes(name);

export async function createGpuLayer(
  gpu: GpuContext,
  s: LayerSetup,
  scratch: GpuLayerScratch,
): Promise<LayerAttention<GPUBuffer>> {
  if (s.hostLayer) return new HostArraysGpuLayer(gpu, s.dims, s.hostLayer);
  checkDecoderMethod(s.method);
  if (s.positions && s.positions.kind !== 'none') return createPositionedGpuLayer(gpu, s, scratch);
  const plugged = gpuLayerFactories[s.method.name];
  if (plugged) return plugged(gpu, s, scratch);
  if (isKvMethod(s.method.name)) return GpuKvLayer.create(gpu, s.dims, s.method, scratch);
  throw new SpecError(
    `layer ${s.index}: method '${s.method.name}' has no model layer (hybrid schedules name one per layer)`,
  );
}

export function createCpuLayer(s: LayerSetup): LayerAttention<Float32Array> {
  checkDecoderMethod(s.method);
  if (isKvMethod(s.method.name)) return new CpuKvLayer(s.dims, s.method);
  if (s.method.name === 'cca') return new CcaHostLayer(cpuIo, s.config, s.method, 'f32');
  if (s.method.name === 'dsa') return new DsaCpuLayer(s.dims, s.weights, s.config, s.method);
  throw new SpecError(
    `layer ${s.index}: method '${s.method.name}' has no model layer (hybrid schedules name one per layer)`,
  );
}
