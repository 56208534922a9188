// FlashAttention-2 on the CPU (Dao 2023): per query row, key/value tiles of TILE keys are streamed with an
// online softmax (running max m, running sum l, rescaled accumulator); the N x N scores never exist.
// The CPU twin of kernels/flash-wgsl.ts: the same tiling and the same f32 arithmetic order per tile.
import { asFloat32, type Tensor } from '../tensor.js';
import { causalLimit, type AttentionShape } from '../attention/problem.js';
import { emptyState, type AttentionState } from '../attention/state.js';

const TILE = 64;

/** Optional per-(query, key-tile) visibility; the block-mask layer plugs in here. */
export interface KeyRange {
  /** First and last (inclusive) key index that query i may see. */
  (queryIndex: number): [number, number];
}

export function flashAttentionCpu(q: Tensor, k: Tensor, v: Tensor, s: AttentionShape, range?: KeyRange): AttentionState {
  const [Q, K, V] = [asFloat32(q), asFloat32(k), asFloat32(v)];
  const { heads, queries, keys, headDim: D } = s;
  const group = heads / s.kvHeads;
  const out = emptyState(heads, queries, D);
  const acc = new Float32Array(D);
  const p = new Float32Array(TILE);
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / group);
    for (let i = 0; i < queries; i++) {
      const [first, last] = range ? range(i) : [0, causalLimit(s, i)];
      const qo = (h * queries + i) * D;
      let m = -Infinity;
      let l = 0;
      acc.fill(0);
      for (let t0 = first; t0 <= last; t0 += TILE) {
        const t1 = Math.min(last + 1, t0 + TILE);
        let tileMax = -Infinity;
        for (let j = t0; j < t1; j++) {
          const ko = (kvh * keys + j) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += Q[qo + d] * K[ko + d];
          p[j - t0] = dot * s.scale;
          tileMax = Math.max(tileMax, p[j - t0]);
        }
        const mNew = Math.max(m, tileMax);
        const alpha = Math.exp(m - mNew); // 0 on the first tile (m = -inf)
        l *= alpha;
        for (let d = 0; d < D; d++) acc[d] *= alpha;
        for (let j = t0; j < t1; j++) {
          const e = Math.exp(p[j - t0] - mNew);
          l += e;
          const vo = (kvh * keys + j) * D;
          for (let d = 0; d < D; d++) acc[d] += e * V[vo + d];
        }
        m = mNew;
      }
      if (l === 0) continue;
      const r = h * queries + i;
      out.lse[r] = m + Math.log(l);
      for (let d = 0; d < D; d++) out.o[r * D + d] = acc[d] / l;
    }
  }
  return out;
}
