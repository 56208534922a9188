// Float64 reference of DeepSeek Sparse Attention (DeepSeek-V3.2, "DSA"): the lightning indexer's scores
// I[t,s] = sum_j w[t,j] * ReLU(q_I[j,t] . k_I[s]) in doubles, the top-k by a full sort (ties: lower key
// index first), and exact attention over the chosen keys. What the kernels and the selection are checked against.
import { asFloat32, type Tensor } from '../tensor.js';
import type { AttentionOptions } from '../spine/problem.js';
import type { IndexerInputs } from '../kernels/dsa-indexer-cpu.js';
import { referenceAttention, referenceLastKey as indexLimit, type ReferenceState } from './attention.js';

/** Last visible key of query t (bottom-right aligned causality, as attention/problem.ts), -1 when none. */

/** Scores of query t against keys 0..limit, in doubles. */
export function referenceIndexScores(index: IndexerInputs, t: number, causal = true): Float64Array {
  const [H, Nq, D] = index.q.shape;
  const Nk = index.k.shape[0];
  const [Q, K, W] = [asFloat32(index.q), asFloat32(index.k), asFloat32(index.w)];
  const last = indexLimit(Nq, Nk, causal, t);
  const out = new Float64Array(Math.max(0, last + 1));
  for (let s = 0; s <= last; s++) {
    let score = 0;
    for (let j = 0; j < H; j++) {
      let dot = 0;
      const qo = (j * Nq + t) * D;
      for (let d = 0; d < D; d++) dot += Q[qo + d] * K[s * D + d];
      score += W[t * H + j] * Math.max(0, dot);
    }
    out[s] = score;
  }
  return out;
}

/** The top-k key indices of each query by a full sort, highest score first, ties by lower index. */
export function referenceSelect(
  index: IndexerInputs,
  topk: number,
  causal = true,
): { selected: Int32Array[]; scores: Float64Array[] } {
  const Nq = index.q.shape[1];
  const selected: Int32Array[] = [];
  const scores: Float64Array[] = [];
  for (let t = 0; t < Nq; t++) {
    const sc = referenceIndexScores(index, t, causal);
    const order = Int32Array.from(sc.keys()).sort((a, b) => sc[b] - sc[a] || a - b);
    selected.push(order.slice(0, Math.min(topk, sc.length)));
    scores.push(sc);
  }
  return { selected, scores };
}

/** Exact attention over each query's selected keys (shared by all heads), in doubles. */
export function referenceSparseAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  selected: Int32Array[],
  opts: AttentionOptions = {},
): ReferenceState {
  const sets = selected.map((s) => new Set(s));
  return referenceAttention(q, k, v, { ...opts, causal: false }, (i, j) => sets[i].has(j));
}

/**
 * Recall of a selection against the reference ranking: the share of the reference's top-k that it chose.
 * `excludeNearTies` drops from the count keys whose score is within that relative distance of the k-th score.
 */
export function selectionRecall(
  got: ArrayLike<number>[],
  ref: { selected: Int32Array[]; scores: Float64Array[] },
  excludeNearTies = 0,
): number {
  let hit = 0;
  let total = 0;
  for (let t = 0; t < ref.selected.length; t++) {
    const want = ref.selected[t];
    if (want.length === 0) continue;
    const sc = ref.scores[t];
    const kth = sc[want[want.length - 1]];
    const chosen = new Set(Array.from(got[t]).filter((x) => x >= 0));
    for (const s of want) {
      if (excludeNearTies > 0 && Math.abs(sc[s] - kth) <= excludeNearTies * Math.max(Math.abs(kth), 1e-30)) continue;
      total++;
      if (chosen.has(s)) hit++;
    }
  }
  return total === 0 ? 1 : hit / total;
}
