// CCA-Attention on WebGPU (Chen et al., ICML 2025, "Core Context Aware Transformers"), two kernels:
// pass 1 pools each (KV head, group of g tokens) into one core key/value (softmax of the group's last query,
// averaged over the KV head's query heads; O(N/g) cores written in the input dtype); pass 2 is the portable
// FlashAttention-2 loop of flash-wgsl.ts (one thread per query row, shared key tiles, online softmax) over
// the core tiles the workgroup's rows see, then the raw window tiles [c*g, p]: no per-query key lists.
// CPU twin: cca-cpu.ts. Pass 2 on subgroup matrices (tensor cores): cca-sgmat-wgsl.ts.
// NaN policy (docs/HARDENING.md): a group whose pooling scores hold a NaN or an infinity pools into a NaN core
// (as the CPU twin's arithmetic gives), and a row that sees a NaN or infinite score (a NaN core or raw key) is NaN.
import type { DType } from '../tensor.js';
import { FLASH_PORTABLE_ROWS, flashPortableTile } from './flash-wgsl.js';
import { inputType, nanElemWgsl, NON_FINITE_WGSL } from './wgsl-common.js';

/** Uniform block of both CCA kernels; keep in sync with ccaParams(). */
const CCA_PARAMS_WGSL = /* wgsl */ `
struct Params {
  nq: u32, query_start: u32, nraw: u32, raw_start: u32,
  core_cap: u32, pool_first: u32, gsize: u32, window: u32,
  heads_per_kv: u32, scale: f32, neg_inf_bits: u32, ring_row0: u32,
  ring_cap: u32, ring_end: u32, pad0: u32, pad1: u32,
}
fn cores_seen(p: i32) -> i32 { return max(0, (p + 1 - i32(params.window)) / i32(params.gsize)); }
// Raw position j lives in the ring (rows ring_row0 + j % ring_cap of the core buffers, a resident cache)
// when j < ring_end, else in the raw rows k, v (row j - raw_start). Without a ring, ring_end = 0.
fn in_ring(j: i32) -> bool { return j < i32(params.ring_end); }
fn ring_row(kvh: u32, j: i32) -> u32 { return kvh * params.core_cap + params.ring_row0 + u32(j) % params.ring_cap; }
fn raw_row(kvh: u32, j: i32) -> u32 { return u32(i32(kvh * params.nraw) + j - i32(params.raw_start)); }`;

/** The raw-row reads of a kernel whose core buffers are bound as core_k/core_v and raw rows as k/v. */
const RAW_AT_WGSL = /* wgsl */ `
fn raw_k(kvh: u32, j: i32, d: u32) -> f32 {
  if (in_ring(j)) { return f32(core_k[ring_row(kvh, j) * D + d]); }
  return f32(k[raw_row(kvh, j) * D + d]);
}
fn raw_v(kvh: u32, j: i32, d: u32) -> f32 {
  if (in_ring(j)) { return f32(core_v[ring_row(kvh, j) * D + d]); }
  return f32(v[raw_row(kvh, j) * D + d]);
}`;

export interface CcaKernelParams {
  queries: number;
  queryStart: number;
  raw: number;
  rawStart: number;
  coreCapacity: number;
  poolFirst: number;
  group: number;
  window: number;
  headsPerKv: number;
  scale: number;
  /** A resident ring (attention/layers/cca-gpu.ts): positions below ringEnd are read from core-buffer rows
   * ringRow0 + position % ringCapacity. Default: no ring. */
  ringRow0?: number;
  ringCapacity?: number;
  ringEnd?: number;
}

export function ccaParams(p: CcaKernelParams): ArrayBuffer {
  const buf = new ArrayBuffer(64);
  const u = new Uint32Array(buf);
  [u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8]] = [
    p.queries,
    p.queryStart,
    p.raw,
    p.rawStart,
    p.coreCapacity,
    p.poolFirst,
    p.group,
    p.window,
    p.headsPerKv,
  ];
  new Float32Array(buf)[9] = p.scale;
  u[10] = 0xff800000; // -Infinity: WGSL has no infinity literal
  [u[11], u[12], u[13]] = [p.ringRow0 ?? 0, Math.max(1, p.ringCapacity ?? 1), p.ringEnd ?? 0];
  return buf;
}

/** Scores of one pooling workgroup (G query heads x g keys, then g weights) must fit this. */
export const CCA_POOL_SCORES = 2048;
const POOL_THREADS = 64;

