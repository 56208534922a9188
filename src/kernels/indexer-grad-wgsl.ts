// The lightning indexer's warm-up loss and its backward on WebGPU: the O(queries x keys x H_I x D_I) part of
// DeepSeek-V3.2's dense warm-up (tech report sec. 2.1.1), for one block of queries t0..t0+rows-1 against the
// keys 0..L-1 of one sequence (causal: query t sees keys s <= t):
//   I[t,s] = sum_j w[t,j] ReLU(q[t,j] . k[s])      loss_t = sum_s p[t,s] (log p[t,s] - log softmax_s I[t,:])
//   dI[t,s] = (softmax_s I[t,:] - p[t,s]) * dscale (dscale = gradScale / queries)
//   G[t,j,s] = dI[t,s] w[t,j] [q[t,j].k[s] > 0]
//   dq[t,j,:] = sum_s G[t,j,s] k[s]     dw[t,j] = sum_s dI[t,s] ReLU(q[t,j].k[s])     dk[s,:] += sum_{t,j} G[t,j,s] q[t,j]
// Three kernels per block, in one pass (each dispatch sees the previous one's writes):
//   row:  a workgroup per query: scores (written out for the top-k mass, indexer-train-wgsl.ts), max, log-sum-exp, the KL row
//         and dI, with workgroup tree reductions;
//   back: a workgroup per query: keys in tiles of TILE; threads recompute the dots of (head, key) pairs, stage
//         G and dI ReLU(dot) in workgroup memory and write G to [rows, H_I, L]; then each thread owns some (j, e)
//         of dq and some j of dw and folds the tile in (no atomics: every accumulator has one owner);
//   keys: a thread per (s, e) with s < t0 + rows: dk[s,e] += sum over the block's queries t >= s and heads of
//         G q (only G entries with s <= t are read, so stale ones from an earlier block never count).
// Everything is f32. The float64 truth is train/indexer-grad.ts (the CPU backend); test/indexer-grad-gpu.test.ts
// holds this to it. Layouts: q [L, H_I, D_I], w [L, H_I], k [L, D_I], p/scores/dI [rows, L], loss [L].

export const GRAD_THREADS = 128;
/** Keys per tile of the back kernel. */
export const GRAD_TILE = 32;

export interface IndexerGradShape {
  heads: number;
  dim: number;
}

/** Keep in sync with the Params struct below. */
export function indexerGradParams(p: { t0: number; rows: number; L: number; nx: number; dscale: number }): ArrayBuffer {
  const buf = new ArrayBuffer(32);
  new Uint32Array(buf, 0, 4).set([p.t0, p.rows, p.L, p.nx]);
  new Float32Array(buf, 16, 1)[0] = p.dscale;
  return buf;
}

/** Workgroup bytes the back kernel needs (the largest of the three): checked against the device limit. */
export function indexerGradWorkgroupBytes(s: IndexerGradShape): number {
  return 4 * (2 * pad4(s.heads * s.dim) + 2 * pad4(s.heads * GRAD_TILE) + 2 * pad4(s.heads));
}

const pad4 = (n: number) => Math.ceil(n / 4) * 4;

const PARAMS = `struct Params { t0: u32, rows: u32, L: u32, nx: u32, dscale: f32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> params: Params;`;

function header(s: IndexerGradShape): string {
  return `const IH: u32 = ${s.heads}u;
const DI: u32 = ${s.dim}u;
const WG: u32 = ${GRAD_THREADS}u;
const TILE: u32 = ${GRAD_TILE}u;`;
}

/** The start of the two per-query kernels (row, back): the uniform, q, w and k, their own `bindings` (4-7),
 * the shape constants and the staged query (qs, ws). */
function perQueryHead(s: IndexerGradShape, bindings: string): string {
  return `${PARAMS}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
${bindings}
${header(s)}
var<workgroup> qs: array<f32, ${pad4(s.heads * s.dim)}>;
var<workgroup> ws: array<f32, ${pad4(s.heads)}>;`;
}

/** Stages query t's index queries and weights in workgroup memory (qs, ws). */
const STAGE_QUERY = `
  for (var x = lid; x < IH * DI; x += WG) { qs[x] = q[t * IH * DI + x]; }
  for (var x = lid; x < IH; x += WG) { ws[x] = w[t * IH + x]; }
  workgroupBarrier();`;

