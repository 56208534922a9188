// FlashAttention-2 forward on subgroup matrices (f16 in, f32 accumulate: NVIDIA tensor cores through Dawn's
// chromium_experimental_subgroup_matrix). Dao 2023, Alg. 1, with FlashAttention-4's lazy rescale: the
// running max used for P is raised only when a row's tile max exceeds it by more than 2^8, so the
// O accumulators stay in subgroup-matrix registers and are rescaled (through workgroup memory) rarely.
// Workgroup: SUBGROUPS subgroups of 32 lanes, 16 query rows each, sharing key/value tiles of 32 keys.
// Per tile and subgroup: S = Q K^T (K read column-major), scores to workgroup memory, the online
// softmax by 2 lanes per row, P to workgroup memory as f16, O += P V. Head dims 64 and 128.
// Workgroup memory: subgroup-matrix loads/stores need 16-byte-aligned pointers (Vulkan's rule for cooperative
// matrices; a tile 4 bytes into its array gives garbage on the H100, 16 bytes in is fine), and the driver,
// not the declaration order, decides where each workgroup variable goes (a lone u32 declared after the
// tiles scrambled S, declared before them it did not). So every workgroup variable's size is a multiple
// of 16 bytes, and the O round trips for rescaling and the final store reuse the subgroup's rows of st.
// With a block mask (FlexAttention's scheme, as in flash-wgsl.ts) the workgroup visits only its query tile's
// kept key tiles (query tiles of 16 * subgroups rows, key tiles of 32) and runs the predicate only on partial ones.
// The tile code (S, the softmax, P V, the O store) is sgmat-tiles-wgsl.ts's, shared with tc2 and CCA; a V tile
// holding a NaN or an infinity does its P V in scalar code that skips masked keys (flagged as it is staged).
// Checked against the same float64 reference as the portable kernel. NaN policy (docs/HARDENING.md): a row
// with a visible NaN or infinite score is NaN (a per-lane flag, joined by the row's two lanes).
import { blockMaskBindingsWgsl, keyTileLoopWgsl, type WgslMask } from './flash-wgsl.js';
import {
  accumulatorsWgsl,
  HALVES_NON_FINITE_WGSL,
  putHalvesWgsl,
  stagedScoresWgsl,
  finishRowWgsl,
  SUBGROUP_MATRIX_ENABLES,
  stagedSoftmaxPvWgsl,
} from './sgmat-tiles-wgsl.js';
import { NON_FINITE_WGSL } from './wgsl-common.js';

/** Subgroups per workgroup; each owns 16 query rows. Subgroup-matrix offsets must be uniform; the
 * per-subgroup offsets come from @builtin(subgroup_id), the only per-subgroup index Dawn accepts. */
const SUBGROUPS = 4;
export const SGMAT_ROWS = 16 * SUBGROUPS;
export const SGMAT_HEAD_DIMS = [64, 128];
const BC = 32;