/** Pass 1: one workgroup per (group, KV head): dispatch (groups to pool, KV heads). */
export function ccaPoolWgsl(headDim: number, dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  return /* wgsl */ `${enable}
@group(0) @binding(0) var<storage, read> q: array<${elem}>;
@group(0) @binding(1) var<storage, read> k: array<${elem}>;
@group(0) @binding(2) var<storage, read> v: array<${elem}>;
@group(0) @binding(3) var<storage, read_write> core_k: array<${elem}>;
@group(0) @binding(4) var<storage, read_write> core_v: array<${elem}>;
@group(0) @binding(5) var<uniform> params: Params;
${CCA_PARAMS_WGSL}

const D: u32 = ${headDim}u;
const T: u32 = ${POOL_THREADS}u;
${RAW_AT_WGSL}
${NON_FINITE_WGSL}
${nanElemWgsl(elem)}
var<workgroup> sc: array<f32, ${CCA_POOL_SCORES}>;
var<workgroup> poisoned: atomic<u32>; // a pooling score was NaN or infinite

@compute @workgroup_size(${POOL_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n = params.pool_first + wg.x;
  let kvh = wg.y;
  let G = params.heads_per_kv;
  let g = params.gsize;
  let qi = (n + 1u) * g - 1u - params.query_start;
  let j0 = i32(n * g);
  if (lid == 0u) { atomicStore(&poisoned, 0u); }
  workgroupBarrier();
  for (var t = lid; t < G * g; t += T) {
    let h = kvh * G + t / g;
    let qo = (h * params.nq + qi) * D;
    let j = j0 + i32(t % g);
    var dot = 0.0;
    for (var d = 0u; d < D; d++) { dot += f32(q[qo + d]) * raw_k(kvh, j, d); }
    sc[t] = dot * params.scale;
    if (non_finite(sc[t])) { atomicOr(&poisoned, 1u); }
  }
  workgroupBarrier();
  let bad = atomicLoad(&poisoned) != 0u;
  if (lid < G) {
    let b = lid * g;
    var m = sc[b];
    for (var j = 1u; j < g; j++) { m = max(m, sc[b + j]); }
    var sum = 0.0;
    for (var j = 0u; j < g; j++) { let e = exp(sc[b + j] - m); sc[b + j] = e; sum += e; }
    let inv = 1.0 / (sum * f32(G));
    for (var j = 0u; j < g; j++) { sc[b + j] *= inv; }
  }
  workgroupBarrier();
  if (lid < g) {
    var w = 0.0;
    for (var h = 0u; h < G; h++) { w += sc[h * g + lid]; }
    sc[G * g + lid] = w;
  }
  workgroupBarrier();
  let cbase = (kvh * params.core_cap + n) * D;
  for (var d = lid; d < D; d += T) {
    var ck = 0.0; var cv = 0.0;
    for (var j = 0u; j < g; j++) {
      let w = sc[G * g + j];
      ck += w * raw_k(kvh, j0 + i32(j), d);
      cv += w * raw_v(kvh, j0 + i32(j), d);
    }
    core_k[cbase + d] = select(${elem}(ck), nan_elem(), bad);
    core_v[cbase + d] = select(${elem}(cv), nan_elem(), bad);
  }
}
`;
}

export { CCA_PARAMS_WGSL };

/** The bindings of the subgroup-matrix pass 2 (ccaAttendWgsl's order; q, cores, raw k and v as `vector`s: vec4<f16>
 * for v1, vec4<u32> of packed halves for tc2), and the uniform's struct. */
export function ccaSubgroupMatrixBindingsWgsl(vector: string): string {
  return `@group(0) @binding(0) var<storage, read> qg: array<${vector}>;
@group(0) @binding(1) var<storage, read> ckg: array<${vector}>;
@group(0) @binding(2) var<storage, read> cvg: array<${vector}>;
@group(0) @binding(3) var<storage, read> kg: array<${vector}>;
@group(0) @binding(4) var<storage, read> vg: array<${vector}>;
@group(0) @binding(5) var<storage, read_write> o: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;
${CCA_PARAMS_WGSL}
`;
}

/** The subgroup-matrix pass 2's rows and tiles (cca-sgmat-wgsl.ts, cca-tc-wgsl.ts): this lane's row i (position p,
 * c_row cores, raw keys from raw_first) and its workgroup's tiles, core tiles [0, core_tiles) then raw tiles from
 * raw_lo up to p_last. Needs BR, BC, wg, sg and lane in scope. */
export const CCA_ROW_TILES_WGSL = `  let r = lane / 2u;
  let side = lane % 2u;
  let i = wg.x * BR + sg * 16u + r;
  let row_ok = i < params.nq;
  let p = i32(params.query_start + min(i, params.nq - 1u));
  let c_row = cores_seen(p);
  let raw_first = c_row * i32(params.gsize);
  let p_first = i32(params.query_start + wg.x * BR);
  let p_last = i32(params.query_start + min(params.nq - 1u, wg.x * BR + BR - 1u));
  let c_last = cores_seen(p_last);
  let raw_lo = cores_seen(p_first) * i32(params.gsize);
  let core_tiles = (c_last + i32(BC) - 1) / i32(BC);
  let tiles = core_tiles + (p_last - raw_lo + i32(BC)) / i32(BC);
`;

