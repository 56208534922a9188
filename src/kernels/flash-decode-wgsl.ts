// Split-KV flash decoding (Dao, Haziza, Massa, Sizov 2023, "Flash-Decoding for long-context inference"):
// one query per head over a long KV cache. The keys are split over workgroups (grid: splits x query heads);
// each workgroup runs FlashAttention-2's online softmax over its split in tiles of DECODE_TILE keys (a
// thread per key scores it, a tree reduction gives the tile's max and sum, threads own output dims) and
// writes a partial state (O normalised, LSE). A second kernel folds the splits of each head with the
// spine's merge (L = logaddexp over splits, O = sum exp(L_s - L) O_s), so the result is exact.
// Keys of KV head h, row j, sit at row h * kv_stride + j: the cache is read in place, never repacked.
// Checked against the float64 reference (test/flash-decode.test.ts); CPU twin: flash-cpu.ts on one query.
// The NaN policy (docs/HARDENING.md): a split that scores a NaN or infinity writes a NaN state, and the merge
// keeps a NaN LSE of any split (a merge that skipped it would hide it as "no key").
import type { DType } from '../tensor.js';
import { inputType, NON_FINITE_WGSL } from './wgsl-common.js';

export const DECODE_TILE = 64;
const THREADS = 64;
/** Partial states per head at most (sizes the partial buffers: heads x DECODE_MAX_SPLITS x (D + 1) f32). */
export const DECODE_MAX_SPLITS = 256;

/** How a cache is split: at most maxSplits splits, each of minKeys keys at least (below, a split's fixed
 * cost outweighs its work). */
export interface DecodeSplitting {
  maxSplits: number;
  minKeys: number;
}
/** Measured best for v1 on the H200 (4K-128K keys of the 1B model's attention; 64 x 256 ran 1.1-1.6x slower). */
export const DECODE_SPLITTING: DecodeSplitting = { maxSplits: 128, minKeys: 128 };

/** How `keys` are split: at most `maxSplits` splits of a multiple of DECODE_TILE keys. */
export function decodeSplits(
  keys: number,
  splitting: DecodeSplitting = DECODE_SPLITTING,
): { splits: number; keysPerSplit: number } {
  const maxSplits = Math.min(splitting.maxSplits, DECODE_MAX_SPLITS);
  const wanted = Math.max(splitting.minKeys, Math.ceil(keys / maxSplits));
  const keysPerSplit = Math.ceil(wanted / DECODE_TILE) * DECODE_TILE;
  return { splits: Math.max(1, Math.ceil(keys / keysPerSplit)), keysPerSplit };
}

export interface DecodeParams {
  keys: number;
  /** Rows per KV head in k and v (the cache capacity); default `keys`. */
  kvStride?: number;
  group: number;
  scale: number;
  splits: number;
  keysPerSplit: number;
}

export function decodeParams(p: DecodeParams): ArrayBuffer {
  const buf = new ArrayBuffer(32);
  const u = new Uint32Array(buf);
  u[0] = p.keys;
  u[1] = p.kvStride ?? p.keys;
  u[2] = p.group;
  u[3] = p.splits;
  new Float32Array(buf)[4] = p.scale;
  u[5] = p.keysPerSplit;
  u[6] = 0xff800000; // -Infinity
  return buf;
}

const PARAMS = /* wgsl */ `
struct Params { nk: u32, kv_stride: u32, group: u32, splits: u32, scale: f32, keys_per_split: u32, neg_inf_bits: u32, pad: u32 }`;

/** The interface every partial kernel version shares (so one merge kernel folds them): decodeParams' uniform
 * (plus `extraParams` fields), q, k, v in `elem` words, po and plse out, and the NaN helpers. */
export function decodePartialBindings(elem: string, extraParams = ''): string {
  const params = extraParams ? PARAMS.replace(' }', `,\n  ${extraParams.replace(/,\s*$/, '')} }`) : PARAMS;
  return /* wgsl */ `${params}
@group(0) @binding(0) var<storage, read> q: array<${elem}>;
@group(0) @binding(1) var<storage, read> k: array<${elem}>;
@group(0) @binding(2) var<storage, read> v: array<${elem}>;
@group(0) @binding(3) var<storage, read_write> po: array<f32>;
@group(0) @binding(4) var<storage, read_write> plse: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;
${NON_FINITE_WGSL}`;
}

/** Where key i of a split's numbering sits in k and v: the one thing a caller of the partial kernel may change
 * (CCA's decode numbers cores, then raw tokens in a ring: cca-decode-wgsl.ts). */
export interface DecodeKeyRows {
  /** Uniform fields after the eight of decodeParams (each `name: u32,`). */
  params: string;
  /** Module-scope WGSL the two expressions below use. */
  wgsl: string;
  /** Statements inside `if (j < j1)` that set `let row` (the index of key j's first element in k). */
  keyRow: string;
  /** The index of tile key x's first element in v (t0 + x is its number). */
  valueRow: string;
}

/** Keys in place: row j of KV head kvh at kvh * kv_stride + j. */
const CONTIGUOUS_ROWS: DecodeKeyRows = {
  params: '',
  wgsl: '',
  keyRow: 'let row = kbase + j * D;',
  valueRow: 'kbase + (t0 + x) * D',
};

