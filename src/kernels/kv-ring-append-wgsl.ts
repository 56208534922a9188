// (A second append beside kv-append-wgsl.ts, for the resident CCA ring and DSA cache: row0 + position mod modulus.)
// Appends a chunk's keys and values [H, T, D] to a resident cache laid out [H, rows, D], on the GPU: token t
// (position start + t) goes to row row0 + (start + t) % modulus of its head. With modulus >= the cache's
// tokens that is a dense cache written in place (DSA); with a smaller modulus a ring (CCA's last w + g - 1
// raw tokens), of which a chunk writes only its last `modulus` tokens (earlier ones would be overwritten by
// the same dispatch). One thread per element; no host copy. Plain copy, no paper to follow.
import type { DType } from '../tensor.js';
import { inputType } from './wgsl-common.js';

export const KV_APPEND_THREADS = 64;

export interface KvAppendParams {
  /** Tokens in the chunk (rows per head of the source). */
  tokens: number;
  /** First chunk token written (max(0, tokens - modulus) for a ring). */
  first: number;
  /** Position of chunk token 0. */
  start: number;
  row0: number;
  modulus: number;
  /** Rows per head of the cache. */
  rows: number;
  headDim: number;
  /** Workgroups along x (the grid wraps onto y beyond the device's limit). */
  columns: number;
}

export function kvAppendParams(p: KvAppendParams): ArrayBuffer {
  return new Uint32Array([p.tokens, p.first, p.start, p.row0, p.modulus, p.rows, p.headDim, p.columns]).buffer;
}

/** Dispatch (columns, ceil(groups / columns), heads) with groups = ceil((tokens - first) * D / 64). */
export function kvAppendWgsl(dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  return /* wgsl */ `${enable}
struct Params { tokens: u32, first: u32, start: u32, row0: u32, modulus: u32, rows: u32, dim: u32, columns: u32 }
@group(0) @binding(0) var<storage, read> src_k: array<${elem}>;
@group(0) @binding(1) var<storage, read> src_v: array<${elem}>;
@group(0) @binding(2) var<storage, read_write> dst_k: array<${elem}>;
@group(0) @binding(3) var<storage, read_write> dst_v: array<${elem}>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${KV_APPEND_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = (wg.x + wg.y * params.columns) * ${KV_APPEND_THREADS}u + lid;
  let D = params.dim;
  let t = params.first + e / D;
  if (t >= params.tokens) { return; }
  let h = wg.z;
  let d = e % D;
  let at_src = (h * params.tokens + t) * D + d;
  let row = params.row0 + (params.start + t) % params.modulus;
  let at_dst = (h * params.rows + row) * D + d;
  dst_k[at_dst] = src_k[at_src];
  dst_v[at_dst] = src_v[at_src];
}
`;
}
