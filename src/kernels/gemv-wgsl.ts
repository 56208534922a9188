// Decode-shape matrix-vector product y[N] = W[N, K] x[K] + b with f16 weights or Q8_0 tiles (q8-tiles.ts): bandwidth-bound, so the
// kernel only has to keep enough 16-byte weight loads in flight (the GEMV of llama.cpp's ggml-vulkan
// mul_mat_vec and of every decode engine: structure only, no code copied). A workgroup of 256 threads is
// 256 / TPR groups of TPR threads; each group owns ROWS consecutive weight rows and walks K in 16-byte
// chunks (8 f16, or 16 int8 quants times their block's scale) with its threads side by side (coalesced), ROWS independent loads per step. Long rows
// (K = 8192) want more threads per row, so that enough loads are in flight with few rows (N = 2048).
// Partial sums are reduced with subgroupAdd when subgroups are 32 wide (one per 32 threads), through
// workgroup memory otherwise (lavapipe's subgroups are 8 wide). Bindings and uniform are matvecWgsl's (matmul-wgsl.ts),
// x f32. Needs K % 8 == 0. Checked against matmulRef (float64) like the other matmuls.

import { Q8_UNPACK_WGSL } from './matmul-wgsl.js';

export const GEMV_THREADS = 256;
/** Workgroups along x before wrapping to y. */
export const GEMV_GROUPS_PER_DIM = 32768;

export function gemvRowsPerWorkgroup(rowsPerGroup: number, threadsPerRow = 32): number {
  return (GEMV_THREADS / threadsPerRow) * rowsPerGroup;
}

export function gemvGrid(n: number, rowsPerGroup: number, threadsPerRow = 32): [number, number] {
  const groups = Math.ceil(n / gemvRowsPerWorkgroup(rowsPerGroup, threadsPerRow));
  return [Math.min(groups, GEMV_GROUPS_PER_DIM), Math.ceil(groups / GEMV_GROUPS_PER_DIM)];
}

export function gemvUnsupported(k: number, weights: 'f16' | 'q8_0' = 'f16'): string | null {
  if (weights === 'q8_0') return k % 32 === 0 ? null : `K = ${k} is not whole Q8_0 blocks of 32`;
  return k % 8 === 0 ? null : `K = ${k} is not a multiple of 8 (16-byte weight loads)`;
}

const seq = (k: number) => Array.from({ length: k }, (_, i) => i);

/** What the kernel does with each row's sum: store y = sum + bias; add it into y (y += W x, the residual add of
 * a decode step fused away); or SwiGLU over two matrices at once, y = silu(W x) * (Wu x) (gate and up: binding 2
 * holds Wu instead of the bias). One pass over the weights either way; the decoder saves a dispatch each. */
export type GemvEpilogue = 'store' | 'accumulate' | 'swiglu';

