// RMSNorm (Zhang & Sennrich 2019): out = x / sqrt(mean(x^2) + eps) * weight, one workgroup per row,
// the sum of squares reduced in workgroup memory. A decoded token normalises one row of 2048 a dispatch, so the
// kernel is bound by load latency, not bandwidth: 256 threads, each issuing four independent loads before it
// uses one (the H200 profile put the earlier 64-thread loop, one load after another, at 28 us a dispatch,
// ~0.9 ms of a window-decoded token's 33 norms; docs/BENCHMARKS.md). Rows start at row `first` (the last token for logits).
// CPU twin: rmsnorm-cpu.ts. The checked version also raises a non-finite flag word for x (the NaN policy,
// docs/HARDENING.md): a layer's attention norm reads the whole residual stream the layer before left, so it
// does that layer's check (finite-flag-wgsl.ts's kernel) without a dispatch of its own.
import { finiteFlagMark } from './finite-flag-wgsl.js';
import { FINITE_TESTS_WGSL } from './wgsl-common.js';

export const RMSNORM_THREADS = 256;
/** Loads in flight per thread (an unrolled step of the loops). */
const UNROLL = 4;
const T = RMSNORM_THREADS;

/** The sum of squares of row `base`'s n elements in s (and `bad` for a non-finite one when checked). */
function sumSquares(checked: boolean): string {
  const lanes = Array.from({ length: UNROLL }, (_, u) => u);
  const loads = lanes.map(
    (u) =>
      `    let i${u} = i + ${u * T}u;\n    let v${u} = select(0.0, x[base + min(i${u}, params.n - 1u)], i${u} < params.n);`,
  );
  const adds = lanes.map((u) => `v${u} * v${u}`).join(' + ');
  const bad = checked ? `\n    bad = bad || ${lanes.map((u) => `non_finite(v${u})`).join(' || ')};` : '';
  return `for (var i = lid; i < params.n; i += ${UNROLL * T}u) {
${loads.join('\n')}
    s += ${adds};${bad}
  }`;
}

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

/** out = x * inv * weight over the row, unrolled as the sum (x was just read: its loads hit the cache). */
function scaleRow(): string {
  const lanes = Array.from({ length: UNROLL }, (_, u) => u);
  const loads = lanes.map(
    (u) => `    let i${u} = min(i + ${u * T}u, params.n - 1u);\n    let y${u} = x[base + i${u}] * inv * weight[i${u}];`,
  );
  const stores = lanes.map((u) => `    if (i + ${u * T}u < params.n) { out[row * params.n + i${u}] = y${u}; }`);
  return `for (var i = lid; i < params.n; i += ${UNROLL * T}u) {
${loads.join('\n')}
${stores.join('\n')}
  }`;
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
  ${checked ? 'var bad = false;\n  ' : ''}${sumSquares(checked)}${
    checked ? '\n  if (bad) { atomicMax(&flags[params.word], params.mark); }' : ''
  }
  partial[lid] = s;
  workgroupBarrier();
  for (var stride = ${RMSNORM_THREADS / 2}u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(partial[0] / f32(params.n) + params.eps);
  ${scaleRow()}
}`;
}
