// Decode-shape y[N] = W[N, K] x[K] + b over Q4_0 / Q4_K / Q5_K / Q6_K planes (weights/quant-gpu.ts),
// dequantised as they are read: gemv-wgsl.ts's structure (256 threads as groups of TPR threads, each group
// ROWS consecutive rows, its threads side by side along K; partial sums reduced by subgroupAdd or through
// workgroup memory; the same epilogues and dispatch grid), but a thread's step is 32 values: one 16-byte
// load of the lo plane (a Q4_0 block or a K sub-block), the few scale and high-bit words that go with it
// (shared by neighbouring threads, so cached), and 8 vec4 loads of x. At ~0.6-0.8 bytes a weight against
// f16's 2, a decode step streams a third to a half of the bytes. Needs K a whole number of blocks.
// Checked against a float64 matmul over quant-reference.ts's dequantisation (test/quant-kernels.test.ts).
import type { GpuQuant } from '../weights/quant-gpu.js';
import {
  GEMV_GROUPS_PER_DIM,
  GEMV_THREADS,
  type GemvEpilogue,
  gemvRowsPerWorkgroup,
  gemvTailWgsl,
} from './gemv-wgsl.js';
import { QUANT_STRUCT_WGSL, quantDecodeWgsl } from './quant-wgsl.js';

const seq = (k: number) => Array.from({ length: k }, (_, i) => i);

export function gemvQuantWgsl(
  q: GpuQuant,
  rowsPerGroup: number,
  threadsPerRow = 32,
  epilogue: GemvEpilogue = 'store',
): string {
  const R = rowsPerGroup;
  const TPR = threadsPerRow;
  const mats = epilogue === 'swiglu' ? ['w', 'wu'] : ['w'];
  const accs = epilogue === 'swiglu' ? ['s', 'u'] : ['s'];
  const { second, finish } = gemvTailWgsl(R, TPR, epilogue);
  // chunk_<m>(g, c): the dot of chunk g of matrix m (32 values, chunk c of its row) with x's chunk c.
  const chunk = (m: string) => `fn chunk_${m}(g: u32, c: u32) -> f32 {
  let v = ${m}[g];
  let i = 32u * g;
  let x0 = 8u * c;
  let p = ${m}_8(v.x, i);
  let q = ${m}_8(v.y, i + 8u);
  let r = ${m}_8(v.z, i + 16u);
  let s = ${m}_8(v.w, i + 24u);
  return dot(p.a, x[x0]) + dot(p.b, x[x0 + 1u]) + dot(q.a, x[x0 + 2u]) + dot(q.b, x[x0 + 3u]) +
    dot(r.a, x[x0 + 4u]) + dot(r.b, x[x0 + 5u]) + dot(s.a, x[x0 + 6u]) + dot(s.b, x[x0 + 7u]);
}`;
  const sums = seq(R).flatMap((r) => accs.map((a) => `  var ${a}${r} = 0.0;`));
  const rows = seq(R).map((r) => `  let w${r} = min(row0 + ${r}u, params.n - 1u) * kc;`);
  const body = seq(R).flatMap((r) => mats.map((m, j) => `    ${accs[j]}${r} += chunk_${m}(w${r} + c, c);`));
  return /* wgsl */ `enable subgroups;
struct Params { t: u32, n: u32, k: u32, has_bias: u32 }
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
${second}
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
var<workgroup> red: array<f32, ${GEMV_THREADS}>;

${QUANT_STRUCT_WGSL}
${mats.map((m) => `${quantDecodeWgsl(q, m, true)}\n${chunk(m)}`).join('\n')}

@compute @workgroup_size(${GEMV_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_size) sg_size: u32) {
  let g = lid / ${TPR}u;
  let t = lid % ${TPR}u;
  let row0 = (wg.x + wg.y * ${GEMV_GROUPS_PER_DIM}u) * ${gemvRowsPerWorkgroup(R, TPR)}u + g * ${R}u;
  let kc = params.k / 32u;
${sums.join('\n')}
${rows.join('\n')}
  for (var c = t; c < kc; c += ${TPR}u) {
${body.join('\n')}
  }
${finish}
}`;
}
