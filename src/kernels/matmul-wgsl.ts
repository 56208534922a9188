// y[T, N] = x[T, K] W[N, K]^T + b: the decoder's projections, weights row-major [out, in] as in GGUF.
// Decode (T = 1): a matrix-vector product, one workgroup of 64 threads per output row, strided
// coalesced reads of the row and a tree reduction. Prefill: 64 x 64 output tiles, 4 x 4 per thread in
// registers, K in steps of 16 through workgroup memory (register blocking, as in Simon Boehm's SGEMM
// notes and CUTLASS). CPU twin: matmul-cpu.ts.

import { type GpuQuant, isGpuQuant } from '../weights/quant-gpu.js';
import { quantWeightWgsl } from './quant-wgsl.js';

export const MATVEC_THREADS = 64;
/** Outputs per workgroup side (tokens and features) and the K step of the tiled kernel. */
export const MATMUL_TILE = 64;
export const MATMUL_K_STEP = 16;
/** Workgroups along x before wrapping to y (WebGPU allows 65535 per dimension). */
export const MATVEC_ROWS_PER_DIM = 32768;

/** Weights stored as f32, f16 (half the bytes to stream; products and sums stay f32), Q8_0 tiles
 * (weights/q8-tiles.ts: int8 quants four to a word, then f32 scales per 32; about a quarter of f32's bytes),
 * or Q4_0 / Q4_K / Q5_K / Q6_K planes (weights/quant-gpu.ts, dequantised by quant-wgsl.ts). */
export type WeightStorage = 'f32' | 'f16' | 'q8_0' | GpuQuant;

/** Weights held as u32 words that the kernel dequantises. */
export const isQuantStorage = (w: WeightStorage): boolean => w !== 'f32' && w !== 'f16';

/** WGSL: the signed byte i (0..3) of each word of v, as f32 (Q8_0 quants, four to a u32). */
export const Q8_UNPACK_WGSL = `fn q8x4(v: u32) -> vec4<f32> {
  return vec4<f32>(vec4<i32>(i32(v << 24u), i32(v << 16u), i32(v << 8u), i32(v)) >> vec4<u32>(24u));
}`;

/** WGSL weight(row, col) -> f32 over binding w, for each storage. */
function weightAccess(wType: WeightStorage): string {
  if (isGpuQuant(wType)) return quantWeightWgsl(wType);
  if (wType !== 'q8_0') return `fn weight(row: u32, col: u32) -> f32 { return f32(w[row * params.k + col]); }`;
  return `${Q8_UNPACK_WGSL}
fn weight(row: u32, col: u32) -> f32 {
  let i = row * params.k + col;
  return q8x4(w[i / 4u])[i % 4u] * bitcast<f32>(w[params.n * params.k / 4u + i / 32u]);
}`;
}

const PARAMS = (wType: WeightStorage) => /* wgsl */ `${wType === 'f16' ? 'enable f16;' : ''}
struct Params { t: u32, n: u32, k: u32, has_bias: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<${isQuantStorage(wType) ? 'u32' : wType}>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
${weightAccess(wType)}`;

export function matmulParams(t: number, n: number, k: number, hasBias: boolean): ArrayBuffer {
  return new Uint32Array([t, n, k, hasBias ? 1 : 0]).buffer;
}

export function matvecWgsl(wType: WeightStorage = 'f32'): string {
  return /* wgsl */ `${PARAMS(wType)}
var<workgroup> partial: array<f32, ${MATVEC_THREADS}>;

@compute @workgroup_size(${MATVEC_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * ${MATVEC_ROWS_PER_DIM}u;
  let inside = row < params.n;
  var s = 0.0;
  if (inside) {
    for (var i = lid; i < params.k; i += ${MATVEC_THREADS}u) { s += x[i] * weight(row, i); }
  }
  partial[lid] = s;
  workgroupBarrier();
  for (var stride = ${MATVEC_THREADS / 2}u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  if (lid == 0u && inside) {
    var b = 0.0;
    if (params.has_bias != 0u) { b = bias[row]; }
    y[row] = partial[0] + b;
  }
}`;
}

export function matmulTiledWgsl(wType: WeightStorage = 'f32'): string {
  // 64 x 64 outputs per workgroup of 16 x 16 threads, 4 x 4 per thread (rows ty + 16i, columns tx + 16j,
  // so neighbouring threads read neighbouring words of workgroup memory); K advances 16 at a time.
  const T = MATMUL_TILE;
  const S = MATMUL_K_STEP;
  return /* wgsl */ `${PARAMS(wType)}
var<workgroup> xs: array<f32, ${T * S}>;
var<workgroup> ws: array<f32, ${T * S}>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let tok0 = wg.y * ${T}u;
  let col0 = wg.x * ${T}u;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < params.k; k0 += ${S}u) {
    for (var r = 0u; r < ${(T * S) / 256}u; r++) {
      let idx = li + 256u * r;
      let row = idx / ${S}u;
      let kk = k0 + idx % ${S}u;
      let xt = tok0 + row;
      let wr = col0 + row;
      xs[idx] = select(0.0, x[xt * params.k + kk], xt < params.t && kk < params.k);
      ws[idx] = select(0.0, weight(min(wr, params.n - 1u), min(kk, params.k - 1u)), wr < params.n && kk < params.k);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${S}u; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = xs[(lid.y + 16u * i) * ${S}u + kk];
        b[i] = ws[(lid.x + 16u * i) * ${S}u + kk];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] += a[i] * b[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let tok = tok0 + lid.y + 16u * i;
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x + 16u * j;
      if (tok < params.t && col < params.n) {
        var b = 0.0;
        if (params.has_bias != 0u) { b = bias[col]; }
        y[tok * params.n + col] = acc[i][j] + b;
      }
    }
  }
}`;
}
