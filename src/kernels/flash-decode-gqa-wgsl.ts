// Split-KV flash decoding, version 2 (Dao, Haziza, Massa, Sizov 2023, "Flash-Decoding for long-context
// inference"; the GQA packing of FlashInfer's and llama.cpp's decode kernels): one query per head over a
// KV cache read in place. A workgroup takes one split of one KV head's keys for HPW of the query heads that
// share it (GQA: the keys are read once for all of them, not once per query head as in version 1):
// - each tile of BC keys is staged into workgroup memory by the whole workgroup, in row order (coalesced
//   loads; a padded row stride so that a lane per key reads without bank conflicts);
// - 32 lanes per query head score the tile (a lane per key), take the tile's max and sum by a tree over
//   their 32 lanes, and update FlashAttention-2's online softmax;
// - the same lanes own the output dims and read V rows straight from the cache (consecutive lanes read
//   consecutive dims: coalesced), weighting them by the staged probabilities.
// It writes the partial states of version 1 (po [Hq, splits, D] normalised, plse [Hq, splits]), so
// flash-decode-wgsl.ts's merge folds the splits, and it keeps the same NaN policy (docs/HARDENING.md):
// a split that scores a NaN or an infinity writes a NaN state.
// Checked against the float64 reference beside version 1 (test/flash-decode.test.ts).
import type { DType } from '../tensor.js';
import { inputType } from './wgsl-common.js';
import { DECODE_TILE, decodePartialBindings } from './flash-decode-wgsl.js';

/** Lanes per query head (a tree over them gives a tile's max and sum). */
const LANES = 32;
/** Query heads per workgroup at most (workgroups of up to 256 threads). */
const MAX_HEADS_PER_WORKGROUP = 8;

/** Query heads per workgroup: the largest divisor of the GQA group that fits. */
export function decodeGqaHeadsPerWorkgroup(group: number): number {
  for (let h = Math.min(group, MAX_HEADS_PER_WORKGROUP); h > 1; h--) if (group % h === 0) return h;
  return 1;
}

/** Keys per tile: 64 (DECODE_TILE) while the staged tile stays within 16.6 KB of f32, else 32. */
export function decodeGqaTile(headDim: number): number {
  return headDim <= 64 ? DECODE_TILE : DECODE_TILE / 2;
}

/** Workgroups: (splits, KV heads x workgroups per KV head). */
export function decodeGqaGrid(splits: number, heads: number, kvHeads: number): [number, number] {
  const group = heads / kvHeads;
  return [splits, kvHeads * (group / decodeGqaHeadsPerWorkgroup(group))];
}

/** Partial states: q [Hq, 1, D], k/v [Hkv, kv_stride, D] -> po [Hq, splits, D], plse [Hq, splits].
 * The uniform is decodeParams' (flash-decode-wgsl.ts); `group` (Hq / Hkv) is compiled in. */
export function flashDecodeGqaPartialWgsl(headDim: number, dtype: DType, group: number): string {
  const { enable, elem } = inputType(dtype);
  const hpw = decodeGqaHeadsPerWorkgroup(group);
  const bc = decodeGqaTile(headDim);
  const threads = LANES * hpw;
  const stride = headDim + 1;
  return /* wgsl */ `${enable}
${decodePartialBindings(elem)}

const D: u32 = ${headDim}u;
const G: u32 = ${group}u;
const HPW: u32 = ${hpw}u;
const LANES: u32 = ${LANES}u;
const WG: u32 = ${threads}u;
const BC: u32 = ${bc}u;
const KPL: u32 = ${bc / LANES}u;
const DPL: u32 = ${Math.ceil(headDim / LANES)}u;
const KS: u32 = ${stride}u;
const NEG: f32 = -3.0e38;
var<workgroup> qs: array<f32, ${hpw * headDim}>;
var<workgroup> ks: array<f32, ${bc * stride}>;
var<workgroup> ps: array<f32, ${hpw * bc}>;
var<workgroup> red: array<f32, ${threads}>;

// A tree over the 32 lanes of one query head (every thread of the workgroup calls it: it holds barriers).
fn lanes_reduce(lid: u32, head: u32, lane: u32, x: f32, is_max: bool) -> f32 {
  red[lid] = x;
  for (var s = LANES / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (lane < s) { red[lid] = select(red[lid] + red[lid + s], max(red[lid], red[lid + s]), is_max); }
  }
  workgroupBarrier();
  let r = red[head * LANES];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let per_kv = G / HPW;
  let kvh = wg.y / per_kv;
  let h0 = kvh * G + (wg.y % per_kv) * HPW; // first query head of this workgroup
  let head = lid / LANES;
  let lane = lid % LANES;
  let split = wg.x;
  for (var i = lid; i < HPW * D; i += WG) { qs[i] = f32(q[h0 * D + i]) * params.scale; }
  let j0 = split * params.keys_per_split;
  let j1 = min(params.nk, j0 + params.keys_per_split);
  let kbase = kvh * params.kv_stride * D;
  var acc: array<f32, DPL>;
  for (var c = 0u; c < DPL; c++) { acc[c] = 0.0; }
  var m = NEG;
  var l = 0.0;
  var mine = false; // this lane scored a NaN or an infinity (reduced once, after the loop)
  for (var t0 = j0; t0 < j1; t0 += BC) {
    let n = min(BC, j1 - t0);
    workgroupBarrier(); // the previous tile's ks and ps are read
    for (var i = lid; i < BC * D; i += WG) {
      let x = i / D;
      var e = 0.0;
      if (x < n) { e = f32(k[kbase + t0 * D + i]); }
      ks[x * KS + i % D] = e;
    }
    workgroupBarrier();
    var sc: array<f32, KPL>;
    var tmax = NEG;
    for (var c = 0u; c < KPL; c++) {
      let x = lane + c * LANES;
      var s = NEG;
      if (x < n) {
        s = 0.0;
        for (var d = 0u; d < D; d++) { s += qs[head * D + d] * ks[x * KS + d]; }
      }
      mine = mine || non_finite(s);
      sc[c] = s;
      tmax = max(tmax, s);
    }
    let m_new = max(m, lanes_reduce(lid, head, lane, tmax, true));
    var psum = 0.0;
    for (var c = 0u; c < KPL; c++) {
      let p = select(exp(sc[c] - m_new), 0.0, sc[c] == NEG);
      ps[head * BC + lane + c * LANES] = p;
      psum += p;
    }
    let tile_sum = lanes_reduce(lid, head, lane, psum, false); // its barriers publish ps
    let alpha = exp(m - m_new);
    l = l * alpha + tile_sum;
    m = m_new;
    for (var c = 0u; c < DPL; c++) {
      let d = lane + c * LANES;
      if (d < D) {
        var sum = acc[c] * alpha;
        for (var x = 0u; x < n; x++) { sum += ps[head * BC + x] * f32(v[kbase + (t0 + x) * D + d]); }
        acc[c] = sum;
      }
    }
  }
  let bad = lanes_reduce(lid, head, lane, select(0.0, 1.0, mine), true) > 0.0;
  let r = (h0 + head) * params.splits + split;
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var c = 0u; c < DPL; c++) {
    let d = lane + c * LANES;
    if (d < D) { po[r * D + d] = select(acc[c] * inv, nan_value(), bad); }
  }
  if (lane == 0u) {
    plse[r] = select(select(bitcast<f32>(params.neg_inf_bits), m + log(l), l > 0.0), nan_value(), bad);
  }
}
`;
}
