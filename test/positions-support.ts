// What the positional-method tests share: a small random model's shape, the float64 reference per KV head of a
// GQA layer, and the largest difference.
import type { Tensor } from '../src/tensor.js';
import type { ModelConfig } from '../src/model/types.js';
import { ropeInverseFrequencies } from '../src/model/positions/rope.js';
import { referencePositionedAttention, type ReferencePositions } from '../src/reference/positions-reference.js';
import { tokens } from './cca-dsa-layer-support.js';

/** A small Llama shape (6 query heads over 2 KV heads, D 16, trained context 64) with overrides. */
export const positionsShape = (o: Partial<ModelConfig>): ModelConfig => ({
  architecture: 'llama',
  vocabSize: 97,
  hiddenSize: 40,
  intermediateSize: 56,
  layers: 2,
  heads: 6,
  kvHeads: 2,
  headDim: 16,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  rope: { kind: 'none' },
  ropeLayout: 'half',
  contextLength: 64,
  tiedEmbeddings: false,
  attentionBias: false,
  ...o,
});

export const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
};

/** The float64 reference of a layer's chunk at start..start+T-1 (q [Hq, N, D], k and v [Hkv, N, D]): each KV head's
 * G query heads against its keys. o [Hq, T, D], lse [Hq, T]. */
export function referencePerKvHead(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  start: number,
  T: number,
  c: ModelConfig,
  m: ReferencePositions,
) {
  const [Hq, Hkv, D] = [c.heads, c.kvHeads, c.headDim];
  const G = Hq / Hkv;
  const o = new Float64Array(Hq * T * D);
  const lse = new Float64Array(Hq * T);
  const N = k.shape[1];
  const invFreq = ropeInverseFrequencies(c);
  for (let g = 0; g < Hkv; g++) {
    const qg = tokens(q, start, start + T).data.subarray(g * G * T * D, (g + 1) * G * T * D);
    const kv = (t: Tensor) => t.data.subarray(g * N * D, g * N * D + (start + T) * D);
    const pb = { q: qg, k: kv(k), v: kv(v), heads: G, T, D, start, invFreq, attentionFactor: 1, layout: c.ropeLayout };
    const r = referencePositionedAttention(pb, m);
    o.set(r.o, g * G * T * D);
    lse.set(r.lse, g * G * T);
  }
  return { o, lse };
}
