// Dense attention on the CPU: the quadratic baseline. Materialises all scores S [Hq, Nq, Nk] (f32),
// then a row softmax with its LSE, then O = P V. Memory grows with N^2 on purpose.
import { OutOfMemoryError } from '../errors.js';
import { asFloat32, type Tensor } from '../tensor.js';
import { causalLimit, type AttentionShape } from '../spine/problem.js';
import { emptyState, type AttentionState } from '../spine/state.js';

/** Largest score matrix the CPU path will allocate (a JS typed array tops out near 2^32 bytes anyway). */
export const CPU_DENSE_MAX_SCORE_BYTES = 2 ** 31;

export function denseScoreBytes(s: AttentionShape): number {
  return s.heads * s.queries * s.keys * 4;
}

export function denseAttentionCpu(q: Tensor, k: Tensor, v: Tensor, s: AttentionShape): AttentionState {
  const bytes = denseScoreBytes(s);
  if (bytes > CPU_DENSE_MAX_SCORE_BYTES) {
    throw new OutOfMemoryError(
      `dense attention would materialise ${(bytes / 2 ** 30).toFixed(1)} GiB of scores; the CPU limit is ` +
        `${CPU_DENSE_MAX_SCORE_BYTES / 2 ** 30} GiB: use flash`,
      bytes,
      CPU_DENSE_MAX_SCORE_BYTES,
    );
  }
  const [Q, K, V] = [asFloat32(q), asFloat32(k), asFloat32(v)];
  const { heads, queries, keys, headDim: D } = s;
  const group = heads / s.kvHeads;
  const scores = new Float32Array(heads * queries * keys);
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / group);
    for (let i = 0; i < queries; i++) {
      const row = (h * queries + i) * keys;
      const last = causalLimit(s, i);
      const qo = (h * queries + i) * D;
      for (let j = 0; j < keys; j++) {
        if (j > last) {
          scores[row + j] = -Infinity;
          continue;
        }
        const ko = (kvh * keys + j) * D;
        let dot = 0;
        for (let d = 0; d < D; d++) dot += Q[qo + d] * K[ko + d];
        scores[row + j] = dot * s.scale;
      }
    }
  }
  const out = emptyState(heads, queries, D);
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / group);
    for (let i = 0; i < queries; i++) {
      const r = h * queries + i;
      const row = r * keys;
      // NaN in, NaN out (HARDENING.md): a visible score that is NaN or infinite makes the row NaN.
      const last = causalLimit(s, i);
      let bad = false;
      for (let j = 0; j <= last; j++) if (!Number.isFinite(scores[row + j])) bad = true;
      if (bad) {
        out.lse[r] = Number.NaN;
        out.o.fill(Number.NaN, r * D, (r + 1) * D);
        continue;
      }
      let m = -Infinity;
      for (let j = 0; j < keys; j++) m = Math.max(m, scores[row + j]);
      if (m === -Infinity) continue;
      let sum = 0;
      for (let j = 0; j < keys; j++) {
        const p = Math.exp(scores[row + j] - m);
        scores[row + j] = p;
        sum += p;
      }
      out.lse[r] = m + Math.log(sum);
      const acc = new Float32Array(D);
      for (let j = 0; j < keys; j++) {
        const p = scores[row + j] / sum;
        if (p === 0) continue;
        const vo = (kvh * keys + j) * D;
        for (let d = 0; d < D; d++) acc[d] += p * V[vo + d];
      }
      out.o.set(acc, r * D);
    }
  }
  return out;
}