/** Partial states: q [Hq, 1, D], k/v [Hkv, kv_stride, D] -> po [Hq, splits, D], plse [Hq, splits]. */
export function flashDecodePartialWgsl(headDim: number, dtype: DType, rows: DecodeKeyRows = CONTIGUOUS_ROWS): string {
  const { enable, elem } = inputType(dtype);
  const dims = Math.ceil(headDim / THREADS);
  return /* wgsl */ `${enable}
${decodePartialBindings(elem, rows.params)}

const D: u32 = ${headDim}u;
const BC: u32 = ${DECODE_TILE}u;
const WG: u32 = ${THREADS}u;
const NEG: f32 = -3.0e38;
var<workgroup> qs: array<f32, ${Math.ceil(headDim / 4) * 4}>;
var<workgroup> ps: array<f32, ${DECODE_TILE}>;
var<workgroup> red: array<f32, ${THREADS}>;
${rows.wgsl}

fn reduce(lid: u32, is_max: bool) -> f32 {
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (lid < s) { red[lid] = select(red[lid] + red[lid + s], max(red[lid], red[lid + s]), is_max); }
  }
  workgroupBarrier();
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let split = wg.x;
  let kvh = h / params.group;
  for (var d = lid; d < D; d += WG) { qs[d] = f32(q[h * D + d]) * params.scale; }
  let j0 = split * params.keys_per_split;
  let j1 = min(params.nk, j0 + params.keys_per_split);
  let kbase = kvh * params.kv_stride * D;
  var acc: array<f32, ${dims}>;
  for (var c = 0u; c < ${dims}u; c++) { acc[c] = 0.0; }
  var m = NEG;
  var l = 0.0;
  var mine = false; // this thread scored a NaN or an infinity (reduced once, after the loop)
  workgroupBarrier();
  for (var t0 = j0; t0 < j1; t0 += BC) {
    let j = t0 + lid;
    var score = NEG;
    if (j < j1) {
      ${rows.keyRow}
      score = 0.0;
      for (var d = 0u; d < D; d++) { score += qs[d] * f32(k[row + d]); }
    }
    mine = mine || non_finite(score);
    red[lid] = score;
    let tile_max = reduce(lid, true);
    let m_new = max(m, tile_max);
    let p = select(exp(score - m_new), 0.0, score == NEG);
    ps[lid] = p;
    red[lid] = p;
    let tile_sum = reduce(lid, false);
    let alpha = exp(m - m_new);
    l = l * alpha + tile_sum;
    m = m_new;
    let n = min(BC, j1 - t0);
    for (var c = 0u; c < ${dims}u; c++) {
      let d = lid + c * WG;
      if (d < D) {
        var sum = acc[c] * alpha;
        for (var x = 0u; x < n; x++) { sum += ps[x] * f32(v[${rows.valueRow} + d]); }
        acc[c] = sum;
      }
    }
    workgroupBarrier();
  }
  red[lid] = select(0.0, 1.0, mine);
  let bad = reduce(lid, true) > 0.0;
  let r = h * params.splits + split;
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var c = 0u; c < ${dims}u; c++) {
    let d = lid + c * WG;
    if (d < D) { po[r * D + d] = select(acc[c] * inv, nan_value(), bad); }
  }
  if (lid == 0u) {
    plse[r] = select(select(bitcast<f32>(params.neg_inf_bits), m + log(l), l > 0.0), nan_value(), bad);
  }
}
`;
}

/** Folds each head's splits: po [Hq, splits, D], plse [Hq, splits] -> o [Hq, 1, D], lse [Hq] (the spine's merge). */
export function flashDecodeMergeWgsl(headDim: number): string {
  return /* wgsl */ `
${PARAMS}
@group(0) @binding(0) var<storage, read> po: array<f32>;
@group(0) @binding(1) var<storage, read> plse: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
${NON_FINITE_WGSL}
const D: u32 = ${headDim}u;
const WG: u32 = ${THREADS}u;
const NEG: f32 = -3.0e38;

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let base = h * params.splits;
  // An empty split has LSE -inf: it weighs 0 (compared, never computed with, as WGSL leaves inf arithmetic open).
  var top = NEG;
  var bad = false;
  for (var s = 0u; s < params.splits; s++) { top = max(top, plse[base + s]); bad = bad || is_nan(plse[base + s]); }
  let empty = top <= NEG;
  var total = 0.0;
  for (var s = 0u; s < params.splits; s++) { total += select(exp(plse[base + s] - top), 0.0, plse[base + s] <= NEG); }
  for (var d = lid; d < D; d += WG) {
    var sum = 0.0;
    for (var s = 0u; s < params.splits; s++) {
      let w = select(exp(plse[base + s] - top), 0.0, plse[base + s] <= NEG);
      sum += w * po[(base + s) * D + d];
    }
    o[h * D + d] = select(select(sum / total, 0.0, empty), nan_value(), bad);
  }
  if (lid == 0u) { lse[h] = select(select(top + log(total), bitcast<f32>(params.neg_inf_bits), empty), nan_value(), bad); }
}
`;
}
