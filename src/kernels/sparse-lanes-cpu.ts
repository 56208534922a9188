// Exact attention over gathered keys, key by key (the CPU twin of kernels/sparse-lanes-wgsl.ts, in doubles):
// a token's listed keys are cut into `splits` contiguous ranges; each range into `subSplits` interleaved
// streams (every S-th key), each with an online softmax of one exp per key (the larger of the running max
// and the new score keeps weight 1); streams merge by their (max, sum) and splits by log-sum-exp, as on the
// GPU (flash-decoding's split-KV, Dao et al. 2023).
import { asFloat32, type Tensor } from '../tensor.js';
import type { AttentionShape } from '../spine/problem.js';
import { emptyState, type AttentionState } from '../spine/state.js';
import type { GatheredKeys } from './sparse-gather-cpu.js';

export interface LanesSplit {
  splits: number;
  subSplits: number;
}

/** Entries [begin, end) of split w for a row of n listed keys. */
export function splitRange(n: number, splits: number, w: number): [number, number] {
  const per = Math.ceil(n / splits);
  const begin = Math.min(n, w * per);
  return [begin, Math.min(n, begin + per)];
}

/** q [Hq, Nq, D]; k and v [Hkv, keyStride, D]. */
export function sparseLanesAttentionCpu(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  s: AttentionShape,
  keys: GatheredKeys,
  split: LanesSplit,
  keyStride = s.keys,
): AttentionState {
  const [Q, K, V] = [asFloat32(q), asFloat32(k), asFloat32(v)];
  const { heads, queries, headDim: D } = s;
  const group = heads / s.kvHeads;
  const out = emptyState(heads, queries, D);
  const S = split.subSplits;
  const ms = new Float64Array(S),
    ls = new Float64Array(S);
  const accs = Array.from({ length: S }, () => new Float64Array(D));
  const acc = new Float64Array(D);
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / group);
    for (let t = 0; t < queries; t++) {
      const n = keys.count(t);
      const qo = (h * queries + t) * D;
      const parts: Array<{ lse: number; o: Float64Array }> = [];
      let bad = false; // a NaN or infinite score: the row is NaN (docs/HARDENING.md), as the kernel's flag
      for (let w = 0; w < split.splits; w++) {
        const [begin, end] = splitRange(n, split.splits, w);
        for (let r = 0; r < S; r++) {
          let m = -Infinity,
            l = 0;
          const a = accs[r].fill(0);
          for (let e = begin + r; e < end; e += S) {
            const j = keys.indices[t * keys.width + e];
            let x = 0;
            for (let d = 0; d < D; d++) x += Q[qo + d] * s.scale * K[(kvh * keyStride + j) * D + d];
            if (!Number.isFinite(x)) bad = true;
            const ex = Math.exp(-Math.abs(x - m));
            const alpha = x > m ? ex : 1;
            const p = x > m ? 1 : ex;
            m = Math.max(m, x);
            l = l * alpha + p;
            for (let d = 0; d < D; d++) a[d] = a[d] * alpha + p * V[(kvh * keyStride + j) * D + d];
          }
          ms[r] = m;
          ls[r] = l;
        }
        const mm = Math.max(...ms);
        let l = 0;
        acc.fill(0);
        for (let r = 0; r < S; r++) {
          if (ls[r] === 0) continue;
          const wgt = Math.exp(ms[r] - mm);
          l += ls[r] * wgt;
          for (let d = 0; d < D; d++) acc[d] += accs[r][d] * wgt;
        }
        if (l > 0) parts.push({ lse: mm + Math.log(l), o: acc.map((x) => x / l) });
      }
      const row = h * queries + t;
      if (bad) {
        out.lse[row] = Number.NaN;
        out.o.fill(Number.NaN, row * D, (row + 1) * D);
        continue;
      }
      if (parts.length === 0) continue;
      const top = Math.max(...parts.map((p) => p.lse));
      let sum = 0;
      acc.fill(0);
      for (const p of parts) {
        const e = Math.exp(p.lse - top);
        sum += e;
        for (let d = 0; d < D; d++) acc[d] += p.o[d] * e;
      }
      out.lse[row] = top + Math.log(sum);
      for (let d = 0; d < D; d++) out.o[row * D + d] = acc[d] / sum;
    }
  }
  return out;
}
