// Remapped top-k attention (ReAttention, Liu et al. 2024; InfLLM, Xiao et al. 2024) over one (token, query
// head) row per workgroup. Query p keeps exact distances to its local window of W keys; of the far keys
// (j <= p - W) it attends the K that the radix select picked (kernels/topk-wgsl.ts over the scores of
// kernels/remap-scores-wgsl.ts), in their original order, at distances W .. W + m - 1 (m = how many were
// picked). Both come from one list: the m picks sorted by position (a bitonic sort in workgroup memory,
// Batcher 1968), then the window; list entry i is rotated to position i and the query to position L - 1
// (L = the list's length), so a far pick of rank r sits at distance W + m - 1 - r and window key j at p - j:
// model/positions/position-method.ts relativePosition, exactly. Keys are cached unrotated and rotated here
// by a table of positions 0 .. W + K - 1 (the trained range); the list is read in tiles of 128 keys, folded
// with FlashAttention-2's online softmax (Dao 2023), one rescale per tile. O [Hq, T, D] and LSE out, f32.
// NaN policy (docs/HARDENING.md): a row that scores a NaN or an infinity over its list is NaN.
import type { DType } from '../tensor.js';
import { FINITE_TESTS_WGSL } from './wgsl-common.js';

export const REMAP_ATTEND_THREADS = 128;

/** Keep in sync with the Params struct below. */
export function remapAttendParams(p: {
  /** Rows of the block (tokens x Hq) and its first token's index in the chunk. */
  rows: number;
  firstToken: number;
  chunkTokens: number;
  /** Position of the chunk's first token. */
  start: number;
  heads: number;
  group: number;
  /** Rows per KV head of the caches. */
  stride: number;
  window: number;
  topk: number;
  /** Rows of the rotation table (W + K). */
  tableRows: number;
  interleaved: boolean;
  /** The grid's columns (rows wrap onto y). */
  columns: number;
}): ArrayBuffer {
  const u = new Uint32Array(16);
  u.set([p.rows, p.firstToken, p.chunkTokens, p.start, p.heads, p.group, p.stride, p.window, p.topk, p.tableRows]);
  u.set([p.interleaved ? 1 : 0, p.columns, 0x7fc00000], 10); // the NaN a broken row writes, as bits
  return u.buffer;
}

/** Bindings: params, q [Hq, chunk, D], K and V caches [Hkv, stride, D] (storage dtype), picks [rows, K] i32,
 * table [cos | sin] x (W + K) x D/2 f32, o [Hq, chunk, D] f32, lse [Hq, chunk] f32. */
