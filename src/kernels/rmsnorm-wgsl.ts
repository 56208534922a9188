// RMSNorm (Zhang & Sennrich 2019): out = x / sqrt(mean(x^2) + eps) * weight, one workgroup per row,
// the sum of squares reduced in workgroup memory. Rows start at row `first` (the last token for logits).
// CPU twin: rmsnorm-cpu.ts.

export const RMSNORM_THREADS = 64;

export function rmsNormParams(rows: number, n: number, eps: number, first = 0): ArrayBuffer {
  const b = new ArrayBuffer(16);
  new Uint32Array(b, 0, 2).set([rows, n]);
  new Float32Array(b, 8, 1)[0] = eps;
  new Uint32Array(b, 12, 1)[0] = first;
  return b;
}

export function rmsNormWgsl(): string {
  return /* wgsl */ `
struct Params { rows: u32, n: u32, eps: f32, first: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
var<workgroup> partial: array<f32, ${RMSNORM_THREADS}>;

@compute @workgroup_size(${RMSNORM_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  let base = (params.first + row) * params.n;
  var s = 0.0;
  for (var i = lid; i < params.n; i += ${RMSNORM_THREADS}u) { s += x[base + i] * x[base + i]; }
  partial[lid] = s;
  workgroupBarrier();
  for (var stride = ${RMSNORM_THREADS / 2}u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(partial[0] / f32(params.n) + params.eps);
  for (var i = lid; i < params.n; i += ${RMSNORM_THREADS}u) { out[row * params.n + i] = x[base + i] * inv * weight[i]; }
}`;
}
