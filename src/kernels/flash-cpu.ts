// FlashAttention-2 on the CPU (Dao 2023): per query row, key/value tiles are streamed with an online
// softmax (running max m, running sum l, rescaled accumulator); the N x N scores never exist.
// The CPU twin of kernels/flash-wgsl.ts (tiles of 64 keys, one rescale per tile) and, with
// `subgroupMatrixTwin`, of kernels/flash-sgmat-wgsl.ts: tiles of 32, probabilities rounded to f16 before
// P V, and FlashAttention-4's lazy rescale (the max used for P moves only when a tile exceeds it by 2^8).
// Arithmetic runs in JS doubles and is stored as f32, so the twin checks the algorithm, not the rounding.
import { roundHalf } from '../f16.js';
import { asFloat32, type Tensor } from '../tensor.js';
import { causalLimit, type AttentionShape } from '../spine/problem.js';
import { emptyState, type AttentionState } from '../spine/state.js';
import type { BlockMask } from '../spine/block-mask.js';
import { maskAllows } from '../spine/mask.js';

export interface FlashCpuOptions {
  /** Visit only the key tiles this block mask keeps, and apply its predicate on partial ones. Its key
   * tile size replaces `tile`; causality then comes from the mask alone. */
  blockMask?: BlockMask;
  tile?: number;
  /** Round P to f16 before P V, as tensor-core kernels do. */
  halfProbabilities?: boolean;
  /** Move the running max only when a tile's max exceeds it by this many log2 units (0: every tile). */
  lazyRescaleLog2?: number;
}

export const subgroupMatrixTwin: FlashCpuOptions = { tile: 32, halfProbabilities: true, lazyRescaleLog2: 8 };

export function flashAttentionCpu(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  s: AttentionShape,
  opts: FlashCpuOptions = {},
): AttentionState {
  const [Q, K, V] = [asFloat32(q), asFloat32(k), asFloat32(v)];
  const { heads, queries, keys, headDim: D } = s;
  const tile = opts.blockMask?.keyTile ?? opts.tile ?? 64;
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
      const qo = (h * queries + i) * D;
      const qp = keys - queries + i;
      let m = -Infinity;
      let l = 0;
      let bad = false; // a visible score that is NaN or infinite: the row is NaN (HARDENING.md)
      acc.fill(0);
      for (const [t0, t1, partial] of keySegments(s, i, tile, opts.blockMask)) {
        let tileMax = -Infinity;
        for (let j = t0; j < t1; j++) {
          if (partial && !maskAllows(opts.blockMask!.mask, qp, j)) {
            x[j - t0] = -Infinity;
            continue;
          }
          const ko = (kvh * keys + j) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += Q[qo + d] * K[ko + d];
          x[j - t0] = dot * scale2;
          if (!Number.isFinite(x[j - t0])) bad = true;
          tileMax = Math.max(tileMax, x[j - t0]);
        }
        if (tileMax === -Infinity) continue;
        if (tileMax > m + lazy) {
          const mNew = Math.max(m, tileMax);
          const alpha = m === -Infinity ? 0 : 2 ** (m - mNew);
          l *= alpha;
          for (let d = 0; d < D; d++) acc[d] *= alpha;
          m = mNew;
        }
        for (let j = t0; j < t1; j++) {
          if (x[j - t0] === -Infinity) continue;
          const p = 2 ** (x[j - t0] - m);
          l += p;
          const pv = round(p);
          const vo = (kvh * keys + j) * D;
          for (let d = 0; d < D; d++) acc[d] += pv * V[vo + d];
        }
      }
      const r = h * queries + i;
      if (bad) {
        out.lse[r] = Number.NaN;
        out.o.fill(Number.NaN, r * D, (r + 1) * D);
        continue;
      }
      if (l === 0) continue;
      out.lse[r] = (m + Math.log2(l)) * Math.LN2;
      for (let d = 0; d < D; d++) out.o[r * D + d] = acc[d] / l;
    }
  }
  return out;
}

/** Key ranges [start, end) of row i, tile by tile, and whether the mask predicate must run on them. */
function* keySegments(
  s: AttentionShape,
  i: number,
  tile: number,
  blocks?: BlockMask,
): Generator<[number, number, boolean]> {
  if (blocks) {
    const t = Math.floor(i / blocks.queryTile);
    for (let e = blocks.offsets[t]; e < blocks.offsets[t + 1]; e++) {
      const kt = blocks.tiles[e] >>> 1;
      yield [kt * tile, Math.min(s.keys, (kt + 1) * tile), (blocks.tiles[e] & 1) === 0];
    }
    return;
  }
  const last = causalLimit(s, i);
  for (let t0 = 0; t0 <= last; t0 += tile) yield [t0, Math.min(last + 1, t0 + tile), false];
}
