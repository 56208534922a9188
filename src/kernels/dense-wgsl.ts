// Dense attention in WGSL, the quadratic baseline: S = scale * Q K^T written to memory (16x16 tiled matrix
// product through workgroup memory), a row softmax in place with its LSE, then O = P V (tiled again).
// Dispatched once per query head; the scores buffer of that head is [Nq, Nk] f32. CPU twin: dense-cpu.ts.
import type { DType } from '../tensor.js';
import { ATTENTION_PARAMS_WGSL, CAUSAL_LIMIT_WGSL, NON_FINITE_WGSL, inputType } from './wgsl-common.js';

export const DENSE_TILE = 16;
export const SOFTMAX_THREADS = 256;

export function denseScoresWgsl(headDim: number, dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  return /* wgsl */ `${enable}
${ATTENTION_PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> q: array<${elem}>;
@group(0) @binding(1) var<storage, read> k: array<${elem}>;
@group(0) @binding(2) var<storage, read_write> scores: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
const D: u32 = ${headDim}u;
const T: u32 = 16u;
var<workgroup> qt: array<f32, 256>;
var<workgroup> kt: array<f32, 256>;
${CAUSAL_LIMIT_WGSL}
${NON_FINITE_WGSL}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = wg.y * T + lid.y; // query row
  let j = wg.x * T + lid.x; // key column
  let qbase = params.head * params.nq * D;
  let kbase = (params.head / params.group) * kv_rows() * D;
  var dot = 0.0;
  for (var d0 = 0u; d0 < D; d0 += T) {
    let qi = wg.y * T + lid.y; let qd = d0 + lid.x;
    qt[lid.y * T + lid.x] = select(0.0, f32(q[qbase + qi * D + qd]), qi < params.nq && qd < D);
    let kj = wg.x * T + lid.y; let kd = d0 + lid.x;
    kt[lid.y * T + lid.x] = select(0.0, f32(k[kbase + kj * D + kd]), kj < params.nk && kd < D);
    workgroupBarrier();
    for (var t = 0u; t < T; t++) { dot += qt[lid.y * T + t] * kt[lid.x * T + t]; }
    workgroupBarrier();
  }
  if (i < params.nq && j < params.nk) {
    let visible = i32(j) <= key_limit(i);
    // A visible non-finite score is stored as NaN, so the softmax tells it from a masked one (-inf).
    let score = select(dot * params.scale, nan_value(), non_finite(dot * params.scale));
    scores[i * params.nk + j] = select(bitcast<f32>(params.neg_inf_bits), score, visible);
  }
}
`;
}

export function denseSoftmaxWgsl(): string {
  return /* wgsl */ `
${ATTENTION_PARAMS_WGSL}
@group(0) @binding(0) var<storage, read_write> scores: array<f32>;
@group(0) @binding(1) var<storage, read_write> lse: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
const N: u32 = ${SOFTMAX_THREADS}u;
var<workgroup> red: array<f32, ${SOFTMAX_THREADS}>;
var<workgroup> bad_row: atomic<u32>; // zero at the start of each workgroup (one row)
${NON_FINITE_WGSL}

@compute @workgroup_size(${SOFTMAX_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = wg.x + wg.y * 65535u;
  if (i >= params.nq) { return; } // uniform per workgroup
  let row = i * params.nk;
  var m = -3.0e38;
  for (var j = lid; j < params.nk; j += N) {
    m = max(m, scores[row + j]);
    if (is_nan(scores[row + j])) { atomicOr(&bad_row, 1u); }
  }
  red[lid] = m;
  workgroupBarrier();
  for (var w = N / 2u; w > 0u; w /= 2u) {
    if (lid < w) { red[lid] = max(red[lid], red[lid + w]); }
    workgroupBarrier();
  }
  m = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var j = lid; j < params.nk; j += N) { sum += exp(scores[row + j] - m); }
  red[lid] = sum;
  workgroupBarrier();
  for (var w = N / 2u; w > 0u; w /= 2u) {
    if (lid < w) { red[lid] += red[lid + w]; }
    workgroupBarrier();
  }
  sum = red[0];
  let seen = sum > 0.0 && m > -3.0e38;
  let inv = select(0.0, 1.0 / sum, seen);
  let bad = atomicLoad(&bad_row) != 0u; // NaN in, NaN out (HARDENING.md)
  for (var j = lid; j < params.nk; j += N) {
    scores[row + j] = select(select(0.0, exp(scores[row + j] - m) * inv, seen), nan_value(), bad);
  }
  if (lid == 0u) {
    lse[params.head * params.nq + i] = select(select(bitcast<f32>(params.neg_inf_bits), m + log(sum), seen), nan_value(), bad);
  }
}
`;
}

export function densePvWgsl(headDim: number, dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  return /* wgsl */ `${enable}
${ATTENTION_PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<${elem}>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
const D: u32 = ${headDim}u;
const T: u32 = 16u;
var<workgroup> pt: array<f32, 256>;
var<workgroup> vt: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = wg.y * T + lid.y; // query row
  let d = wg.x * T + lid.x; // output column
  let vbase = (params.head / params.group) * kv_rows() * D;
  var acc = 0.0;
  for (var j0 = 0u; j0 < params.nk; j0 += T) {
    let pj = j0 + lid.x;
    pt[lid.y * T + lid.x] = select(0.0, scores[i * params.nk + pj], i < params.nq && pj < params.nk);
    let vj = j0 + lid.y;
    vt[lid.y * T + lid.x] = select(0.0, f32(v[vbase + vj * D + d]), vj < params.nk && d < D);
    workgroupBarrier();
    // A zero probability (a masked key) adds nothing, also where its v is NaN (0 * NaN is NaN): HARDENING.md.
    for (var t = 0u; t < T; t++) { acc += select(pt[lid.y * T + t] * vt[t * T + lid.x], 0.0, pt[lid.y * T + t] == 0.0); }
    workgroupBarrier();
  }
  if (i < params.nq && d < D) { o[(params.head * params.nq + i) * D + d] = acc; }
}
`;
}
