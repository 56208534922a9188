// The WebGPU decoder's per-layer non-finite flag (docs/HARDENING.md's NaN policy): threads test the bits of a
// grid-strided share of the residual stream x, and one that finds a NaN or an infinity raises the layer's
// flag word with atomicMax of a mark that is larger for earlier positions (so the first chunk to go bad is
// kept). The flag words sit after the logits, so the one host read per token brings them back. Plain
// bookkeeping, no paper to follow; the CPU decoder's twin is checkFiniteActivations (model/load/finite.ts).
import { FINITE_TESTS_WGSL } from './wgsl-common.js';

export const FINITE_FLAG_THREADS = 256;
/** Workgroups at most: enough threads for a prefill chunk, one pass of loads each for decoding. */
const FINITE_FLAG_MAX_GROUPS = 256;

/** The mark of a chunk starting at `position`: 0 means finite, larger means earlier. */
export function finiteFlagMark(position: number): number {
  return 0xffffffff - position;
}

/** Uniform { n, flag word, mark, pad }: x [n] is checked into flags[word]. */
export function finiteFlagParams(values: number, word: number, position: number): ArrayBuffer {
  return new Uint32Array([values, word, finiteFlagMark(position), 0]).buffer;
}

export function finiteFlagGroups(values: number): [number] {
  return [Math.max(1, Math.min(FINITE_FLAG_MAX_GROUPS, Math.ceil(values / FINITE_FLAG_THREADS)))];
}

export function finiteFlagWgsl(): string {
  return /* wgsl */ `
struct Params { n: u32, word: u32, mark: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> flags: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> params: Params;
${FINITE_TESTS_WGSL}

@compute @workgroup_size(${FINITE_FLAG_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  var bad = false;
  for (var i = gid.x; i < params.n; i += nwg.x * ${FINITE_FLAG_THREADS}u) { bad = bad || non_finite(x[i]); }
  if (bad) { atomicMax(&flags[params.word], params.mark); }
}
`;
}
