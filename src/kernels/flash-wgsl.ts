// FlashAttention-2 forward, portable WGSL (Dao 2023, "FlashAttention-2", Alg. 1): one thread per query row,
// BR rows per workgroup, key/value tiles of BC keys staged in workgroup memory, online softmax in f32 with
// one rescale per tile, LSE out. No N x N buffer. Any head dim (generated per D). CPU twin: flash-cpu.ts.
// With a block mask (FlexAttention's scheme) the workgroup visits only its query tile's kept key tiles
// and evaluates the mask predicate only on partial ones.
import type { DType } from '../tensor.js';
import { ATTENTION_PARAMS_WGSL, CAUSAL_LIMIT_WGSL, NON_FINITE_WGSL, inputType } from './wgsl-common.js';

export const FLASH_PORTABLE_ROWS = 64;

export function flashPortableTile(headDim: number): number {
  // Two f32 tiles of BC x D must fit lavapipe's 32 KiB of workgroup memory with room to spare.
  return headDim <= 64 ? 32 : headDim <= 128 ? 16 : 8;
}

export interface WgslMask {
  /** A WGSL bool expression over `qp: i32`, `kp: i32` (see attention/mask.ts). */
  predicate: string;
  /** Whether it reads `doc_ids` (bound at 8). */
  documents: boolean;
}

/** Bindings 6-8 of a masked flash kernel and its `allowed(qp, kp)` predicate; '' without a mask. */
export function blockMaskBindingsWgsl(mask?: WgslMask): string {
  return mask
    ? `
@group(0) @binding(6) var<storage, read> block_offsets: array<u32>;
@group(0) @binding(7) var<storage, read> block_tiles: array<u32>;
${mask.documents ? '@group(0) @binding(8) var<storage, read> doc_ids: array<i32>;' : ''}
fn allowed(qp: i32, kp: i32) -> bool { return ${mask.predicate}; }`
    : '';
}

/**
 * The head of a flash kernel's loop over key tiles (start `t0`, BC keys; needs BR, BC, key_limit, wg).
 * Causal: tiles up to the workgroup's last row's limit (a uniform bound, so barriers stay legal).
 * Masked: the kept tiles of this query tile from the CSR block mask (read-only storage indexed by the
 * workgroup id: uniform too); `full` tiles skip the predicate.
 */
export function keyTileLoopWgsl(mask?: WgslMask): string {
  return mask
    ? `for (var e = block_offsets[wg.x]; e < block_offsets[wg.x + 1u]; e++) {
    let entry = block_tiles[e];
    let t0 = i32((entry >> 1u) * BC);
    let full = (entry & 1u) == 1u;`
    : `let wg_last = key_limit(min(params.nq - 1u, wg.x * BR + BR - 1u));
  for (var t0 = 0; t0 <= wg_last; t0 += i32(BC)) {`;
}

export function flashPortableWgsl(headDim: number, dtype: DType, mask?: WgslMask): string {
  const { enable, elem } = inputType(dtype);
  const BC = flashPortableTile(headDim);
  const maskBindings = blockMaskBindingsWgsl(mask);
  const loopHead = keyTileLoopWgsl(mask);
  const visible = mask ? '(full || allowed(qp, t0 + j))' : 'true';
  return /* wgsl */ `${enable}
${ATTENTION_PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> q: array<${elem}>;
@group(0) @binding(1) var<storage, read> k: array<${elem}>;
@group(0) @binding(2) var<storage, read> v: array<${elem}>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;
${maskBindings}

const D: u32 = ${headDim}u;
const BR: u32 = ${FLASH_PORTABLE_ROWS}u;
const BC: u32 = ${BC}u;
const NEG: f32 = -3.0e38;
var<workgroup> ks: array<f32, ${BC * headDim}>;
var<workgroup> vs: array<f32, ${BC * headDim}>;
${CAUSAL_LIMIT_WGSL}
${NON_FINITE_WGSL}

@compute @workgroup_size(${FLASH_PORTABLE_ROWS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let kvh = h / params.group;
  let i = wg.x * BR + lid;
  let row_ok = i < params.nq;
  let qp = i32(params.nk) - i32(params.nq) + i32(i);
  let last = select(-1, ${mask ? 'i32(params.nk) - 1' : 'key_limit(i)'}, row_ok);
  var qrow: array<f32, ${headDim}>;
  var acc: array<f32, ${headDim}>;
  var s: array<f32, ${BC}>;
  if (row_ok) {
    let qo = (h * params.nq + i) * D;
    for (var d = 0u; d < D; d++) { qrow[d] = f32(q[qo + d]) * params.scale; acc[d] = 0.0; }
  }
  var m = NEG;
  var l = 0.0;
  var bad = false; // a visible score that is NaN or infinite: the row is NaN (HARDENING.md)
  let kbase = kvh * kv_rows() * D;
  ${loopHead}
    workgroupBarrier();
    for (var x = lid; x < BC * D; x += BR) {
      let j = u32(t0) + x / D;
      var kx = 0.0; var vx = 0.0;
      if (j < params.nk) { kx = f32(k[kbase + j * D + x % D]); vx = f32(v[kbase + j * D + x % D]); }
      ks[x] = kx; vs[x] = vx;
    }
    workgroupBarrier();
    let n = min(i32(BC), last - t0 + 1);
    if (n > 0) {
      var tile_max = NEG;
      for (var j = 0; j < n; j++) {
        var dot = NEG;
        if (${visible}) {
          dot = 0.0;
          for (var d = 0u; d < D; d++) { dot += qrow[d] * ks[u32(j) * D + d]; }
        }
        s[j] = dot;
        bad = bad || non_finite(dot);
        tile_max = max(tile_max, dot);
      }
      if (tile_max > NEG) {
        let m_new = max(m, tile_max);
        let alpha = exp(m - m_new);
        l *= alpha;
        for (var d = 0u; d < D; d++) { acc[d] *= alpha; }
        for (var j = 0; j < n; j++) {
          if (s[j] == NEG) { continue; } // masked: not read, so a NaN in its v stays out (0 * NaN is NaN)
          let p = exp(s[j] - m_new);
          l += p;
          for (var d = 0u; d < D; d++) { acc[d] += p * vs[u32(j) * D + d]; }
        }
        m = m_new;
      }
    }
  }
  if (row_ok) {
    let r = h * params.nq + i;
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < D; d++) { o[r * D + d] = select(acc[d] * inv, nan_value(), bad); }
    lse[r] = select(select(bitcast<f32>(params.neg_inf_bits), m + log(l), l > 0.0), nan_value(), bad);
  }
}
`;
}
