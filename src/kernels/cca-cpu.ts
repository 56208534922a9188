// CCA-Attention on the CPU (Chen et al., ICML 2025, "Core Context Aware Transformers"): the twin of
// kernels/cca-wgsl.ts. Pass 1 pools each group of g keys/values into one core (softmax of the group's last
// query, averaged over the query heads of the KV head; cores stored in the input dtype, so rounded to f16
// for f16 inputs). Pass 2 is one flash-style online softmax per query row over key tiles of the cores it
// sees, then over the raw window tiles [c*g, p]; the per-query key lists never exist.
// Arithmetic runs in JS doubles and is stored as f32, so the twin checks the algorithm, not the rounding.
import { roundHalf } from '../f16.js';
import { emptyState, type AttentionState } from '../spine/state.js';
import { OnlineSoftmaxRow } from './online-softmax-cpu.js';

/** Where the rows of one CCA call sit in the sequence (every kernel and the cache share it). */
export interface CcaLayout {
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
  group: number;
  window: number;
  /** Query rows, and the position of row 0 (queries are consecutive positions). */
  queries: number;
  queryStart: number;
  /** Raw key/value rows, and the position of row 0. */
  raw: number;
  rawStart: number;
  /** Core rows held per KV head (core n pools group n); the queries see at most this many. */
  cores: number;
}

/** Cores query position p sees: max(0, floor((p + 1 - w) / g)). */
export function coresSeen(position: number, group: number, window: number): number {
  return Math.max(0, Math.floor((position + 1 - window) / group));
}

/**
 * Pass 1: pools groups [first, first + count) into coreK/coreV [Hkv, count, D] (group n at row n - first).
 * Group n's last token (n+1)g-1 must be a query row and its g tokens raw rows.
 */
export function ccaPoolCpu(
  Q: Float32Array,
  K: Float32Array,
  V: Float32Array,
  L: CcaLayout,
  first: number,
  count: number,
  coreK: Float32Array,
  coreV: Float32Array,
  halfCores = false,
): void {
  const { headDim: D, group: g } = L;
  const G = L.heads / L.kvHeads;
  const round = halfCores ? roundHalf : (x: number) => x;
  const e = new Float64Array(g);
  const w = new Float64Array(g);
  for (let kvh = 0; kvh < L.kvHeads; kvh++) {
    for (let n = first; n < first + count; n++) {
      const qi = (n + 1) * g - 1 - L.queryStart;
      const r0 = n * g - L.rawStart;
      w.fill(0);
      for (let h = kvh * G; h < (kvh + 1) * G; h++) {
        const qo = (h * L.queries + qi) * D;
        let m = -Infinity;
        for (let j = 0; j < g; j++) {
          const ko = (kvh * L.raw + r0 + j) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += Q[qo + d] * K[ko + d];
          e[j] = dot * L.scale;
          m = Math.max(m, e[j]);
        }
        let sum = 0;
        for (let j = 0; j < g; j++) sum += e[j] = Math.exp(e[j] - m);
        for (let j = 0; j < g; j++) w[j] += e[j] / (sum * G);
      }
      const co = (kvh * count + n - first) * D;
      for (let d = 0; d < D; d++) {
        let ck = 0;
        let cv = 0;
        for (let j = 0; j < g; j++) {
          const ko = (kvh * L.raw + r0 + j) * D + d;
          ck += w[j] * K[ko];
          cv += w[j] * V[ko];
        }
        coreK[co + d] = round(ck);
        coreV[co + d] = round(cv);
      }
    }
  }
}

/** Pass 2: one online softmax per row over the cores it sees, then its raw window, in tiles of `tile` keys. */
export function ccaAttendCpu(
  Q: Float32Array,
  coreK: Float32Array,
  coreV: Float32Array,
  K: Float32Array,
  V: Float32Array,
  L: CcaLayout,
  tile = 32,
): AttentionState {
  const { heads, queries, headDim: D, group: g } = L;
  const G = heads / L.kvHeads;
  const out = emptyState(heads, queries, D);
  const row = new OnlineSoftmaxRow(D, tile);
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / G);
    for (let i = 0; i < queries; i++) {
      const p = L.queryStart + i;
      const c = coresSeen(p, g, L.window);
      row.start();
      // Two sources, one softmax: core rows [0, c), then raw rows for positions [c*g, p].
      const sources: Array<[Float32Array, Float32Array, number, number, number]> = [
        [coreK, coreV, kvh * L.cores, 0, c],
        [K, V, kvh * L.raw, c * g - L.rawStart, p + 1 - L.rawStart],
      ];
      for (const [KS, VS, base, from, to] of sources) {
        for (let t0 = from; t0 < to; t0 += tile) {
          const t1 = Math.min(to, t0 + tile);
          for (let j = t0; j < t1; j++) row.rows[j - t0] = (base + j) * D;
          row.tile(Q, (h * queries + i) * D, L.scale, KS, VS, t1 - t0);
        }
      }
      row.finish(out, h * queries + i);
    }
  }
  return out;
}
