// RMSNorm (Zhang & Sennrich 2019): out = x / sqrt(mean(x^2) + eps) * weight, one workgroup per row,
// the sum of squares reduced in workgroup memory. Rows start at row `first` (the last token for logits).
// CPU twin: rmsnorm-cpu.ts. The checked version also raises a non-finite flag word for x (the NaN policy,
// docs/HARDENING.md): a layer's attention norm reads the whole residual stream the layer before left, so it
// does that layer's check (finite-flag-wgsl.ts's kernel) without a dispatch of its own.
import { finiteFlagMark } from './finite-flag-wgsl.js';
import { FINITE_TESTS_WGSL } from './wgsl-common.js';

export const RMSNORM_THREADS = 64;

export function rmsNormParams(rows: number, n: number, eps: number, first = 0): ArrayBuffer {
  const b = new ArrayBuffer(16);
  new Uint32Array(b, 0, 2).set([rows, n]);
  new Float32Array(b, 8, 1)[0] = eps;
  new Uint32Array(b, 12, 1)[0] = first;
  return b;
}

/** The checked version's uniform: rmsNormParams' words, then x's flag word and the mark of its chunk. */
export function rmsNormCheckedParams(
  rows: number,
  n: number,
  eps: number,
  word: number,
  position: number,
): ArrayBuffer {
  const b = new ArrayBuffer(32);
  new Uint8Array(b).set(new Uint8Array(rmsNormParams(rows, n, eps)));
  new Uint32Array(b, 16, 2).set([word, finiteFlagMark(position)]);
  return b;
}

export function rmsNormWgsl(checked = false): string {
  return /* wgsl */ `
struct Params { rows: u32, n: u32, eps: f32, first: u32${checked ? ', word: u32, mark: u32, pad0: u32, pad1: u32' : ''} }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${
  checked
    ? `@group(0) @binding(3) var<storage, read_write> flags: array<atomic<u32>>;
@group(0) @binding(4) var<uniform> params: Params;
${FINITE_TESTS_WGSL}`
    : '@group(0) @binding(3) var<uniform> params: Params;'
}
var<workgroup> partial: array<f32, ${RMSNORM_THREADS}>;

@compute @workgroup_size(${RMSNORM_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = wg.x;
  let base = (params.first + row) * params.n;
  var s = 0.0;
  ${
    checked
      ? `var bad = false;
  for (var i = lid; i < params.n; i += ${RMSNORM_THREADS}u) { let v = x[base + i]; s += v * v; bad = bad || non_finite(v); }
  if (bad) { atomicMax(&flags[params.word], params.mark); }`
      : `for (var i = lid; i < params.n; i += ${RMSNORM_THREADS}u) { s += x[base + i] * x[base + i]; }`
  }
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