/** Dispatch (rows). Bindings: params, q, w, k, p, scores, dI, loss. */
export function indexerGradRowWgsl(s: IndexerGradShape): string {
  return /* wgsl */ `
${perQueryHead(
  s,
  `@group(0) @binding(4) var<storage, read> p: array<f32>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;
@group(0) @binding(6) var<storage, read_write> dI: array<f32>;
@group(0) @binding(7) var<storage, read_write> loss: array<f32>;`,
)}
var<workgroup> red: array<f32, ${GRAD_THREADS}>;

fn reduce(lid: u32, v: f32, is_max: bool) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    if (lid < half) { red[lid] = select(red[lid] + red[lid + half], max(red[lid], red[lid + half]), is_max); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(${GRAD_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x;
  let t = params.t0 + r;
  let n = t + 1u;
  let row = r * params.L;
  ${STAGE_QUERY}
  var m = -3.0e38;
  for (var s = lid; s < n; s += WG) {
    var score = 0.0;
    for (var j = 0u; j < IH; j++) {
      var d = 0.0;
      for (var e = 0u; e < DI; e++) { d += qs[j * DI + e] * k[s * DI + e]; }
      if (d > 0.0) { score += ws[j] * d; }
    }
    scores[row + s] = score;
    m = max(m, score);
  }
  m = reduce(lid, m, true);
  var z = 0.0;
  for (var s = lid; s < n; s += WG) { z += exp(scores[row + s] - m); }
  let logz = m + log(reduce(lid, z, false));
  var l = 0.0;
  for (var s = lid; s < n; s += WG) {
    let ps = p[row + s];
    let lq = scores[row + s] - logz;
    if (ps > 0.0) { l += ps * (log(ps) - lq); }
    dI[row + s] = (exp(lq) - ps) * params.dscale;
  }
  l = reduce(lid, l, false);
  if (lid == 0u) { loss[t] = l; }
}
`;
}

/** Dispatch (rows). Bindings: params, q, w, k, dI, dq, dw, G. */
export function indexerGradBackWgsl(s: IndexerGradShape): string {
  return /* wgsl */ `
${perQueryHead(
  s,
  `@group(0) @binding(4) var<storage, read> dI: array<f32>;
@group(0) @binding(5) var<storage, read_write> dq: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw: array<f32>;
@group(0) @binding(7) var<storage, read_write> G: array<f32>;`,
)}
var<workgroup> gs: array<f32, ${pad4(s.heads * GRAD_TILE)}>;
var<workgroup> rs: array<f32, ${pad4(s.heads * GRAD_TILE)}>;
var<workgroup> dqs: array<f32, ${pad4(s.heads * s.dim)}>;
var<workgroup> dws: array<f32, ${pad4(s.heads)}>;

@compute @workgroup_size(${GRAD_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x;
  let t = params.t0 + r;
  let n = t + 1u;
  let row = r * params.L;
  for (var x = lid; x < IH * DI; x += WG) { dqs[x] = 0.0; }
  for (var x = lid; x < IH; x += WG) { dws[x] = 0.0; }
  ${STAGE_QUERY}
  for (var s0 = 0u; s0 < n; s0 += TILE) {
    for (var x = lid; x < IH * TILE; x += WG) {
      let j = x / TILE;
      let s = s0 + x % TILE;
      var gv = 0.0;
      var rv = 0.0;
      if (s < n) {
        var d = 0.0;
        for (var e = 0u; e < DI; e++) { d += qs[j * DI + e] * k[s * DI + e]; }
        if (d > 0.0) {
          let di = dI[row + s];
          gv = di * ws[j];
          rv = di * d;
        }
        G[(r * IH + j) * params.L + s] = gv;
      }
      gs[x] = gv;
      rs[x] = rv;
    }
    workgroupBarrier();
    let span = min(TILE, n - s0);
    for (var x = lid; x < IH * DI; x += WG) {
      let j = x / DI;
      let e = x % DI;
      var acc = 0.0;
      for (var u = 0u; u < span; u++) { acc += gs[j * TILE + u] * k[(s0 + u) * DI + e]; }
      dqs[x] += acc;
    }
    for (var j = lid; j < IH; j += WG) {
      var acc = 0.0;
      for (var u = 0u; u < span; u++) { acc += rs[j * TILE + u]; }
      dws[j] += acc;
    }
    workgroupBarrier();
  }
  for (var x = lid; x < IH * DI; x += WG) { dq[t * IH * DI + x] = dqs[x]; }
  for (var x = lid; x < IH; x += WG) { dw[t * IH + x] = dws[x]; }
}
`;
}

/** Dispatch (nx, ny) workgroups covering (t0 + rows) x D_I threads. Bindings: params, q, G, dk. */
export function indexerGradKeysWgsl(s: IndexerGradShape): string {
  return /* wgsl */ `
${PARAMS}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> dk: array<f32>;
${header(s)}

@compute @workgroup_size(${GRAD_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = (wg.y * params.nx + wg.x) * WG + lid;
  let s = idx / DI;
  let e = idx % DI;
  let t1 = params.t0 + params.rows;
  if (s >= t1) { return; }
  var acc = 0.0;
  for (var t = max(s, params.t0); t < t1; t++) {
    let r = t - params.t0;
    for (var j = 0u; j < IH; j++) { acc += G[(r * IH + j) * params.L + s] * q[(t * IH + j) * DI + e]; }
  }
  dk[idx] += acc;
}
`;
}
