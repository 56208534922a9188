// Merges two attention states over disjoint key sets, in place into the first (Milakov & Gimelshein 2018,
// "Online normalizer calculation for softmax"; the split-KV combine of FlashDecoding):
// L = logaddexp(L1, L2), O = e^(L1 - L) O1 + e^(L2 - L) O2. One thread per (row, 4 columns).
// CPU twin: mergeStates in attention/state.ts.

export const MERGE_THREADS = 256;

export function mergeStatesWgsl(): string {
  return /* wgsl */ `
struct MergeParams { rows: u32, dim: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read_write> o1: array<f32>;
@group(0) @binding(1) var<storage, read_write> lse1: array<f32>;
@group(0) @binding(2) var<storage, read> o2: array<f32>;
@group(0) @binding(3) var<storage, read> lse2: array<f32>;
@group(0) @binding(4) var<uniform> params: MergeParams;

@compute @workgroup_size(${MERGE_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * ${MERGE_THREADS}u;
  if (row >= params.rows) { return; }
  let a = lse1[row];
  let b = lse2[row];
  let m = max(a, b);
  // Both empty (-inf): keep the first state as it is (O = 0, L = -inf).
  if (m < -3.0e38) { return; }
  let l = m + log(exp(a - m) + exp(b - m));
  let wa = exp(a - l);
  let wb = exp(b - l);
  let base = row * params.dim;
  for (var d = 0u; d < params.dim; d++) { o1[base + d] = wa * o1[base + d] + wb * o2[base + d]; }
  // Write L only after every reader of this row is done: this thread is its only reader.
  lse1[row] = l;
}
`;
}
