// Float64 references of the training-free positional methods, written as their papers state them: rotate
// every query and key explicitly to the positions the method assigns (never a table of relative rotations, as
// src/model/positions does), take the score of the matrix the method's mask picks, one causal softmax.
// Self-Extend (Jin et al. 2024): neighbour matrix Q(p) K(j) where p - j < W, grouped matrix
// Q(floor(p/G) + W - floor(W/G)) K(floor(j/G)) elsewhere. Dual-chunk (An et al. 2024): K(j mod S) against
// Q(p mod S) in the same chunk, Q(min(S + p mod S, S + L)) in the previous one, Q(S + L) further back.
// Remap (ReAttention): window keys at their positions; far keys ranked by q.k without RoPE (or picked by the
// caller: the DSA indexer as the selector), the top K placed just beyond the window in their original order.

export interface PositionsProblem {
  /** Unrotated queries [heads, T, D] at positions start..start+T-1. */
  q: ArrayLike<number>;
  /** Unrotated keys and values [n, D] at positions 0..n-1 (n = start + T). */
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  heads: number;
  T: number;
  D: number;
  start: number;
  invFreq: ArrayLike<number>;
  attentionFactor: number;
  layout: 'interleaved' | 'half';
}

export type ReferencePositions =
  | { kind: 'none' }
  | { kind: 'self-extend'; window: number; group: number }
  | { kind: 'chunked'; chunk: number; local: number }
  | { kind: 'remap'; window: number; topk: number; picks?: (t: number) => readonly number[] };

function rotate(x: ArrayLike<number>, offset: number, D: number, pos: number, pb: PositionsProblem): Float64Array {
  const out = new Float64Array(D);
  const half = D / 2;
  for (let i = 0; i < half; i++) {
    const [a, b] = pb.layout === 'interleaved' ? [2 * i, 2 * i + 1] : [i, i + half];
    const angle = pos * pb.invFreq[i];
    const [c, s] = [Math.cos(angle) * pb.attentionFactor, Math.sin(angle) * pb.attentionFactor];
    out[a] = x[offset + a] * c - x[offset + b] * s;
    out[b] = x[offset + a] * s + x[offset + b] * c;
  }
  return out;
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>, bOffset = 0) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[bOffset + i];
  return s;
};

export function referencePositionedAttention(
  pb: PositionsProblem,
  m: ReferencePositions,
): { o: Float64Array; lse: Float64Array } {
  const { heads, T, D, start } = pb;
  const o = new Float64Array(heads * T * D);
  const lse = new Float64Array(heads * T);
  const scale = 1 / Math.sqrt(D);
  for (let h = 0; h < heads; h++)
    for (let t = 0; t < T; t++) {
      const p = start + t;
      const qo = (h * T + t) * D;
      const qAt = (pos: number) => rotate(pb.q, qo, D, pos, pb);
      const kAt = (j: number, pos: number) => rotate(pb.k, j * D, D, pos, pb);
      const scores = new Float64Array(p + 1).fill(-Infinity);
      if (m.kind === 'none') for (let j = 0; j <= p; j++) scores[j] = dot(qAt(p), kAt(j, j));
      else if (m.kind === 'self-extend') {
        const { window: W, group: G } = m;
        for (let j = 0; j <= p; j++)
          scores[j] =
            p - j < W
              ? dot(qAt(p), kAt(j, j))
              : dot(qAt(Math.floor(p / G) + W - Math.floor(W / G)), kAt(j, Math.floor(j / G)));
      } else if (m.kind === 'chunked') {
        const { chunk: S, local: L } = m;
        const intra = qAt(p % S);
        const succ = qAt(Math.min(S + (p % S), S + L));
        const inter = qAt(S + L);
        for (let j = 0; j <= p; j++) {
          const gap = Math.floor(p / S) - Math.floor(j / S);
          scores[j] = dot(gap === 0 ? intra : gap === 1 ? succ : inter, kAt(j, j % S));
        }
      } else {
        const { window: W, topk: K } = m;
        const far = Math.max(0, p - W + 1);
        const qRaw = Array.from({ length: D }, (_, x) => pb.q[qo + x]);
        const ranked = Array.from({ length: far }, (_, j) => ({ j, s: dot(qRaw, pb.k, j * D) }));
        ranked.sort((a, b) => b.s - a.s || b.j - a.j);
        // Picks made elsewhere (the DSA indexer as remap's selector) replace the q.k ranking: the far ones, in order.
        const chosen = m.picks
          ? m
              .picks(t)
              .filter((j) => j >= 0 && p - j >= W)
              .sort((a, b) => a - b)
          : ranked
              .slice(0, Math.min(K, far))
              .map((x) => x.j)
              .sort((a, b) => a - b);
        chosen.forEach((j, r) => {
          // Rank r of m sits at distance W + (m - 1 - r): query at p, key at p - that distance.
          scores[j] = dot(qAt(p), kAt(j, p - (W + chosen.length - 1 - r)));
        });
        for (let j = far; j <= p; j++) scores[j] = dot(qAt(p), kAt(j, j));
      }
      let max = -Infinity;
      for (let j = 0; j <= p; j++) max = Math.max(max, scores[j] * scale);
      let sum = 0;
      for (let j = 0; j <= p; j++) {
        if (scores[j] === -Infinity) continue;
        const w = Math.exp(scores[j] * scale - max);
        sum += w;
        for (let x = 0; x < D; x++) o[qo + x] += w * pb.v[j * D + x];
      }
      for (let x = 0; x < D; x++) o[qo + x] /= sum;
      lse[h * T + t] = max + Math.log(sum);
    }
  return { o, lse };
}
