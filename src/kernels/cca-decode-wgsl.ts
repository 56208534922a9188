// CCA-Attention decoding (Chen et al., ICML 2025) as split-KV flash decoding (Dao et al. 2023, "Flash-Decoding"):
// one query per head at position p sees the cores of its fully past groups, c < cs = max(0, (p + 1 - w) / g),
// and the raw tokens [cs g, p], all in the resident cache (cores in rows [0, cs) of a KV head, raw position j
// in ring row ring_row0 + j mod ring_cap, the step's own token appended first). Those n = cs + p - cs g + 1
// keys, numbered i (core i, then raw cs g + i - cs), are split over workgroups as flash-decode-wgsl.ts splits
// a contiguous cache: each runs FlashAttention-2's online softmax over its split in tiles of a thread per
// key and writes a partial state; flash-decode-wgsl.ts's merge folds the splits (it reads the same uniform,
// whose first eight words are decodeParams'). Prefill chunks keep the row-tile kernels of cca-wgsl.ts.
// CPU truth: attention/cca-cache.ts (CcaKVCache); test/cca-gpu-layer.test.ts checks many splits.
import type { DType } from '../tensor.js';
import { DECODE_TILE, decodeParams, decodeSplits } from './flash-decode-wgsl.js';
import { inputType } from './wgsl-common.js';

const THREADS = DECODE_TILE;

export interface CcaDecodeParams {
  /** Position of the decoded token. */
  position: number;
  group: number;
  window: number;
  /** Rows per KV head of the cache buffers (cores + ring). */
  rowsPerHead: number;
  ringRow0: number;
  ringCapacity: number;
  /** Query heads per KV head. */
  headsPerKv: number;
  scale: number;
}

/** The cores and raw tokens the query at `position` sees (as cca-wgsl.ts cores_seen and CcaKVCache). */
export function ccaDecodeKeys(position: number, group: number, window: number): { cores: number; rawFirst: number } {
  const cores = Math.max(0, Math.floor((position + 1 - window) / group));
  return { cores, rawFirst: cores * group };
}

/** The uniform of both dispatches (partial, then flash-decode-wgsl's merge) and the split count. */
export function ccaDecodeParams(p: CcaDecodeParams): { params: ArrayBuffer; splits: number } {
  const { cores, rawFirst } = ccaDecodeKeys(p.position, p.group, p.window);
  const keys = cores + p.position - rawFirst + 1;
  const { splits, keysPerSplit } = decodeSplits(keys);
  const buf = new ArrayBuffer(64);
  new Uint8Array(buf).set(
    new Uint8Array(
      decodeParams({ keys, kvStride: p.rowsPerHead, group: p.headsPerKv, scale: p.scale, splits, keysPerSplit }),
    ),
  );
  new Uint32Array(buf, 32, 4).set([cores, rawFirst, p.ringRow0, Math.max(1, p.ringCapacity)]);
  return { params: buf, splits };
}

/** Partial states: q [Hq, 1, D], cache k/v [Hkv, rows, D] -> po [Hq, splits, D], plse [Hq, splits]. Grid (splits, Hq). */
export function ccaDecodePartialWgsl(headDim: number, dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  const dims = Math.ceil(headDim / THREADS);
  return /* wgsl */ `${enable}
struct Params {
  nk: u32, kv_stride: u32, group: u32, splits: u32, scale: f32, keys_per_split: u32, neg_inf_bits: u32, pad: u32,
  cores: u32, raw_first: u32, ring_row0: u32, ring_cap: u32,
}
@group(0) @binding(0) var<storage, read> q: array<${elem}>;
@group(0) @binding(1) var<storage, read> k: array<${elem}>;
@group(0) @binding(2) var<storage, read> v: array<${elem}>;
@group(0) @binding(3) var<storage, read_write> po: array<f32>;
@group(0) @binding(4) var<storage, read_write> plse: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

const D: u32 = ${headDim}u;
const BC: u32 = ${DECODE_TILE}u;
const WG: u32 = ${THREADS}u;
const NEG: f32 = -3.0e38;
var<workgroup> qs: array<f32, ${Math.ceil(headDim / 4) * 4}>;
var<workgroup> ps: array<f32, ${DECODE_TILE}>;
var<workgroup> rows: array<u32, ${DECODE_TILE}>;
var<workgroup> red: array<f32, ${THREADS}>;

// Key i of the query: core i, else raw position raw_first + i - cores in its ring slot.
fn row_of(i: u32) -> u32 {
  if (i < params.cores) { return i; }
  return params.ring_row0 + (params.raw_first + i - params.cores) % params.ring_cap;
}

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
  workgroupBarrier();
  for (var t0 = j0; t0 < j1; t0 += BC) {
    let j = t0 + lid;
    var score = NEG;
    if (j < j1) {
      let row = kbase + row_of(j) * D;
      rows[lid] = row;
      score = 0.0;
      for (var d = 0u; d < D; d++) { score += qs[d] * f32(k[row + d]); }
    }
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
        for (var x = 0u; x < n; x++) { sum += ps[x] * f32(v[rows[x] + d]); }
        acc[c] = sum;
      }
    }
    workgroupBarrier();
  }
  let r = h * params.splits + split;
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var c = 0u; c < ${dims}u; c++) {
    let d = lid + c * WG;
    if (d < D) { po[r * D + d] = acc[c] * inv; }
  }
  if (lid == 0u) { plse[r] = select(bitcast<f32>(params.neg_inf_bits), m + log(l), l > 0.0); }
}
`;
}
