// Float64 reference of CCA-Attention (Core Context Aware attention, Chen et al., ICML 2025), straight
// from the definition: each group of g tokens is pooled into one core key/value (weights: the softmax of
// the group's last query against the group's keys, averaged over the query heads sharing the KV head);
// query m attends, in one softmax, to an explicit list of cores 0..c-1, c = max(0, floor((m+1-w)/g)),
// followed by the raw keys [c*g, m]. No tiles, no online softmax: what the kernels are checked against.
import { roundHalf } from '../f16.js';
import { ShapeError } from '../errors.js';
import { asFloat32, type Tensor } from '../tensor.js';
import { referenceDims, type ReferenceState } from './attention.js';

export interface CcaReferenceParams {
  group: number;
  window: number;
  scale?: number;
}

/** Cores query m sees: max(0, floor((m + 1 - w) / g)). */
export function ccaCoresSeen(position: number, group: number, window: number): number {
  return Math.max(0, Math.floor((position + 1 - window) / group));
}

/**
 * q holds the queries of ALL Nk positions [Hq, Nk, D] (pooling needs every group's last query); the
 * result covers the last `queries` positions (default all), bottom-right aligned. Causal by definition.
 */
function naiveCca(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  p: CcaReferenceParams,
  queries: number | undefined,
  round: (x: number) => number,
): ReferenceState {
  const s = referenceDims(q, k, { scale: p.scale });
  if (s.queries !== s.keys)
    throw new ShapeError(`the CCA reference needs the queries of all ${s.keys} positions, got ${s.queries}`);
  const { heads, keys: N, headDim: D, scale } = s;
  const G = heads / s.kvHeads;
  const g = p.group;
  const nq = queries ?? N;
  const [Q, K, V] = [asFloat32(q), asFloat32(k), asFloat32(v)];
  const groups = Math.floor(N / g);
  // Cores [Hkv, groups, D], pooled from the definition.
  const coreK = new Float64Array(s.kvHeads * groups * D);
  const coreV = new Float64Array(s.kvHeads * groups * D);
  const w = new Float64Array(g);
  const e = new Float64Array(g);
  for (let kvh = 0; kvh < s.kvHeads; kvh++) {
    for (let n = 0; n < groups; n++) {
      w.fill(0);
      const last = (n + 1) * g - 1;
      for (let h = kvh * G; h < (kvh + 1) * G; h++) {
        let m = -Infinity;
        for (let j = 0; j < g; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += Q[(h * N + last) * D + d] * K[(kvh * N + n * g + j) * D + d];
          e[j] = round(dot * scale);
          m = Math.max(m, e[j]);
        }
        let sum = 0;
        for (let j = 0; j < g; j++) sum += Math.exp(e[j] - m);
        for (let j = 0; j < g; j++) w[j] += round(Math.exp(e[j] - m) / sum) / G;
      }
      for (let d = 0; d < D; d++) {
        let ck = 0;
        let cv = 0;
        for (let j = 0; j < g; j++) {
          ck += w[j] * K[(kvh * N + n * g + j) * D + d];
          cv += w[j] * V[(kvh * N + n * g + j) * D + d];
        }
        coreK[(kvh * groups + n) * D + d] = round(ck);
        coreV[(kvh * groups + n) * D + d] = round(cv);
      }
    }
  }
  const o = new Float64Array(heads * nq * D);
  const lse = new Float64Array(heads * nq).fill(-Infinity);
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / G);
    for (let i = 0; i < nq; i++) {
      const pos = N - nq + i;
      const c = ccaCoresSeen(pos, g, p.window);
      // The explicit key list of this query: (keys, values) as float64 rows.
      const list: Array<[Float64Array | Float32Array, Float64Array | Float32Array, number]> = [];
      for (let n = 0; n < c; n++) list.push([coreK, coreV, (kvh * groups + n) * D]);
      for (let j = c * g; j <= pos; j++) list.push([K, V, (kvh * N + j) * D]);
      const scores = list.map(([kk, , off]) => {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += Q[(h * N + pos) * D + d] * kk[off + d];
        return round(dot * scale);
      });
      if (scores.length === 0) continue;
      const m = Math.max(...scores);
      const sum = scores.reduce((a, x) => a + Math.exp(x - m), 0);
      const r = h * nq + i;
      lse[r] = m + Math.log(sum);
      list.forEach(([, vv, off], j) => {
        const pr = round(Math.exp(scores[j] - m) / sum);
        for (let d = 0; d < D; d++) o[r * D + d] += pr * vv[off + d];
      });
      for (let d = 0; d < D; d++) o[r * D + d] = round(o[r * D + d]);
    }
  }
  return { o, lse };
}

export function referenceCca(q: Tensor, k: Tensor, v: Tensor, p: CcaReferenceParams, queries?: number): ReferenceState {
  return naiveCca(q, k, v, p, queries, (x) => x);
}

/** The same with scores, probabilities, pooling weights, cores and outputs rounded to f16 (a naive f16 CCA). */
export function naiveHalfCca(q: Tensor, k: Tensor, v: Tensor, p: CcaReferenceParams, queries?: number): ReferenceState {
  return naiveCca(q, k, v, p, queries, roundHalf);
}
