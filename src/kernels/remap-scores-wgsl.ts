// The position-agnostic scores that remapped top-k attention ranks far keys by (ReAttention, Liu et al. 2024;
// InfLLM, Xiao et al. 2024): s = q . k over the unrotated query of each (token, query head) and the unrotated
// keys of its KV head, for a block of query tokens against the keys beyond their local window. Written once
// into a [rows, keys] f32 scratch, rows token-major (row = t * Hq + h), so that the radix select of
// kernels/topk-wgsl.ts (stored-score pass, `rowsPerToken` = Hq) ranks them without recomputing a score.
// A workgroup stages the queries of TB tokens x the G heads of one KV head in workgroup memory and scores
// 128 keys against all of them, one key per thread (each key loaded once for G x TB rows); only keys a
// row may see (key <= its token's far limit, bottom-right aligned) are written. Dispatch
// (ceil(keys / 128), ceil(tokens / TB) x Hkv). CPU twin: model/positions/positioned-attention-cpu.ts selectFar.
import type { DType } from '../tensor.js';

export const REMAP_SCORE_THREADS = 128;

/** Query tokens per workgroup: rows G x TB stay at most 16 (one accumulator each per thread). */
export function remapScoreTokens(group: number): number {
  return Math.max(1, Math.floor(16 / group));
}

/** Keep in sync with the Params struct below. */
export function remapScoreParams(p: {
  /** Query tokens of the block, and the first one's index in the chunk. */
  tokens: number;
  firstToken: number;
  /** Far keys visible to the block's last token: the scores' row stride. */
  keys: number;
  /** Tokens of the chunk (the query rows per head of q). */
  chunkTokens: number;
  kvHeads: number;
  /** Rows per KV head of the key cache. */
  stride: number;
}): ArrayBuffer {
  return new Uint32Array([p.tokens, p.keys, p.firstToken, p.chunkTokens, p.kvHeads, p.stride, 0, 0]).buffer;
}

/** Bindings: params, q [Hq, chunk, D], key cache [Hkv, stride, D] (storage dtype, unrotated), scores. */
export function remapScoresWgsl(dtype: DType, headDim: number, group: number): string {
  const TB = remapScoreTokens(group);
  const R = TB * group;
  return /* wgsl */ `${dtype === 'f16' ? 'enable f16;' : ''}
struct Params { nq: u32, nk: u32, t0: u32, tchunk: u32, hkv: u32, stride: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<${dtype}>;
@group(0) @binding(2) var<storage, read> k: array<${dtype}>;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;
const D: u32 = ${headDim}u;
const G: u32 = ${group}u;
const TB: u32 = ${TB}u;
const R: u32 = ${R}u;
const WG: u32 = ${REMAP_SCORE_THREADS}u;
var<workgroup> qs: array<f32, ${R * headDim}>;

@compute @workgroup_size(${REMAP_SCORE_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let kvh = wg.y % params.hkv;
  let first = (wg.y / params.hkv) * TB;
  let heads = params.hkv * G;
  for (var x = lid; x < R * D; x += WG) {
    let r = x / D;
    let t = first + r / G;
    let h = kvh * G + r % G;
    var val = 0.0;
    if (t < params.nq) { val = f32(q[(h * params.tchunk + params.t0 + t) * D + x % D]); }
    qs[x] = val;
  }
  workgroupBarrier();
  let s = wg.x * WG + lid;
  if (s >= params.nk) { return; }
  var acc: array<f32, R>;
  let base = (kvh * params.stride + s) * D;
  for (var d = 0u; d < D; d++) {
    let kd = f32(k[base + d]);
    for (var r = 0u; r < R; r++) { acc[r] += qs[r * D + d] * kd; }
  }
  for (var r = 0u; r < R; r++) {
    let t = first + r / G;
    // Token t sees far keys s <= nk - nq + t (its position - W).
    if (t >= params.nq || i32(s) > i32(params.nk) - i32(params.nq) + i32(t)) { continue; }
    let row = t * heads + kvh * G + r % G;
    scores[row * params.nk + s] = acc[r];
  }
}
`;
}
