// Exact attention over gathered keys (DSA's sparse attention, DeepSeek-V3.2 sec. 2.1): each query token has
// a list of key indices, shared by all its heads (GQA: by all query heads of every key/value head); the
// listed keys are streamed in tiles of SPARSE_TILE with an online softmax (FlashAttention-2's rescale per
// tile) into an attention state. The CPU twin of kernels/sparse-gather-wgsl.ts; arithmetic in doubles.
import { asFloat32, type Tensor } from '../tensor.js';
import type { AttentionShape } from '../spine/problem.js';
import { emptyState, type AttentionState } from '../spine/state.js';
import { OnlineSoftmaxRow } from './online-softmax-cpu.js';

export const SPARSE_TILE = 16;

export interface GatheredKeys {
  /** [Nq, width] key indices; a row's entries after its count are ignored (-1 pads). */
  indices: Int32Array;
  width: number;
  /** Listed keys of query t: min(width, visible keys of t). */
  count: (t: number) => number;
}

/** q [Hq, Nq, D]; k and v [Hkv, keyStride, D] of which the first s.keys rows per head are valid. */
export function sparseGatherAttentionCpu(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  s: AttentionShape,
  keys: GatheredKeys,
  keyStride = s.keys,
): AttentionState {
  const [Q, K, V] = [asFloat32(q), asFloat32(k), asFloat32(v)];
  const { heads, queries, headDim: D } = s;
  const group = heads / s.kvHeads;
  const out = emptyState(heads, queries, D);
  const row = new OnlineSoftmaxRow(D, SPARSE_TILE);
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / group);
    for (let t = 0; t < queries; t++) {
      const n = keys.count(t);
      row.start();
      for (let e0 = 0; e0 < n; e0 += SPARSE_TILE) {
        const e1 = Math.min(n, e0 + SPARSE_TILE);
        for (let e = e0; e < e1; e++) row.rows[e - e0] = (kvh * keyStride + keys.indices[t * keys.width + e]) * D;
        row.tile(Q, (h * queries + t) * D, s.scale, K, V, e1 - e0);
      }
      row.finish(out, h * queries + t);
    }
  }
  return out;
}
