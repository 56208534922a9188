// The lightning indexer's training pass on WebGPU around kernels/indexer-grad-wgsl.ts (the O(L^2) loss and
// backward): the parts that ran on the host in float64 and dominated the step (DeepSeek-V3.2 tech report
// sec. 2.1.1 for the forms; the profile in docs/DSA-MASS.md), all in f32:
//   matmul:   C[m,n] = sum_k A(m,k) B(k,n), 16x16 tiles staged in workgroup memory (the textbook shared-memory
//             GEMM); two layouts: Y = h W^T (the three projections at once: W_q, W_k, W_proj are contiguous rows
//             of the parameter vector) and dW = dY^T h (their backward, a sum over the sequence's tokens);
//   prep:     a thread per token: q_I = RoPE(Y_q), k_I = RoPE(LayerNorm(Y_k)), w = Y_w / sqrt(H_I D_I);
//   prepBack: a thread per token: RoPE's transpose on dq and dk_I, LayerNorm's backward (xhat recomputed from
//             Y), the weight scale on dw, into dY [L, R]; and per-token gamma / beta terms (dy xhat, dy);
//   colsum:   out[c] = sum_t X[t,c], a workgroup per column with a tree reduction (gamma, beta, loss, mass).
// The target p and the top-k mass, the other two host costs, are in kernels/indexer-target-wgsl.ts.
// The float64 truth stays train/indexer-grad.ts and train/attention-target.ts (test/indexer-grad-gpu.test.ts).

export const TRAIN_THREADS = 128;
const TILE = 16;

export const pad4 = (n: number) => Math.ceil(n / 4) * 4;

/** A uniform of u32 words (and an f32 in the last slot when given); every struct below is 8 words. */
export function trainParams(words: number[], last?: number): ArrayBuffer {
  const buf = new ArrayBuffer(32);
  new Uint32Array(buf, 0, words.length).set(words);
  if (last !== undefined) new Float32Array(buf, 28, 1)[0] = last;
  return buf;
}

export const PARAMS = `struct Params { a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32, x: f32 }
@group(0) @binding(0) var<uniform> params: Params;`;

/** Dispatch (ceil(N/16), ceil(M/16)). Params a = M, b = N, c = K. Bindings: params, A, B, C.
 * 'proj': A = h [M=L, K=hidden], B = W [N=R, K] (C = h W^T). 'back': A = dY [K=L, M=R], B = h [K, N=hidden]. */
export function indexerMatmulWgsl(layout: 'proj' | 'back'): string {
  const a = layout === 'proj' ? 'A[m * params.c + k]' : 'A[k * params.a + m]';
  const b = layout === 'proj' ? 'B[n * params.c + k]' : 'B[k * params.b + n]';
  return /* wgsl */ `
${PARAMS}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
var<workgroup> As: array<f32, ${TILE * TILE}>;
var<workgroup> Bs: array<f32, ${TILE * TILE}>;

fn loadA(m: u32, k: u32) -> f32 { if (m < params.a && k < params.c) { return ${a}; } return 0.0; }
fn loadB(k: u32, n: u32) -> f32 { if (n < params.b && k < params.c) { return ${b}; } return 0.0; }

@compute @workgroup_size(${TILE}, ${TILE})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) li: vec3u) {
  let m = wg.y * ${TILE}u + li.y;
  let n = wg.x * ${TILE}u + li.x;
  var acc = 0.0;
  for (var k0 = 0u; k0 < params.c; k0 += ${TILE}u) {
    As[li.y * ${TILE}u + li.x] = loadA(m, k0 + li.x);
    Bs[li.y * ${TILE}u + li.x] = loadB(k0 + li.y, wg.x * ${TILE}u + li.x);
    workgroupBarrier();
    for (var u = 0u; u < ${TILE}u; u++) { acc += As[li.y * ${TILE}u + u] * Bs[u * ${TILE}u + li.x]; }
    workgroupBarrier();
  }
  if (m < params.a && n < params.b) { C[m * params.b + n] = acc; }
}
`;
}

export interface PrepShape {
  heads: number;
  dim: number;
  /** RoPE's channel pairs (a, b) inside a head. */
  pairs: Array<[number, number]>;
  weightScale: number;
}

/** WGSL: RoPE over the pairs of the D_I-wide row of `row` at `at` (`sign` -1 rotates back: the backward). */
const rotatePairs = (row: string, at: string, sign = '') => `for (var i = 0u; i < NP; i++) {
      let cs = rope[t * NP + i];
      let r = rot(cs.x, ${sign}cs.y, ${row}[${at} + PAIRS[i].x], ${row}[${at} + PAIRS[i].y]);
      ${row}[${at} + PAIRS[i].x] = r.x;
      ${row}[${at} + PAIRS[i].y] = r.y;
    }`;

