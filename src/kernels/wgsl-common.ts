// Pieces shared by the attention WGSL generators: the params block and the input element type.
import type { DType } from '../tensor.js';

/** Uniform block of every attention kernel; keep in sync with attentionParams(). */
export const ATTENTION_PARAMS_WGSL = /* wgsl */ `
struct Params {
  nq: u32, nk: u32, group: u32, causal: u32,
  scale: f32, neg_inf_bits: u32, head: u32, kv_stride: u32,
}
/** Rows per key/value head in k and v: kv_stride when set (a cache larger than the visible keys), else nk.
 * Keys of KV head h, row j, sit at row h * kv_rows() + j. */
fn kv_rows() -> u32 { return select(params.kv_stride, params.nk, params.kv_stride == 0u); }`;

export interface AttentionParams {
  queries: number;
  keys: number;
  group: number;
  causal: boolean;
  scale: number;
  /** Query head (within the bound chunk) for kernels dispatched once per head. */
  head?: number;
  /** Rows per key/value head in k and v when they hold more rows than `keys` (a decode cache read in
   * place); default `keys` (packed). */
  kvStride?: number;
}

export function attentionParams(p: AttentionParams): ArrayBuffer {
  const buf = new ArrayBuffer(32);
  const u = new Uint32Array(buf);
  const f = new Float32Array(buf);
  u[0] = p.queries;
  u[1] = p.keys;
  u[2] = p.group;
  u[3] = p.causal ? 1 : 0;
  f[4] = p.scale;
  u[5] = 0xff800000; // -Infinity: WGSL has no infinity literal
  u[6] = p.head ?? 0;
  u[7] = p.kvStride ?? 0;
  return buf;
}

/** WGSL storage element type for an input dtype; f16 needs `enable f16;`. */
export function inputType(dtype: DType): { enable: string; elem: string } {
  return dtype === 'f16' ? { enable: 'enable f16;', elem: 'f16' } : { enable: '', elem: 'f32' };
}

/** Last key (inclusive, as i32) that query row i may see, bottom-right aligned. */
export const CAUSAL_LIMIT_WGSL = /* wgsl */ `
fn key_limit(i: u32) -> i32 {
  let all = i32(params.nk) - 1;
  if (params.causal == 0u) { return all; }
  return min(all, i32(params.nk) - i32(params.nq) + i32(i));
}`;

/**
 * The NaN policy's helpers (docs/HARDENING.md: a row that reads a NaN or infinite score is NaN, never "no
 * key"). Tested on the bits, since WGSL lets a compiler assume floats are finite; NaN made at run time from
 * the -Infinity uniform, since a NaN constant does not compile.
 */
export const FINITE_TESTS_WGSL = /* wgsl */ `
fn non_finite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }
fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }`;

/** The tests and nan_value(); needs a `params` uniform with `neg_inf_bits` (0xff800000). */
export const NON_FINITE_WGSL = /* wgsl */ `${FINITE_TESTS_WGSL}
fn nan_value() -> f32 { return bitcast<f32>(params.neg_inf_bits | 0x00400000u); }`;

/** ReLU that keeps NaN (WGSL's max(NaN, 0) may be 0): the DSA indexer's scores, so a NaN reaches the top-k. */
export const RELU_KEEP_NAN_WGSL = /* wgsl */ `
fn relu_keep_nan(a: f32) -> f32 { return select(max(a, 0.0), a, (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u); }`;

/** nan_value() for f16 storage (`nan_elem()`): converting an f32 NaN to f16 is not defined to give NaN in WGSL. */
export function nanElemWgsl(elem: string): string {
  return elem === 'f16'
    ? 'fn nan_elem() -> f16 { return bitcast<vec2<f16>>(params.neg_inf_bits | 0x7e007e00u).x; }'
    : 'fn nan_elem() -> f32 { return nan_value(); }';
}
