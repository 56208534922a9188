// Appends a chunk's keys and values [Hkv, T, D] to a KV cache in place: the token at position p goes to
// row h * slots + slot(p) of its head, where slot(p) = p for the first `sinks` positions and
// sinks + (p - sinks) mod ring after them (a dense cache is a ring that never wraps). Of a chunk longer
// than the ring only the positions that survive it are written (the sinks and the last `ring`), so no two
// threads write one row. One thread per value; CPU twin: attention/layers/ring-layout.ts (RingLayout.append).
import type { DType } from '../tensor.js';
import { inputType } from './wgsl-common.js';

export const KV_APPEND_THREADS = 256;

export interface KvAppendParams {
  tokens: number;
  kvHeads: number;
  headDim: number;
  /** Rows per head in the cache. */
  slots: number;
  start: number;
  sinks: number;
  ring: number;
}

export function kvAppendParams(p: KvAppendParams): ArrayBuffer {
  return new Uint32Array([p.tokens * p.kvHeads * p.headDim, p.tokens, p.headDim, p.slots, p.start, p.sinks, p.ring, 0])
    .buffer;
}

export function kvAppendWgsl(dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  return /* wgsl */ `${enable}
struct Params { n: u32, t: u32, d: u32, slots: u32, start: u32, sinks: u32, ring: u32, pad: u32 }
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
  if (p >= params.sinks) { slot = params.sinks + (p - params.sinks) % params.ring; }
  let row = (h * params.slots + slot) * params.d + d;
  cache_k[row] = k[i];
  cache_v[row] = v[i];
}
`;
}
