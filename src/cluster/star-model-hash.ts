// The identity of a loaded model for a run spread over hosts: SHA-256 over its config (as the decoder sees
// it, RoPE override included) and every weight's name, encoding, shape and bytes, in a fixed order. Hosts
// that hash differently loaded different models and are refused (ModelMismatchError).
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

export function modelHash(m: LoadedModel): string {
  const h = createHash('sha256');
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
