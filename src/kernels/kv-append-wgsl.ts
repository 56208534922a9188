// Appends a chunk's keys and values [Hkv, T, D] to a KV cache laid out [Hkv, slots, D], in place: the token at
// position p goes to row slot(p) of its head, where slot(p) = p for the first `sinks` positions and
// row0 + (p - sinks) mod ring after them. One kernel for every cache that keeps keys in rows:
// - linear (dense, DSA): ring = slots, row0 = sinks = 0, so slot(p) = p and the ring never wraps;
// - StreamingLLM's ring (window, sinks; attention/layers/ring-layout.ts): row0 = sinks;
// - a ring after other rows (CCA's raw tokens after its pooled cores): sinks = 0, row0 = the core rows.
// A dispatch writes chunk tokens [first, first + count): by default the span from the first token that
// survives the chunk to its end, so a chunk longer than the ring costs threads for ring rows only. Within
// the span a position that a later one of it overwrites is skipped, so no two threads write one row.
// One thread per value; plain copy, no paper to follow. CPU twin: RingLayout.survivors + slot
// (attention/layers/ring-layout.ts).
import { ShapeError } from '../errors.js';
import type { DType } from '../tensor.js';
import { grid } from './elementwise-wgsl.js';
import { inputType } from './wgsl-common.js';

export const KV_APPEND_THREADS = 256;
/** Bytes of the uniform block (12 words, a multiple of 16). */
export const KV_APPEND_PARAMS_BYTES = 48;

/** Where a cache keeps its rows. */
export interface KvAppendLayout {
  kvHeads: number;
  headDim: number;
  /** Rows per head in the cache. */
  slots: number;
  /** Positions kept in their own rows 0..sinks-1. */
  sinks: number;
  /** Rows of the ring that holds the positions after the sinks. */
  ring: number;
  /** The ring's first row (default: right after the sinks). */
  row0?: number;
}

/** The chunk appended: `tokens` rows per head of the source, token 0 at position `start`. */
export interface KvAppendChunk {
  start: number;
  tokens: number;
  /** First chunk token written (default: the first that survives the chunk). */
  first?: number;
  /** Tokens written from `first` (default: to the chunk's end). */
  count?: number;
}

/** The pipeline cache's key and the source it names: every caller compiles the kernel through this, so the
 * key cannot name another generator's kernel (two once shared `kv-append-<dtype>`). */
export function kvAppendKernel(dtype: DType): { key: string; code: () => string } {
  return { key: `kv-append-${dtype}-${KV_APPEND_THREADS}`, code: () => kvAppendWgsl(dtype) };
}

/** The first chunk token that outlives the chunk: all of it when it starts in the sinks or fits the ring. */
export function firstSurvivor(layout: KvAppendLayout, start: number, tokens: number): number {
  return start < layout.sinks ? 0 : Math.max(0, tokens - layout.ring);
}

/** The uniform block and the workgroups (x, y) of one append. */
export function kvAppendCall(
  layout: KvAppendLayout,
  chunk: KvAppendChunk,
): { params: ArrayBuffer; groups: [number, number] } {
  const first = chunk.first ?? firstSurvivor(layout, chunk.start, chunk.tokens);
  const count = chunk.count ?? chunk.tokens - first;
  if (!(first >= 0 && count >= 0 && first + count <= chunk.tokens))
    throw new ShapeError(`kv append: tokens [${first}, ${first + count}) are not in a chunk of ${chunk.tokens}`);
  const n = layout.kvHeads * count * layout.headDim;
  const params = new Uint32Array(KV_APPEND_PARAMS_BYTES / 4);
  params.set([
    n,
    chunk.tokens,
    first,
    count,
    layout.headDim,
    layout.slots,
    chunk.start,
    layout.sinks,
    layout.ring,
    layout.row0 ?? layout.sinks,
  ]);
  return { params: params.buffer, groups: grid(n, KV_APPEND_THREADS) };
}

/** Dispatch kvAppendCall's groups; compile through kvAppendKernel. */
export function kvAppendWgsl(dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  return /* wgsl */ `${enable}
struct Params {
  n: u32, tokens: u32, first: u32, count: u32, d: u32, slots: u32, start: u32, sinks: u32,
  ring: u32, row0: u32, pad0: u32, pad1: u32,
}
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
  let j = i / params.d;
  let t = params.first + j % params.count;
  let h = j / params.count;
  let p = params.start + t;
  let end = params.start + params.first + params.count;
  if (p >= params.sinks && p + params.ring < end) { return; } // overwritten later in this dispatch
  var slot = p;
  if (p >= params.sinks) { slot = params.row0 + (p - params.sinks) % params.ring; }
  let row = (h * params.slots + slot) * params.d + d;
  let at = (h * params.tokens + t) * params.d + d;
  cache_k[row] = k[at];
  cache_v[row] = v[at];
}
`;
}
