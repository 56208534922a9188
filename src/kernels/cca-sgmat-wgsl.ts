// CCA-Attention pass 2 on subgroup matrices (Chen et al., ICML 2025; tensor cores through Dawn's
// chromium_experimental_subgroup_matrix), split from cca-wgsl.ts: the same sources (core tiles, then raw
// window tiles, raw rows from a resident ring or the chunk) as ccaAttendWgsl, on 16x16x16 f16 products.
// Follows flash-sgmat-wgsl.ts, whose tile code (sgmat-tiles-wgsl.ts) and NaN policy it shares (a V tile holding a
// NaN or an infinity does P V in scalar code that skips the keys a row masks out). CPU twin: cca-cpu.ts.
import { CCA_ROW_TILES_WGSL, ccaSubgroupMatrixBindingsWgsl } from './cca-wgsl.js';
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

/** Head dims of the subgroup-matrix pass 2 (f16 inputs only); rows per workgroup equal CCA_ROWS. */
export const CCA_SGMAT_HEAD_DIMS = [64, 128];

/**
 * Pass 2 on subgroup matrices (tensor cores), following flash-sgmat-wgsl.ts: 4 subgroups of 16 query rows,
 * key tiles of 32 (core tiles, then raw window tiles), S = Q K^T and O += P V as 16x16x16 f16 products with
 * f32 accumulators, scores in the log2 domain, FlashAttention-4's lazy rescale (the max used for P moves only
 * when a row's tile max exceeds it by 2^8), P rounded to f16. Every workgroup variable is a multiple of 16
 * bytes (see that file for why). Bindings as ccaAttendWgsl's.
 */
export function ccaSubgroupMatrixWgsl(headDim: number): string {
  const D = headDim;
  const subgroups = 4;
  const rows = 16 * subgroups;
  const BC = 32;
  const blocks = D / 16;
  const oInit = accumulatorsWgsl('o', blocks);
  // This row's part: cores [0, c_row), raw positions [c_row * g, p].
  const visible = 'row_ok && j >= lo && j <= hi';
  const { softmax, pv } = stagedSoftmaxPvWgsl(visible, blocks, BC);
  return /* wgsl */ `${SUBGROUP_MATRIX_ENABLES}
${ccaSubgroupMatrixBindingsWgsl('vec4<f16>')}
const D: u32 = ${D}u;
const BR: u32 = ${rows}u;
const BC: u32 = ${BC}u;
const THREADS: u32 = ${32 * subgroups}u;
const NEG: f32 = -3.0e38;
var<workgroup> st: array<f32, ${rows * BC}>;
var<workgroup> qs: array<f16, ${rows * D}>;
var<workgroup> kv: array<f16, ${2 * BC * D}>;
var<workgroup> pt: array<f16, ${rows * BC}>;
var<workgroup> need: array<u32, 4>; // [0]: some row needs a rescale, [1]: the V tile is not finite

${putHalvesWgsl('put4', 'kv', false)}

${putHalvesWgsl('putq', 'qs', false)}

${NON_FINITE_WGSL}
${HALVES_NON_FINITE_WGSL}
@compute @workgroup_size(${32 * subgroups})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let h = wg.y;
  let kvh = h / params.heads_per_kv;
  let sbase = sg * 16u * BC;
${CCA_ROW_TILES_WGSL}  let c2 = params.scale * 1.4426950408889634;

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
  let cbase = i32(kvh * params.core_cap);
  if (lid == 0u) { need[1] = 0u; }
  for (var t = 0; t < tiles; t++) {
    let is_core = t < core_tiles;
    let t0 = select(raw_lo + (t - core_tiles) * i32(BC), t * i32(BC), is_core);
    let t_end = select(p_last + 1, c_last, is_core);
    workgroupBarrier();
    if (lid == 0u) { need[0] = 0u; }
    for (var e = lid; e < BC * D / 4u; e += THREADS) {
      let j = t0 + i32(e / (D / 4u));
      var kx = vec4<f16>(0.0);
      var vx = vec4<f16>(0.0);
      let c4 = e % (D / 4u);
      if (j < t_end) {
        if (is_core) { let a = u32(cbase + j) * (D / 4u) + c4; kx = ckg[a]; vx = cvg[a]; }
        else if (in_ring(j)) { let a = ring_row(kvh, j) * (D / 4u) + c4; kx = ckg[a]; vx = cvg[a]; }
        else { let a = raw_row(kvh, j) * (D / 4u) + c4; kx = kg[a]; vx = vg[a]; }
      }
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
    let lo = select(raw_first, 0, is_core);
    let hi = select(p, c_row - 1, is_core);
${softmax}
    workgroupBarrier();
${pv}
  }
${finishRowWgsl(blocks)}
}
`;
}