export function remapAttendWgsl(dtype: DType, headDim: number, topk: number): string {
  const D = headDim;
  const HALF = D / 2;
  let KP = 1;
  while (KP < topk) KP *= 2;
  const WG = REMAP_ATTEND_THREADS;
  const DS = Math.ceil(D / WG);
  return /* wgsl */ `${dtype === 'f16' ? 'enable f16;' : ''}
struct Params { rows: u32, t0: u32, tchunk: u32, start: u32, heads: u32, group: u32, stride: u32, window: u32,
                topk: u32, trows: u32, interleaved: u32, columns: u32, nan_bits: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<${dtype}>;
@group(0) @binding(2) var<storage, read> kc: array<${dtype}>;
@group(0) @binding(3) var<storage, read> vc: array<${dtype}>;
@group(0) @binding(4) var<storage, read> picks: array<i32>;
@group(0) @binding(5) var<storage, read> table: array<f32>;
@group(0) @binding(6) var<storage, read_write> o: array<f32>;
@group(0) @binding(7) var<storage, read_write> lse: array<f32>;
${FINITE_TESTS_WGSL}
const D: u32 = ${D}u;
const HALF: u32 = ${HALF}u;
const KP: u32 = ${KP}u;
const WG: u32 = ${WG}u;
const DS: u32 = ${DS}u;
const NONE: i32 = 0x7fffffff;
var<workgroup> idx: array<i32, ${KP}>;
var<workgroup> qr: array<f32, ${D}>;
var<workgroup> ps: array<f32, ${WG}>;
var<workgroup> kj: array<u32, ${WG}>;
var<workgroup> red: array<f32, ${WG}>;
var<workgroup> bad: atomic<u32>;

fn pair(i: u32) -> vec2u {
  if (params.interleaved != 0u) { return vec2u(2u * i, 2u * i + 1u); }
  return vec2u(i, i + HALF);
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * params.columns;
  if (row >= params.rows) { return; }
  let t = params.t0 + row / params.heads;
  let h = row % params.heads;
  let kvh = h / params.group;
  let p = params.start + t;
  let far = select(0u, p + 1u - params.window, p + 1u > params.window);
  let m = min(params.topk, far);
  let nw = min(params.window, p + 1u);
  let ws = p + 1u - nw;
  let L = m + nw;
  if (lid == 0u) { atomicStore(&bad, 0u); }
  // The picks of this row in position order (unused slots, -1, sort last).
  for (var i = lid; i < KP; i += WG) {
    var v = NONE;
    if (far > 0u && i < params.topk) {
      let x = picks[row * params.topk + i];
      if (x >= 0) { v = x; }
    }
    idx[i] = v;
  }
  workgroupBarrier();
  for (var kk = 2u; kk <= KP; kk <<= 1u) {
    for (var j = kk >> 1u; j > 0u; j >>= 1u) {
      for (var i = lid; i < KP; i += WG) {
        let l = i ^ j;
        if (l > i) {
          let a = idx[i];
          let b = idx[l];
          if ((a > b) == ((i & kk) == 0u)) { idx[i] = b; idx[l] = a; }
        }
      }
      workgroupBarrier();
    }
  }
  // The query rotated to position L - 1.
  let qbase = (h * params.tchunk + t) * D;
  for (var i = lid; i < HALF; i += WG) {
    let ab = pair(i);
    let c = table[(L - 1u) * HALF + i];
    let s = table[(params.trows + L - 1u) * HALF + i];
    let x0 = f32(q[qbase + ab.x]);
    let x1 = f32(q[qbase + ab.y]);
    qr[ab.x] = x0 * c - x1 * s;
    qr[ab.y] = x0 * s + x1 * c;
  }
  workgroupBarrier();
  let scale = 1.0 / sqrt(f32(D));
  var mrun = -3.0e38;
  var lrun = 0.0;
  var acc: array<f32, DS>;
  let tiles = (L + WG - 1u) / WG;
  for (var tile = 0u; tile < tiles; tile++) {
    let i = tile * WG + lid;
    var sc = -3.0e38;
    var j = 0u;
    if (i < L) {
      if (i < m) { j = u32(idx[i]); } else { j = ws + i - m; }
      let kbase = (kvh * params.stride + j) * D;
      var dot = 0.0;
      for (var u = 0u; u < HALF; u++) {
        let ab = pair(u);
        let c = table[i * HALF + u];
        let s = table[(params.trows + i) * HALF + u];
        let k0 = f32(kc[kbase + ab.x]);
        let k1 = f32(kc[kbase + ab.y]);
        dot += qr[ab.x] * (k0 * c - k1 * s) + qr[ab.y] * (k0 * s + k1 * c);
      }
      sc = dot * scale;
      if (non_finite(sc)) { atomicStore(&bad, 1u); sc = 0.0; }
    }
    red[lid] = sc;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
      if (lid < w) { red[lid] = max(red[lid], red[lid + w]); }
      workgroupBarrier();
    }
    let mnew = max(mrun, red[0]);
    let alpha = exp(mrun - mnew);
    workgroupBarrier();
    let pv = select(0.0, exp(sc - mnew), i < L);
    ps[lid] = pv;
    kj[lid] = j;
    red[lid] = pv;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
      if (lid < w) { red[lid] = red[lid] + red[lid + w]; }
      workgroupBarrier();
    }
    lrun = lrun * alpha + red[0];
    let count = min(WG, L - tile * WG);
    for (var e = 0u; e < DS; e++) {
      let d = lid + e * WG;
      if (d < D) {
        var a = acc[e] * alpha;
        for (var x = 0u; x < count; x++) { a += ps[x] * f32(vc[(kvh * params.stride + kj[x]) * D + d]); }
        acc[e] = a;
      }
    }
    mrun = mnew;
    workgroupBarrier();
  }
  let broken = atomicLoad(&bad) != 0u;
  let obase = (h * params.tchunk + t) * D;
  for (var e = 0u; e < DS; e++) {
    let d = lid + e * WG;
    if (d < D) { o[obase + d] = select(acc[e] / lrun, bitcast<f32>(params.nan_bits), broken); }
  }
  if (lid == 0u) { lse[h * params.tchunk + t] = select(mrun + log(lrun), bitcast<f32>(params.nan_bits), broken); }
}
`;
}