export function gemvWgsl(
  rowsPerGroup: number,
  threadsPerRow = 32,
  weights: 'f16' | 'q8_0' = 'f16',
  epilogue: GemvEpilogue = 'store',
): string {
  const R = rowsPerGroup;
  const TPR = threadsPerRow;
  const rowsPerWg = gemvRowsPerWorkgroup(R, TPR);
  const q8 = weights === 'q8_0';
  const pair = epilogue === 'swiglu';
  // A 16-byte chunk holds 8 f16 weights, or 16 Q8_0 quants (half a block: one scale per two chunks).
  const per = q8 ? 16 : 8;
  // Accumulators per row: s (W x) and, for SwiGLU, u (W2 x).
  const accs = pair ? ['s', 'u'] : ['s'];
  const sums = seq(R).flatMap((r) => accs.map((a) => `  var ${a}${r} = 0.0;`));
  const rows = seq(R).map((r) => `  let w${r} = min(row0 + ${r}u, params.n - 1u) * kc;`);
  const body = seq(R).flatMap((r) =>
    accs.map((a) => {
      const m = a === 's' ? 'w' : 'wu';
      return q8
        ? `    ${a}${r} += dot16(${m}[w${r} + c], c) * scale_${m}(w${r} * 4u + c * 4u);`
        : `    ${a}${r} += dot8(${m}[w${r} + c], xa, xb);`;
    }),
  );
  const loads = q8 ? '' : '    let xa = x[2u * c];\n    let xb = x[2u * c + 1u];\n';
  const { second, finish } = gemvTailWgsl(R, TPR, epilogue);
  const scales = (pair ? ['w', 'wu'] : ['w']).map(
    (m) => `fn scale_${m}(word: u32) -> f32 {
  let at = params.n * params.k / 4u + word / 8u;
  return bitcast<f32>(${m}[at / 4u][at % 4u]);
}`,
  );
  return /* wgsl */ `enable f16;
enable subgroups;
struct Params { t: u32, n: u32, k: u32, has_bias: u32 }
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
${second}
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
var<workgroup> red: array<f32, ${GEMV_THREADS}>;

${
  q8
    ? `${Q8_UNPACK_WGSL}
fn dot16(v: vec4<u32>, c: u32) -> f32 {
  return dot(q8x4(v.x), x[4u * c]) + dot(q8x4(v.y), x[4u * c + 1u]) + dot(q8x4(v.z), x[4u * c + 2u]) +
    dot(q8x4(v.w), x[4u * c + 3u]);
}
// The scale of the block holding quant word word (scales follow the n * k / 4 quant words).
${scales.join('\n')}`
    : `fn dot8(v: vec4<u32>, a: vec4<f32>, b: vec4<f32>) -> f32 {
  let p = vec4<f32>(vec2<f32>(bitcast<vec2<f16>>(v.x)), vec2<f32>(bitcast<vec2<f16>>(v.y)));
  let q = vec4<f32>(vec2<f32>(bitcast<vec2<f16>>(v.z)), vec2<f32>(bitcast<vec2<f16>>(v.w)));
  return dot(p, a) + dot(q, b);
}`
}

@compute @workgroup_size(${GEMV_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_size) sg_size: u32) {
  let g = lid / ${TPR}u;
  let t = lid % ${TPR}u;
  let row0 = (wg.x + wg.y * ${GEMV_GROUPS_PER_DIM}u) * ${rowsPerWg}u + g * ${R}u;
  let kc = params.k / ${per}u;
${sums.join('\n')}
${rows.join('\n')}
  for (var c = t; c < kc; c += ${TPR}u) {
${loads}${body.join('\n')}
  }
${finish}
}`;
}

/** What follows a GEMV's loop, shared by every weight format: each row's partial sums reduced over its TPR
 * threads and the epilogue's store; and binding 2's declaration (the bias, or SwiGLU's second matrix wu). */
export function gemvTailWgsl(R: number, TPR: number, epilogue: GemvEpilogue): { second: string; finish: string } {
  const accs = epilogue === 'swiglu' ? ['s', 'u'] : ['s'];
  const reduce = (a: string, r: number) => `    let total_${a} = subgroupAdd(${a}${r});
    red[lid] = select(${a}${r}, total_${a}, sg_size == 32u);
    workgroupBarrier();
    var sum_${a} = 0.0;
    if (t == 0u) {
      if (sg_size == 32u) { for (var c = 0u; c < ${TPR}u; c += 32u) { sum_${a} += red[lid + c]; } }
      else { for (var c = 0u; c < ${TPR}u; c++) { sum_${a} += red[lid + c]; } }
    }
    workgroupBarrier();`;
  const bias = 'var b = 0.0;\n      if (params.has_bias != 0u) { b = bias[row]; }\n      ';
  const store = {
    store: `${bias}y[row] = sum_s + b;`,
    accumulate: `${bias}y[row] = sum_s + b + y[row];`,
    // The decoder's swiglu kernel's formula (elementwise-wgsl.ts), so fused and unfused agree.
    swiglu: 'y[row] = sum_s / (1.0 + exp(-sum_s)) * sum_u;',
  }[epilogue];
  const finish = seq(R).map(
    (r) => `  {
${accs.map((a) => reduce(a, r)).join('\n')}
    let row = row0 + ${r}u;
    if (t == 0u && row < params.n) {
      ${store}
    }
  }`,
  );
  const second =
    epilogue === 'swiglu'
      ? '@group(0) @binding(2) var<storage, read> wu: array<vec4<u32>>;'
      : '@group(0) @binding(2) var<storage, read> bias: array<f32>;';
  return { second, finish: finish.join('\n') };
}
