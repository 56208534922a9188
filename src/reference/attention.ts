// Float64 reference attention: the naive softmax(QK^T * scale) V per query, what every kernel is checked against.
// Also a naive same-precision f16 implementation, the yardstick of FlashAttention's "within 2x" error rule.
import { roundHalf } from '../f16.js';
import { asFloat32, type Tensor } from '../tensor.js';
import type { AttentionOptions } from '../spine/problem.js';

export interface ReferenceState {
  o: Float64Array;
  lse: Float64Array;
}

/** The dimensions of q [Hq, Nq, D] and k [Hkv, Nk, D], read here rather than through the implementation's
 * shape check so that the reference shares no code with what it checks. */
export function referenceDims(q: Tensor, k: Tensor, opts: AttentionOptions = {}) {
  const [heads, queries, headDim] = q.shape;
  const [kvHeads, keys] = k.shape;
  return {
    heads,
    kvHeads,
    queries,
    keys,
    headDim,
    causal: opts.causal ?? true,
    scale: opts.scale ?? 1 / Math.sqrt(headDim),
  };
}

/** Query i sits at position keys - queries + i (bottom-right aligned) and, when causal, sees keys up to it. */
export function referenceLastKey(queries: number, keys: number, causal: boolean, i: number): number {
  return causal ? Math.min(keys - 1, keys - queries + i) : keys - 1;
}

/** Optional key predicate (query index, key index) -> visible, on top of causality. */
export type KeyFilter = (queryIndex: number, keyIndex: number) => boolean;

function naive(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions,
  round: (x: number) => number,
  filter?: KeyFilter,
): ReferenceState {
  const s = referenceDims(q, k, opts);
  const [Q, K, V] = [asFloat32(q), asFloat32(k), asFloat32(v)];
  const { heads, queries, keys, headDim: D } = s;
  const group = heads / s.kvHeads;
  const o = new Float64Array(heads * queries * D);
  const lse = new Float64Array(heads * queries).fill(-Infinity);
  const scores = new Float64Array(keys);
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / group);
    for (let i = 0; i < queries; i++) {
      const last = referenceLastKey(queries, keys, s.causal, i);
      const qo = (h * queries + i) * D;
      let m = -Infinity;
      for (let j = 0; j <= last; j++) {
        if (filter && !filter(i, j)) {
          scores[j] = -Infinity;
          continue;
        }
        const ko = (kvh * keys + j) * D;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += Q[qo + d] * K[ko + d];
        scores[j] = round(dot * s.scale);
        if (scores[j] > m) m = scores[j];
      }
      if (m === -Infinity) continue;
      let sum = 0;
      for (let j = 0; j <= last; j++) sum += Math.exp(scores[j] - m);
      lse[h * queries + i] = m + Math.log(sum);
      for (let j = 0; j <= last; j++) {
        if (scores[j] === -Infinity) continue;
        const p = round(Math.exp(scores[j] - m) / sum);
        const vo = (kvh * keys + j) * D;
        for (let d = 0; d < D; d++) o[qo + d] += p * V[vo + d];
      }
      for (let d = 0; d < D; d++) o[qo + d] = round(o[qo + d]);
    }
  }
  return { o, lse };
}

export function referenceAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
  filter?: KeyFilter,
): ReferenceState {
  return naive(q, k, v, opts, (x) => x, filter);
}

/** Scores, probabilities and output rounded to f16 as a plain f16 implementation would (PyTorch's naive path). */
export function naiveHalfAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
  filter?: KeyFilter,
): ReferenceState {
  return naive(q, k, v, opts, roundHalf, filter);
}

// The comparison tests use beside the references; it lives with the tensor, so the demo needs no reference.
export { maxAbsDiff } from '../tensor.js';
