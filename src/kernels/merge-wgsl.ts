// Folds S attention states over disjoint key sets into one (Milakov & Gimelshein 2018, "Online normalizer
// calculation for softmax"; the split-KV combine of FlashDecoding, Dao et al. 2023): with M = max_s L_s,
// L = M + log sum_s e^(L_s - M) and O = sum_s e^(L_s - M) O_s / sum_s e^(L_s - M); empty states (L = -inf)
// add nothing, and a row no state saw stays O = 0, L = -inf. The states come stacked, o [S, rows, D] and
// lse [S, rows]; one thread per (row, 4 columns), or per (row, column) when D is not a multiple of 4.
// The one GPU merge: DSA's split-KV decoding folds its splits with it (the model merges no other states on
// the GPU: Star and Ring hosts merge on the host, spine/state.ts).
// CPU twin: mergeStates in spine/state.ts. A NaN LSE in any state makes the row NaN (docs/HARDENING.md's
// NaN policy): skipped as "not > -3e38" it would vanish from the merge.
import { NON_FINITE_WGSL } from './wgsl-common.js';

export const MERGE_THREADS = 64;

/** Columns per thread for head dim D. */
export function mergeWidth(headDim: number): number {
  return headDim % 4 === 0 ? 4 : 1;
}

/** Bindings: stacked o and lse (read), the merged o and lse (written), then the uniform
 * { rows, splits, neg_inf_bits (0xff800000), pad }. Dispatch ceil(rows * D / width / MERGE_THREADS) threads'
 * workgroups, folded into x and y. */
export function mergeStatesWgsl(headDim: number): string {
  const W = mergeWidth(headDim);
  const T = W === 4 ? 'vec4<f32>' : 'f32';
  return /* wgsl */ `
struct Params { rows: u32, splits: u32, neg_inf_bits: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> po: array<${T}>;
@group(0) @binding(1) var<storage, read> plse: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<${T}>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
${NON_FINITE_WGSL}
const DW: u32 = ${headDim / W}u;
@compute @workgroup_size(${MERGE_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let x = gid.x + gid.y * nwg.x * ${MERGE_THREADS}u;
  if (x >= params.rows * DW) { return; }
  let r = x / DW;
  let d = x % DW;
  var mm = -3.0e38;
  var bad = false;
  for (var w = 0u; w < params.splits; w++) { mm = max(mm, plse[w * params.rows + r]); bad = bad || is_nan(plse[w * params.rows + r]); }
  var sum = 0.0;
  var acc = ${T}(0.0);
  for (var w = 0u; w < params.splits; w++) {
    let a = plse[w * params.rows + r];
    if (a > -3.0e38) {
      let e = exp(a - mm);
      sum += e;
      acc += po[(w * params.rows + r) * DW + d] * e;
    }
  }
  o[r * DW + d] = select(select(${T}(0.0), acc / sum, sum > 0.0), ${T}(nan_value()), bad);
  if (d == 0u) { lse[r] = select(select(bitcast<f32>(params.neg_inf_bits), mm + log(sum), sum > 0.0), nan_value(), bad); }
}
`;
}

/** Workgroups (x, y) for merging `rows` rows of head dim D within the per-dimension limit. */
export function mergeWorkgroups(rows: number, headDim: number, maxPerDim: number): [number, number] {
  const groups = Math.ceil((rows * headDim) / mergeWidth(headDim) / MERGE_THREADS);
  const x = Math.min(groups, maxPerDim);
  return [x, Math.ceil(groups / x)];
}