export const CCA_ROWS = FLASH_PORTABLE_ROWS;

/** Pass 2: one workgroup per CCA_ROWS query rows and query head: dispatch (row tiles, heads). */
export function ccaAttendWgsl(headDim: number, dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  const BC = flashPortableTile(headDim);
  return /* wgsl */ `${enable}
@group(0) @binding(0) var<storage, read> q: array<${elem}>;
@group(0) @binding(1) var<storage, read> core_k: array<${elem}>;
@group(0) @binding(2) var<storage, read> core_v: array<${elem}>;
@group(0) @binding(3) var<storage, read> k: array<${elem}>;
@group(0) @binding(4) var<storage, read> v: array<${elem}>;
@group(0) @binding(5) var<storage, read_write> o: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;
${CCA_PARAMS_WGSL}

const D: u32 = ${headDim}u;
const BR: u32 = ${CCA_ROWS}u;
const BC: i32 = ${BC};
const NEG: f32 = -3.0e38;
${RAW_AT_WGSL}
${NON_FINITE_WGSL}
var<workgroup> ks: array<f32, ${BC * headDim}>;
var<workgroup> vs: array<f32, ${BC * headDim}>;

@compute @workgroup_size(${CCA_ROWS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let kvh = h / params.heads_per_kv;
  let i = wg.x * BR + lid;
  let row_ok = i < params.nq;
  let p = i32(params.query_start + min(i, params.nq - 1u));
  let c = cores_seen(p);
  // Uniform bounds of the workgroup: the last row sees the most cores, the first row's window starts first.
  let p_first = i32(params.query_start + wg.x * BR);
  let p_last = i32(params.query_start + min(params.nq - 1u, wg.x * BR + BR - 1u));
  let c_last = cores_seen(p_last);
  let raw_lo = cores_seen(p_first) * i32(params.gsize);
  let core_tiles = (c_last + BC - 1) / BC;
  let tiles = core_tiles + (p_last - raw_lo + BC) / BC;
  var qrow: array<f32, ${headDim}>;
  var acc: array<f32, ${headDim}>;
  var s: array<f32, ${BC}>;
  if (row_ok) {
    let qo = (h * params.nq + i) * D;
    for (var d = 0u; d < D; d++) { qrow[d] = f32(q[qo + d]) * params.scale; acc[d] = 0.0; }
  }
  var m = NEG;
  var l = 0.0;
  var bad = false; // a visible score that is NaN or infinite: the row is NaN
  let cbase = i32(kvh * params.core_cap);
  for (var t = 0; t < tiles; t++) {
    let is_core = t < core_tiles;
    // t0: a core index in the core tiles, a position in the raw tiles.
    let t0 = select(raw_lo + (t - core_tiles) * BC, t * BC, is_core);
    workgroupBarrier();
    for (var x = lid; x < u32(BC) * D; x += BR) {
      let j = t0 + i32(x / D);
      var kx = 0.0; var vx = 0.0;
      if (is_core && j < c_last) {
        let a = u32(cbase + j) * D + x % D;
        kx = f32(core_k[a]); vx = f32(core_v[a]);
      } else if (!is_core && j <= p_last) {
        kx = raw_k(kvh, j, x % D); vx = raw_v(kvh, j, x % D);
      }
      ks[x] = kx; vs[x] = vx;
    }
    workgroupBarrier();
    // This row's part of the tile: cores [0, c), raw positions [c*g, p].
    let lo = select(c * i32(params.gsize), 0, is_core);
    let hi = select(p + 1, c, is_core);
    let j0 = max(lo, t0) - t0;
    let j1 = min(hi, t0 + BC) - t0;
    if (row_ok && j1 > j0) {
      var tile_max = NEG;
      for (var j = j0; j < j1; j++) {
        var dot = 0.0;
        for (var d = 0u; d < D; d++) { dot += qrow[d] * ks[u32(j) * D + d]; }
        s[j] = dot;
        bad = bad || non_finite(dot);
        tile_max = max(tile_max, dot);
      }
      let m_new = max(m, tile_max);
      let alpha = exp(m - m_new);
      l *= alpha;
      for (var d = 0u; d < D; d++) { acc[d] *= alpha; }
      for (var j = j0; j < j1; j++) {
        let pr = exp(s[j] - m_new);
        l += pr;
        for (var d = 0u; d < D; d++) { acc[d] += pr * vs[u32(j) * D + d]; }
      }
      m = m_new;
    }
  }
  if (row_ok) {
    let r = h * params.nq + i;
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < D; d++) { o[r * D + d] = select(acc[d] * inv, nan_value(), bad); }
    lse[r] = select(select(bitcast<f32>(params.neg_inf_bits), m + log(l), l > 0.0), nan_value(), bad);
  }
}
`;
}
