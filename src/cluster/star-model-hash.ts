// The identity of a loaded model for a run spread over hosts: SHA-256 over its config (as the decoder sees
// it, RoPE override included) and every weight's name, encoding, shape and bytes, in a fixed order. Hosts
// that hash differently loaded different models and are refused (ModelMismatchError). The storage the host's
// decoder keeps weights and KV in (f32, or f16 on WebGPU) is part of it: an f16 host computes other logits.
import { createHash } from 'node:crypto';
import type { LoadedModel, WeightTensor } from '../model/types.js';

const LAYER_FIELDS = [
  'attnNorm',
  'wq',
  'wk',
  'wv',
  'wo',
  'bq',
  'bk',
  'bv',
  'ffnNorm',
  'wGate',
  'wUp',
  'wDown',
] as const;

export type ModelStorage = 'f32' | 'f16';

export function modelHash(m: LoadedModel, storage: ModelStorage = 'f32'): string {
  const h = createHash('sha256');
  h.update(`storage:${storage};`);
  const sorted = Object.fromEntries(Object.entries(m.config).sort(([a], [b]) => a.localeCompare(b)));
  h.update(JSON.stringify(sorted));
  const add = (t: WeightTensor | undefined) => {
    if (!t) return h.update('-');
    h.update(`${t.name}:${t.dtype}:${t.shape.join('x')}:`);
    h.update(t.bytes);
  };
  add(m.weights.tokenEmbedding);
  for (const l of m.weights.layers) for (const f of LAYER_FIELDS) add(l[f]);
  add(m.weights.outputNorm);
  add(m.weights.output);
  return h.digest('hex');
}
