// y[T, N] = x[T, K] W[N, K]^T + b: the decoder's projections, weights row-major [out, in] as in GGUF.
// Decode (T = 1): a matrix-vector product, one workgroup of 64 threads per output row, strided
// coalesced reads of the row and a tree reduction. Prefill: 16 x 16 output tiles, K in steps of 16
// through workgroup memory (the classic shared-memory tiling). CPU twin: matmul-cpu.ts.

export const MATVEC_THREADS = 64;
export const MATMUL_TILE = 16;
/** Workgroups along x before wrapping to y (WebGPU allows 65535 per dimension). */
export const MATVEC_ROWS_PER_DIM = 32768;

const PARAMS = /* wgsl */ `
struct Params { t: u32, n: u32, k: u32, has_bias: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;`;

export function matmulParams(t: number, n: number, k: number, hasBias: boolean): ArrayBuffer {
  return new Uint32Array([t, n, k, hasBias ? 1 : 0]).buffer;
}

export function matvecWgsl(): string {
  return /* wgsl */ `${PARAMS}
var<workgroup> partial: array<f32, ${MATVEC_THREADS}>;

@compute @workgroup_size(${MATVEC_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x + wg.y * ${MATVEC_ROWS_PER_DIM}u;
  let inside = row < params.n;
  var s = 0.0;
  if (inside) {
    let base = row * params.k;
    for (var i = lid; i < params.k; i += ${MATVEC_THREADS}u) { s += x[i] * w[base + i]; }
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

export function matmulTiledWgsl(): string {
  const T = MATMUL_TILE;
  return /* wgsl */ `${PARAMS}
var<workgroup> xs: array<f32, ${T * T}>;
var<workgroup> ws: array<f32, ${T * T}>;

@compute @workgroup_size(${T}, ${T})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let col = wg.x * ${T}u + lid.x;   // output feature
  let tok = wg.y * ${T}u + lid.y;   // token
  var s = 0.0;
  for (var k0 = 0u; k0 < params.k; k0 += ${T}u) {
    let xr = wg.y * ${T}u + lid.y;
    let wr = wg.x * ${T}u + lid.y;
    let kk = k0 + lid.x;
    xs[lid.y * ${T}u + lid.x] = select(0.0, x[xr * params.k + kk], xr < params.t && kk < params.k);
    ws[lid.y * ${T}u + lid.x] = select(0.0, w[wr * params.k + kk], wr < params.n && kk < params.k);
    workgroupBarrier();
    for (var j = 0u; j < ${T}u; j++) { s += xs[lid.y * ${T}u + j] * ws[lid.x * ${T}u + j]; }
    workgroupBarrier();
  }
  if (tok < params.t && col < params.n) {
    var b = 0.0;
    if (params.has_bias != 0u) { b = bias[col]; }
    y[tok * params.n + col] = s + b;
  }
}`;
}
