// FlashAttention-2 on the CPU (Dao 2023): per query row, key/value tiles are streamed with an online
// softmax (running max m, running sum l, rescaled accumulator); the N x N scores never exist.
// The CPU twin of kernels/flash-wgsl.ts (tiles of 64 keys, one rescale per tile) and, with
// `subgroupMatrixTwin`, of kernels/flash-sgmat-wgsl.ts: tiles of 32, probabilities rounded to f16 before
// P V, and FlashAttention-4's lazy rescale (the max used for P moves only when a tile exceeds it by 2^8).
// Arithmetic runs in JS doubles and is stored as f32, so the twin checks the algorithm, not the rounding.
import { roundHalf } from '../f16.js';
import { asFloat32, type Tensor } from '../tensor.js';
import { causalLimit, type AttentionShape } from '../attention/problem.js';
import { emptyState, type AttentionState } from '../attention/state.js';

export interface FlashCpuOptions {
  /** First and last (inclusive) key index that query i may see; default: all, or up to the causal limit. */
  range?: (queryIndex: number) => [number, number];
  tile?: number;
  /** Round P to f16 before P V, as tensor-core kernels do. */
  halfProbabilities?: boolean;
  /** Move the running max only when a tile's max exceeds it by this many log2 units (0: every tile). */
  lazyRescaleLog2?: number;
}

export const subgroupMatrixTwin: FlashCpuOptions = { tile: 32, halfProbabilities: true, lazyRescaleLog2: 8 };

export function flashAttentionCpu(q: Tensor, k: Tensor, v: Tensor, s: AttentionShape, opts: FlashCpuOptions = {}): AttentionState {
  const [Q, K, V] = [asFloat32(q), asFloat32(k), asFloat32(v)];
  const { heads, queries, keys, headDim: D } = s;
  const tile = opts.tile ?? 64;
  const lazy = opts.lazyRescaleLog2 ?? 0;
  const round = opts.halfProbabilities ? roundHalf : (x: number) => x;
  const group = heads / s.kvHeads;
  const scale2 = s.scale * Math.LOG2E; // scores in the log2 domain, as the kernels keep them
  const out = emptyState(heads, queries, D);
  const acc = new Float64Array(D);
  const x = new Float64Array(tile);
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / group);
    for (let i = 0; i < queries; i++) {
      const [first, last] = opts.range ? opts.range(i) : [0, causalLimit(s, i)];
      const qo = (h * queries + i) * D;
      let m = -Infinity;
      let l = 0;
      acc.fill(0);
      for (let t0 = first; t0 <= last; t0 += tile) {
        const t1 = Math.min(last + 1, t0 + tile);
        let tileMax = -Infinity;
        for (let j = t0; j < t1; j++) {
          const ko = (kvh * keys + j) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += Q[qo + d] * K[ko + d];
          x[j - t0] = dot * scale2;
          tileMax = Math.max(tileMax, x[j - t0]);
        }
        if (tileMax > m + lazy) {
          const mNew = Math.max(m, tileMax);
          const alpha = m === -Infinity ? 0 : 2 ** (m - mNew);
          l *= alpha;
          for (let d = 0; d < D; d++) acc[d] *= alpha;
          m = mNew;
        }
        for (let j = t0; j < t1; j++) {
          const p = 2 ** (x[j - t0] - m);
          l += p;
          const pv = round(p);
          const vo = (kvh * keys + j) * D;
          for (let d = 0; d < D; d++) acc[d] += pv * V[vo + d];
        }
      }
      if (l === 0) continue;
      const r = h * queries + i;
      out.lse[r] = (m + Math.log2(l)) * Math.LN2;
      for (let d = 0; d < D; d++) out.o[r * D + d] = acc[d] / l;
    }
  }
  return out;
}