function prepHeader(s: PrepShape): string {
  const pairs = s.pairs.map(([a, b]) => `vec2u(${a}u, ${b}u)`).join(', ');
  return `${PARAMS}
const IH: u32 = ${s.heads}u;
const DI: u32 = ${s.dim}u;
const R: u32 = ${s.heads * s.dim + s.dim + s.heads}u;
const NP: u32 = ${s.pairs.length}u;
const PAIRS = array<vec2u, ${s.pairs.length}>(${pairs});
const WSCALE: f32 = ${s.weightScale};
fn rot(c: f32, sn: f32, u: f32, v: f32) -> vec2f { return vec2f(u * c - v * sn, u * sn + v * c); }
// The key LayerNorm's mean and 1 / std over the D_I key columns of row y of Y (both kernels bind Y).
fn key_norm(y: u32) -> vec2f {
  var mean = 0.0;
  for (var d = 0u; d < DI; d++) { mean += Y[y + IH * DI + d]; }
  mean /= f32(DI);
  var v = 0.0;
  for (var d = 0u; d < DI; d++) { let c = Y[y + IH * DI + d] - mean; v += c * c; }
  return vec2f(mean, 1.0 / sqrt(v / f32(DI) + 1e-6));
}`;
}

/** Dispatch ceil(L / 128). Params a = L. Bindings: params, Y [L, R], ln [gamma; beta], rope [L, NP] (cos, sin),
 * q [L, H_I D_I], w [L, H_I], k [L, D_I]. */
export function indexerPrepWgsl(s: PrepShape): string {
  return /* wgsl */ `
${prepHeader(s)}
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> ln: array<f32>;
@group(0) @binding(3) var<storage, read> rope: array<vec2f>;
@group(0) @binding(4) var<storage, read_write> q: array<f32>;
@group(0) @binding(5) var<storage, read_write> w: array<f32>;
@group(0) @binding(6) var<storage, read_write> k: array<f32>;

@compute @workgroup_size(${TRAIN_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let t = gid.x;
  if (t >= params.a) { return; }
  let y = t * R;
  for (var x = 0u; x < IH * DI; x++) { q[t * IH * DI + x] = Y[y + x]; }
  for (var j = 0u; j < IH; j++) {
    let at = t * IH * DI + j * DI;
    ${rotatePairs('q', 'at')}
    w[t * IH + j] = Y[y + IH * DI + DI + j] * WSCALE;
  }
  let norm = key_norm(y);
  for (var d = 0u; d < DI; d++) { k[t * DI + d] = (Y[y + IH * DI + d] - norm.x) * norm.y * ln[d] + ln[DI + d]; }
  ${rotatePairs('k', 't * DI')}
}
`;
}

/** Dispatch ceil(L / 128). Params a = L. Bindings: params, Y, ln, rope, dq [L, H_I D_I], dw [L, H_I], dk [L, D_I],
 * dY [L, R] (out), dln [L, 2 D_I] (out: dy xhat, dy). */
export function indexerPrepBackWgsl(s: PrepShape): string {
  return /* wgsl */ `
${prepHeader(s)}
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> ln: array<f32>;
@group(0) @binding(3) var<storage, read> rope: array<vec2f>;
@group(0) @binding(4) var<storage, read> dq: array<f32>;
@group(0) @binding(5) var<storage, read> dw: array<f32>;
@group(0) @binding(6) var<storage, read> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dY: array<f32>;
@group(0) @binding(8) var<storage, read_write> dln: array<f32>;

@compute @workgroup_size(${TRAIN_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let t = gid.x;
  if (t >= params.a) { return; }
  let y = t * R;
  for (var x = 0u; x < IH * DI; x++) { dY[y + x] = dq[t * IH * DI + x]; }
  for (var j = 0u; j < IH; j++) {
    let at = y + j * DI;
    ${rotatePairs('dY', 'at', '-')}
    dY[y + IH * DI + DI + j] = dw[t * IH + j] * WSCALE;
  }
  var g: array<f32, ${s.dim}>;
  for (var d = 0u; d < DI; d++) { g[d] = dk[t * DI + d]; }
  ${rotatePairs('g', '0u', '-')}
  let norm = key_norm(y);
  let mean = norm.x;
  let inv = norm.y;
  // LayerNorm backward: dxhat = dy gamma; dx = inv (dxhat - mean(dxhat) - xhat mean(dxhat xhat)).
  var m1 = 0.0;
  var m2 = 0.0;
  for (var d = 0u; d < DI; d++) {
    let xh = (Y[y + IH * DI + d] - mean) * inv;
    dln[t * 2u * DI + d] = g[d] * xh;
    dln[t * 2u * DI + DI + d] = g[d];
    let dxh = g[d] * ln[d];
    m1 += dxh;
    m2 += dxh * xh;
  }
  m1 /= f32(DI);
  m2 /= f32(DI);
  for (var d = 0u; d < DI; d++) {
    let xh = (Y[y + IH * DI + d] - mean) * inv;
    dY[y + IH * DI + d] = inv * (g[d] * ln[d] - m1 - xh * m2);
  }
}
`;
}

/** Dispatch (C). Params a = T (rows), b = C (columns), c = offset in out. Bindings: params, X [T, C], out. */
export function indexerColumnSumWgsl(): string {
  return /* wgsl */ `
${PARAMS}
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
var<workgroup> red: array<f32, ${TRAIN_THREADS}>;

@compute @workgroup_size(${TRAIN_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let c = wg.x;
  var acc = 0.0;
  for (var t = lid; t < params.a; t += ${TRAIN_THREADS}u) { acc += X[t * params.b + c]; }
  red[lid] = acc;
  workgroupBarrier();
  for (var half = ${TRAIN_THREADS / 2}u; half > 0u; half /= 2u) {
    if (lid < half) { red[lid] += red[lid + half]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[params.c + c] = red[0]; }
}
`;
}
