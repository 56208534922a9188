// WGSL that dequantises Q4_0, Q4_K, Q5_K and Q6_K weights from their GPU planes (weights/quant-gpu.ts says
// the layout): `<m>_8(lw, i)` gives the 8 values i .. i + 7 (i a multiple of 8) of the matrix bound as `m`,
// whose 4 low bits are the word lw of the lo plane (the caller loads it: the GEMV 16 bytes at a time). Each
// value is llama.cpp's formula over f32: Q4_0 d (q - 8); Q4_K / Q5_K (d sc) q - (dmin m); Q6_K (d sc)(q - 32),
// with d sc exact in f32 (an f16 times a 6- or 8-bit integer). The matmul kernels (matmul-wgsl.ts,
// matmul-tc-wgsl.ts, gemv-quant-wgsl.ts) call these as they read weights; the planes follow the matrix's
// n * k lo words, so only params.n and params.k locate them.
import type { GpuQuant } from '../weights/quant-gpu.js';

/** Eight dequantised weights, values i .. i + 3 in a and i + 4 .. i + 7 in b. */
export const QUANT_STRUCT_WGSL = 'struct Q8v { a: vec4<f32>, b: vec4<f32> }';

/** Plane offsets (words) as WGSL expressions of nk = params.n * params.k (quant-gpu.ts quantPlanes). */
function planes(q: GpuQuant): { hi: string; sc: string; d: string } {
  const hi = 'nk / 8u';
  const sc = q === 'q5_k' ? `${hi} + nk / 32u` : q === 'q6_k' ? `${hi} + nk / 16u` : hi;
  const d = q === 'q4_0' ? sc : `${sc} + nk / 64u`;
  return { hi, sc, d };
}

/**
 * The decoder of matrix binding `m` (an array of u32, or of vec4<u32> when `vec4`): `<m>_word(at)` and
 * `<m>_8(lw, i) -> Q8v`. QUANT_STRUCT_WGSL must be declared once beside it.
 */
export function quantDecodeWgsl(q: GpuQuant, m: string, vec4: boolean): string {
  const p = planes(q);
  const word = vec4 ? `${m}[at / 4u][at % 4u]` : `${m}[at]`;
  const nib = (shifts: number[]) =>
    `vec4<f32>((vec4<u32>(lw) >> vec4<u32>(${shifts.map((s) => `${s}u`).join(', ')})) & vec4<u32>(15u))`;
  const bits = (v: string, shifts: number[], mask: number) =>
    `vec4<f32>((vec4<u32>(${v}) >> vec4<u32>(${shifts.map((s) => `${s}u`).join(', ')})) & vec4<u32>(${mask}u))`;
  const body = {
    q4_0: `  let d = bitcast<f32>(${m}_word(${p.d} + i / 32u));
  return Q8v(d * (lo_a - 8.0), d * (lo_b - 8.0));`,
    q4_k: `${kScales(m, p)}
  return Q8v(s * lo_a - mn, s * lo_b - mn);`,
    q5_k: `${kScales(m, p)}
  let h = ${m}_word(${p.hi} + i / 32u) >> (i % 32u);
  let ha = ${bits('h', [0, 1, 2, 3], 1)};
  let hb = ${bits('h', [4, 5, 6, 7], 1)};
  return Q8v(s * (lo_a + 16.0 * ha) - mn, s * (lo_b + 16.0 * hb) - mn);`,
    q6_k: `  let h = ${m}_word(${p.hi} + i / 16u) >> (2u * (i % 16u));
  let ha = ${bits('h', [0, 2, 4, 6], 3)};
  let hb = ${bits('h', [8, 10, 12, 14], 3)};
  let g = i / 16u;
  let code = (${m}_word(${p.sc} + g / 4u) >> (8u * (g % 4u))) & 255u;
  let s = bitcast<f32>(${m}_word(${p.d} + i / 256u)) * f32(i32(code << 24u) >> 24u);
  return Q8v(s * (lo_a + 16.0 * ha - 32.0), s * (lo_b + 16.0 * hb - 32.0));`,
  }[q];
  return /* wgsl */ `fn ${m}_word(at: u32) -> u32 { return ${word}; }
fn ${m}_8(lw: u32, i: u32) -> Q8v {
  let nk = params.n * params.k;
  let lo_a = ${nib([0, 4, 8, 12])};
  let lo_b = ${nib([16, 20, 24, 28])};
${body}
}`;
}

/** Q4_K / Q5_K: the sub-block's scale s = d sc and min mn = dmin m. */
function kScales(m: string, p: { sc: string; d: string }): string {
  return `  let sub = i / 32u;
  let code = ${m}_word(${p.sc} + sub / 2u) >> (16u * (sub % 2u));
  let blk = ${p.d} + 2u * (i / 256u);
  let s = bitcast<f32>(${m}_word(blk)) * f32(code & 63u);
  let mn = bitcast<f32>(${m}_word(blk + 1u)) * f32((code >> 8u) & 63u);`;
}

/** weight(row, col) -> f32 over binding w (array<u32>), for the portable kernels' per-value reads. */
export function quantWeightWgsl(q: GpuQuant): string {
  return `${QUANT_STRUCT_WGSL}
${quantDecodeWgsl(q, 'w', false)}
fn weight(row: u32, col: u32) -> f32 {
  let i = row * params.k + col;
  let v = w_8(w[i / 8u], i & ~7u);
  let j = i % 8u;
  return select(v.b[j % 4u], v.a[j % 4u], j < 4u);
}`;
}

/** qx8(row, kk) -> vec4<u32>: 8 weights from column kk (a multiple of 8) as f16 pairs, for the tensor-core tiles. */
export function quantHalvesWgsl(q: GpuQuant): string {
  return `${QUANT_STRUCT_WGSL}
${quantDecodeWgsl(q, 'w', false)}
fn qx8(row: u32, kk: u32) -> vec4<u32> {
  let i = row * params.k + kk;
  let v = w_8(w[i / 8u], i);
  return vec4<u32>(pack2x16float(v.a.xy), pack2x16float(v.a.zw), pack2x16float(v.b.xy), pack2x16float(v.b.zw));
}`;
}

/** out[t, j] = table[ids[t], j] over a quantised table [n = vocab, k = width] (a quantised token embedding stays
 * quantised: tied, the same planes are the output head). Uniform: elementwiseParams(tokens * k, k, vocab). */
export function embeddingQuantWgsl(q: GpuQuant, threads: number): string {
  return /* wgsl */ `struct Params { len: u32, k: u32, n: u32, unused: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
${quantWeightWgsl(q)}
@compute @workgroup_size(${threads})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${threads}u;
  if (i >= params.len) { return; }
  out[i] = weight(ids[i / params.k], i % params.k);
}`;
}