export function flashSubgroupMatrixWgsl(headDim: number, mask?: WgslMask, subgroups: number = SUBGROUPS): string {
  const D = headDim;
  const rows = 16 * subgroups;
  const blocks = D / 16;
  const oInit = accumulatorsWgsl('o', blocks);
  const visible = mask ? 'j <= last && (full || allowed(qp, j))' : 'j <= last';
  const { softmax, pv } = stagedSoftmaxPvWgsl(visible, blocks, BC);
  const maskBindings = blockMaskBindingsWgsl(mask);
  const loopHead = keyTileLoopWgsl(mask);
  return /* wgsl */ `${SUBGROUP_MATRIX_ENABLES}
// Subgroup-matrix offsets must be uniform: only @builtin(subgroup_id) counts as such per subgroup
// (lid / 32 is refused, with or without diagnostic(off, subgroup_uniformity); probed on the H100).

struct Params {
  nq: u32, nk: u32, group: u32, causal: u32,
  scale: f32, neg_inf_bits: u32, head: u32, kv_stride: u32,
}
fn kv_rows() -> u32 { return select(params.kv_stride, params.nk, params.kv_stride == 0u); }
@group(0) @binding(0) var<storage, read> qg: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> kg: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> vg: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;
${maskBindings}

const D: u32 = ${D}u;
const BR: u32 = ${rows}u;
const BC: u32 = ${BC}u;
const THREADS: u32 = ${32 * subgroups}u;
const NEG: f32 = -3.0e38;
// Every workgroup variable is a multiple of 16 bytes, so that all start 16-byte aligned.
var<workgroup> st: array<f32, ${rows * BC}>;  // scores (16 rows per subgroup); O round trips reuse them
var<workgroup> qs: array<f16, ${rows * D}>;   // the Q tile, zero-padded
var<workgroup> kv: array<f16, ${2 * BC * D}>; // K tile then V tile
var<workgroup> pt: array<f16, ${rows * BC}>;  // probabilities, 16 rows per subgroup
var<workgroup> need: array<u32, 4>; // [0]: some row needs a rescale, [1]: the V tile is not finite; 16 bytes

fn key_limit(i: u32) -> i32 {
  let all = i32(params.nk) - 1;
  if (params.causal == 0u) { return all; }
  return min(all, i32(params.nk) - i32(params.nq) + i32(i));
}

${putHalvesWgsl('put4', 'kv', false)}

${putHalvesWgsl('putq', 'qs', false)}

${NON_FINITE_WGSL}
${HALVES_NON_FINITE_WGSL}
@compute @workgroup_size(${32 * subgroups})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let h = wg.y;
  let kvh = h / params.group;
  let sbase = sg * 16u * BC; // this subgroup's rows of st and pt
  let r = lane / 2u;      // the row of this subgroup's 16 that this lane serves
  let side = lane % 2u;   // which half of the row's columns
  let i = wg.x * BR + sg * 16u + r;
  let row_ok = i < params.nq;
  let qp = i32(params.nk) - i32(params.nq) + i32(i);
  let last = select(-1, ${mask ? 'i32(params.nk) - 1' : 'key_limit(i)'}, row_ok);
  let c2 = params.scale * 1.4426950408889634; // scores in the log2 domain

  // Stage the Q tile (zero-padded); the first loop barrier publishes it.
  let qbase = (h * params.nq + wg.x * BR) * (D / 4u);
  for (var e = lid; e < BR * D / 4u; e += THREADS) {
    let row = e / (D / 4u);
    var qx = vec4<f16>(0.0);
    if (wg.x * BR + row < params.nq) { qx = qg[qbase + e]; }
    putq(e * 4u, qx);
  }
${oInit}
  var m = NEG;
  var bad = 0u; // this lane saw a NaN or infinite visible score (docs/HARDENING.md's NaN policy)
  var l = 0.0;
  var x: array<f32, 16>;
  let kbase = kvh * kv_rows() * (D / 4u);
  if (lid == 0u) { need[1] = 0u; }
  ${loopHead}
    workgroupBarrier();
    if (lid == 0u) { need[0] = 0u; }
    for (var e = lid; e < BC * D / 4u; e += THREADS) {
      let j = u32(t0) + e / (D / 4u);
      var kx = vec4<f16>(0.0);
      var vx = vec4<f16>(0.0);
      if (j < params.nk) { kx = kg[kbase + u32(t0) * (D / 4u) + e]; vx = vg[kbase + u32(t0) * (D / 4u) + e]; }
      put4(e * 4u, kx);
      put4(BC * D + e * 4u, vx);
      if (half4_non_finite(vx)) { need[1] = 1u; }
    }
    workgroupBarrier();
    var s0 = subgroup_matrix_result<f32, 16, 16>();
    var s1 = subgroup_matrix_result<f32, 16, 16>();
${stagedScoresWgsl(blocks, BC / 16)}
    subgroupMatrixStore(&st, sbase, s0, false, BC);
    subgroupMatrixStore(&st, sbase + 16u, s1, false, BC);
    workgroupBarrier();
${softmax}
    workgroupBarrier();
${pv}
  }
${finishRowWgsl(blocks)}
}
`;
}
