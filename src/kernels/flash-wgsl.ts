// FlashAttention-2 forward, portable WGSL (Dao 2023, "FlashAttention-2", Alg. 1): one thread per query row,
// BR rows per workgroup, key/value tiles of BC keys staged in workgroup memory, online softmax in f32 with
// one rescale per tile, LSE out. No N x N buffer. Any head dim (generated per D). CPU twin: flash-cpu.ts.
import type { DType } from '../tensor.js';
import { ATTENTION_PARAMS_WGSL, CAUSAL_LIMIT_WGSL, inputType } from './wgsl-common.js';

export const FLASH_PORTABLE_ROWS = 64;

export function flashPortableTile(headDim: number): number {
  // Two f32 tiles of BC x D must fit lavapipe's 32 KiB of workgroup memory with room to spare.
  return headDim <= 64 ? 32 : headDim <= 128 ? 16 : 8;
}

export function flashPortableWgsl(headDim: number, dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  const BC = flashPortableTile(headDim);
  return /* wgsl */ `${enable}
${ATTENTION_PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> q: array<${elem}>;
@group(0) @binding(1) var<storage, read> k: array<${elem}>;
@group(0) @binding(2) var<storage, read> v: array<${elem}>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

const D: u32 = ${headDim}u;
const BR: u32 = ${FLASH_PORTABLE_ROWS}u;
const BC: u32 = ${BC}u;
var<workgroup> ks: array<f32, ${BC * headDim}>;
var<workgroup> vs: array<f32, ${BC * headDim}>;
${CAUSAL_LIMIT_WGSL}

@compute @workgroup_size(${FLASH_PORTABLE_ROWS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let kvh = h / params.group;
  let i = wg.x * BR + lid;
  let row_ok = i < params.nq;
  let last = select(-1, key_limit(i), row_ok);
  // The workgroup streams keys up to its last row's limit: a uniform bound, so barriers stay legal.
  let wg_last = key_limit(min(params.nq - 1u, wg.x * BR + BR - 1u));
  var qrow: array<f32, ${headDim}>;
  var acc: array<f32, ${headDim}>;
  var s: array<f32, ${BC}>;
  if (row_ok) {
    let qo = (h * params.nq + i) * D;
    for (var d = 0u; d < D; d++) { qrow[d] = f32(q[qo + d]) * params.scale; acc[d] = 0.0; }
  }
  var m = -3.0e38;
  var l = 0.0;
  let kbase = kvh * params.nk * D;
  for (var t0 = 0; t0 <= wg_last; t0 += i32(BC)) {
    workgroupBarrier();
    for (var e = lid; e < BC * D; e += BR) {
      let j = u32(t0) + e / D;
      var kx = 0.0; var vx = 0.0;
      if (j < params.nk) { kx = f32(k[kbase + j * D + e % D]); vx = f32(v[kbase + j * D + e % D]); }
      ks[e] = kx; vs[e] = vx;
    }
    workgroupBarrier();
    let n = min(i32(BC), last - t0 + 1);
    if (n > 0) {
      var tile_max = -3.0e38;
      for (var j = 0; j < n; j++) {
        var dot = 0.0;
        for (var d = 0u; d < D; d++) { dot += qrow[d] * ks[u32(j) * D + d]; }
        s[j] = dot;
        tile_max = max(tile_max, dot);
      }
      let m_new = max(m, tile_max);
      let alpha = exp(m - m_new);
      l *= alpha;
      for (var d = 0u; d < D; d++) { acc[d] *= alpha; }
      for (var j = 0; j < n; j++) {
        let p = exp(s[j] - m_new);
        l += p;
        for (var d = 0u; d < D; d++) { acc[d] += p * vs[u32(j) * D + d]; }
      }
      m = m_new;
    }
  }
  if (row_ok) {
    let r = h * params.nq + i;
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < D; d++) { o[r * D + d] = acc[d] * inv; }
    lse[r] = select(bitcast<f32>(params.neg_inf_bits), m + log(l), l > 0.0);
  }
}
`;
}
