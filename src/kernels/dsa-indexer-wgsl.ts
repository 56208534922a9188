// The lightning indexer of DeepSeek Sparse Attention in WGSL (DeepSeek-V3.2 tech report, sec. 2.1), as a
// piece of a larger kernel: a workgroup stages the index queries of BQ consecutive tokens in workgroup memory
// and `index_scores(s)` returns I[t,s] = sum_j w[t,j] ReLU(q_I[j,t] . k_I[s]) for all BQ of them, loading
// key s once. Float path: f32 or f16 storage, f32 sums. Int8 path: vectors quantised per vector on the host
// (kernels/dsa-indexer-cpu.ts), four int8 per u32, exact i32 dots with dot4I8Packed (WGSL's
// packed_4x8_integer_dot_product), I = k_scale[s] * sum_j (w q_scale)[t,j] ReLU(dot).
import { UnsupportedError } from '../errors.js';
import type { DType } from '../tensor.js';
import type { IndexerPrecision } from './dsa-indexer-cpu.js';
import { RELU_KEEP_NAN_WGSL } from './wgsl-common.js';

export interface IndexerKernelShape {
  precision: IndexerPrecision;
  /** Storage type of the float path's q and k. */
  dtype: DType;
  heads: number; // H_I
  dim: number; // D_I
}

/** Tokens per workgroup share each key load. More cut L2 traffic, but lavapipe's compile time grows
 * steeply with the unrolled block (measured: 1 -> 0.6 s, 4 -> 2.5 s, 8 -> 18 s per kernel). */
export const INDEXER_MAX_BLOCK_QUERIES = 4;

/** Tokens per workgroup: as many as fit 8 KiB of staged index queries, at most INDEXER_MAX_BLOCK_QUERIES. */
export function indexerBlockQueries(s: IndexerKernelShape): number {
  const bytesPerQuery = s.precision === 'int8' ? s.heads * Math.ceil(s.dim / 4) * 4 : s.heads * s.dim * 4;
  const bq = Math.min(INDEXER_MAX_BLOCK_QUERIES, Math.floor(8192 / bytesPerQuery));
  if (bq < 1) {
    throw new UnsupportedError(
      `an indexer of ${s.heads} heads x ${s.dim} dims needs ${bytesPerQuery} bytes per token of workgroup memory ` +
        `(at most 8192${s.precision === 'float' ? '; use indexer=int8' : ''})`,
    );
  }
  return bq;
}

/** WGSL bindings starting at `first` (q, k, w[, k scales]) and the staged-query helpers; names used: params.nq. */
export function indexerWgsl(s: IndexerKernelShape, first: number): { enable: string; bindings: number; code: string } {
  const BQ = indexerBlockQueries(s);
  const H = s.heads;
  const pad4 = (n: number) => Math.ceil(n / 4) * 4; // workgroup arrays in multiples of 16 bytes (docs/WEBGPU.md)
  if (s.precision === 'int8') {
    const W = Math.ceil(s.dim / 4);
    return {
      enable: '',
      bindings: 4,
      code: /* wgsl */ `
@group(0) @binding(${first}) var<storage, read> iq: array<u32>;
@group(0) @binding(${first + 1}) var<storage, read> ik: array<u32>;
@group(0) @binding(${first + 2}) var<storage, read> iw: array<f32>;
@group(0) @binding(${first + 3}) var<storage, read> kscale: array<f32>;
const BQ: u32 = ${BQ}u;
const IH: u32 = ${H}u;
const IW: u32 = ${W}u;
var<workgroup> qs: array<u32, ${pad4(BQ * H * W)}>;
var<workgroup> ws: array<f32, ${pad4(BQ * H)}>;
fn stage_queries(q0: u32, lid: u32, threads: u32) {
  for (var x = lid; x < BQ * IH * IW; x += threads) {
    let b = x / (IH * IW); let j = (x / IW) % IH; let w = x % IW;
    let t = q0 + b;
    qs[x] = select(0u, iq[(j * params.nq + t) * IW + w], t < params.nq);
  }
  for (var x = lid; x < BQ * IH; x += threads) {
    let t = q0 + x / IH;
    ws[x] = select(0.0, iw[t * IH + x % IH], t < params.nq);
  }
}
fn index_scores(s: u32) -> array<f32, BQ> {
  var acc: array<i32, ${BQ * H}>;
  for (var w = 0u; w < IW; w++) {
    let kw = ik[s * IW + w];
    for (var x = 0u; x < BQ * IH; x++) { acc[x] += dot4I8Packed(qs[x * IW + w], kw); }
  }
  var out: array<f32, BQ>;
  let ks = kscale[s];
  for (var b = 0u; b < BQ; b++) {
    var sc = 0.0;
    for (var j = 0u; j < IH; j++) { sc += ws[b * IH + j] * f32(max(acc[b * IH + j], 0)); }
    out[b] = sc * ks;
  }
  return out;
}`,
    };
  }
  const elem = s.dtype === 'f16' ? 'f16' : 'f32';
  const D = s.dim;
  return {
    enable: s.dtype === 'f16' ? 'enable f16;' : '',
    bindings: 3,
    code: /* wgsl */ `
@group(0) @binding(${first}) var<storage, read> iq: array<${elem}>;
@group(0) @binding(${first + 1}) var<storage, read> ik: array<${elem}>;
@group(0) @binding(${first + 2}) var<storage, read> iw: array<f32>;
const BQ: u32 = ${BQ}u;
const IH: u32 = ${H}u;
const ID: u32 = ${D}u;
var<workgroup> qs: array<f32, ${pad4(BQ * H * D)}>;
${RELU_KEEP_NAN_WGSL}
var<workgroup> ws: array<f32, ${pad4(BQ * H)}>;
fn stage_queries(q0: u32, lid: u32, threads: u32) {
  for (var x = lid; x < BQ * IH * ID; x += threads) {
    let b = x / (IH * ID); let j = (x / ID) % IH; let d = x % ID;
    let t = q0 + b;
    qs[x] = select(0.0, f32(iq[(j * params.nq + t) * ID + d]), t < params.nq);
  }
  for (var x = lid; x < BQ * IH; x += threads) {
    let t = q0 + x / IH;
    ws[x] = select(0.0, iw[t * IH + x % IH], t < params.nq);
  }
}
fn index_scores(s: u32) -> array<f32, BQ> {
  var acc: array<f32, ${BQ * H}>;
  for (var d = 0u; d < ID; d++) {
    let kv = f32(ik[s * ID + d]);
    for (var x = 0u; x < BQ * IH; x++) { acc[x] += qs[x * ID + d] * kv; }
  }
  var out: array<f32, BQ>;
  for (var b = 0u; b < BQ; b++) {
    var sc = 0.0;
    for (var j = 0u; j < IH; j++) { sc += ws[b * IH + j] * relu_keep_nan(acc[b * IH + j]); }
    out[b] = sc;
  }
  return out;
}`,
  };
}
