// Appends a chunk's keys and values [Hkv, T, D] to a KV cache laid out [Hkv, slots, D], in place: the token at
// position p goes to row slot(p) of its head, where slot(p) = p for the first `sinks` positions and
// row0 + (p - sinks) mod ring after them. One kernel for every cache that keeps keys in rows:
// - linear (dense, DSA): ring = slots, row0 = sinks = 0, so slot(p) = p and the ring never wraps;
// - StreamingLLM's ring (window, sinks; attention/layers/ring-layout.ts): row0 = sinks;
// - a ring after other rows (CCA's raw tokens after its pooled cores): sinks = 0, row0 = the core rows.
// Of a chunk longer than the ring only the positions that survive it are written (the sinks and the last
// `ring`), so no two threads write one row. One thread per value; plain copy, no paper to follow.
// CPU twin: RingLayout.survivors + slot (attention/layers/ring-layout.ts).
import type { DType } from '../tensor.js';
import { inputType } from './wgsl-common.js';

export const KV_APPEND_THREADS = 256;

export interface KvAppendParams {
  tokens: number;
  kvHeads: number;
  headDim: number;
  /** Rows per head in the cache. */
  slots: number;
  /** Position of the chunk's first token. */
  start: number;
  /** Positions kept in their own rows 0..sinks-1. */
  sinks: number;
  /** Rows of the ring that holds the positions after the sinks. */
  ring: number;
  /** The ring's first row (default: right after the sinks). */
  row0?: number;
}

export function kvAppendParams(p: KvAppendParams): ArrayBuffer {
  const row0 = p.row0 ?? p.sinks;
  return new Uint32Array([
    p.tokens * p.kvHeads * p.headDim,
    p.tokens,
    p.headDim,
    p.slots,
    p.start,
    p.sinks,
    p.ring,
    row0,
  ]).buffer;
}

/** Dispatch grid(kvHeads * tokens * headDim, KV_APPEND_THREADS) workgroups (elementwise-wgsl.ts). */
export function kvAppendWgsl(dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  return /* wgsl */ `${enable}
struct Params { n: u32, t: u32, d: u32, slots: u32, start: u32, sinks: u32, ring: u32, row0: u32 }
@group(0) @binding(0) var<storage, read> k: array<${elem}>;
@group(0) @binding(1) var<storage, read> v: array<${elem}>;
@group(0) @binding(2) var<storage, read_write> cache_k: array<${elem}>;
@group(0) @binding(3) var<storage, read_write> cache_v: array<${elem}>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(${KV_APPEND_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${KV_APPEND_THREADS}u;
  if (i >= params.n) { return; }
  let d = i % params.d;
  let t = (i / params.d) % params.t;
  let h = i / (params.d * params.t);
  let p = params.start + t;
  let end = params.start + params.t;
  if (p >= params.sinks && p + params.ring < end) { return; } // overwritten later in this chunk
  var slot = p;
  if (p >= params.sinks) { slot = params.row0 + (p - params.sinks) % params.ring; }
  let row = (h * params.slots + slot) * params.d + d;
  cache_k[row] = k[i];
  cache_v[row] = v[i];
}
`;
}
