// Caches of the attention methods that are more than keys in position order: CCA keeps pooled cores plus
// a raw ring (attention/cca-cache.ts) and attends through it; DSA keeps index keys beside a dense cache
// (dsa-layer.ts, with the training-free indexer of dsa-indexer.ts).
import { CcaKVCache } from '../../attention/cca-cache.js';
import { ccaParamsFromSpec } from '../../attention/cca.js';
import type { MethodSpec } from '../../attention/spec.js';
import type { ModelConfig } from '../types.js';
import { checkStarRingLayer } from './star-layers.js';

/** The CCA cache of a `cca` layer, else undefined. */
export function ccaLayerCache(
  c: ModelConfig,
  method: MethodSpec,
  dtype: 'f32' | 'f16' = 'f32',
): CcaKVCache | undefined {
  if (method.name !== 'cca') return undefined;
  return new CcaKVCache({
    ...ccaParamsFromSpec(method),
    heads: c.heads,
    kvHeads: c.kvHeads,
    headDim: c.headDim,
    dtype,
  });
}

/** Methods a decoder layer cannot run, refused before any weight is touched (star/ring across hosts). */
export function checkDecoderMethod(method: MethodSpec): void {
  checkStarRingLayer(method);
}
