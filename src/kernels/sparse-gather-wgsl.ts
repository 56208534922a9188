// Exact attention over gathered keys in WGSL (DSA's sparse attention, DeepSeek-V3.2 sec. 2.1): one workgroup
// per (query token, key/value head) serves all G query heads of that KV head (GQA), since the token's key
// list is shared by its heads. Tiles of SPARSE_TILE listed keys are gathered into workgroup memory, scored
// for all G heads, and folded in with FlashAttention-2's online softmax (one rescale per tile); O and LSE
// out. CPU twin: kernels/sparse-gather-cpu.ts. NaN policy (docs/HARDENING.md): a head that scores a NaN or an
// infinity over its listed keys is NaN.
import type { DType } from '../tensor.js';
import { attentionParams, inputType, NON_FINITE_WGSL } from './wgsl-common.js';
import { SPARSE_TILE } from './sparse-gather-cpu.js';

export const SPARSE_THREADS = 64;

/**
 * keyStride: rows per KV head in k and v (a decode cache's capacity); default the key count.
 * The first six words are attentionParams' (nq, nk, group, causal, scale, -inf); then width, dim, stride.
 */
export function sparseGatherParams(p: {
  queries: number;
  keys: number;
  group: number;
  causal: boolean;
  scale: number;
  width: number;
  headDim: number;
  keyStride?: number;
}): ArrayBuffer {
  const buf = new ArrayBuffer(48);
  new Uint8Array(buf).set(new Uint8Array(attentionParams(p)));
  const u = new Uint32Array(buf);
  u[6] = p.width;
  u[7] = p.headDim;
  u[8] = p.keyStride ?? p.keys;
  return buf;
}

export function sparseGatherWgsl(headDim: number, group: number, dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  const D = headDim;
  const BC = SPARSE_TILE;
  const WG = SPARSE_THREADS;
  const NA = Math.ceil((group * D) / WG);
  const pad4 = (n: number) => Math.ceil(n / 4) * 4;
  return /* wgsl */ `${enable}
struct Params { nq: u32, nk: u32, group: u32, causal: u32, scale: f32, neg_inf_bits: u32, width: u32, dim: u32,
                 stride: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read> q: array<${elem}>;
@group(0) @binding(1) var<storage, read> k: array<${elem}>;
@group(0) @binding(2) var<storage, read> v: array<${elem}>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read> idx: array<i32>;
@group(0) @binding(6) var<uniform> params: Params;
${NON_FINITE_WGSL}

const D: u32 = ${D}u;
const G: u32 = ${group}u;
const BC: u32 = ${BC}u;
const WG: u32 = ${WG}u;
const NEG: f32 = -3.0e38;
var<workgroup> ks: array<f32, ${BC * D}>;
var<workgroup> vs: array<f32, ${BC * D}>;
var<workgroup> ps: array<f32, ${pad4(group * BC)}>;
var<workgroup> ms: array<f32, ${pad4(group)}>;
var<workgroup> ls: array<f32, ${pad4(group)}>;
var<workgroup> alphas: array<f32, ${pad4(group)}>;
var<workgroup> bads: array<u32, ${pad4(group)}>; // head g scored a NaN or an infinity
var<workgroup> qs: array<f32, ${pad4(group * D)}>; // the token's G query rows, scaled

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg.x + wg.y * nwg.x;
  if (t >= params.nq) { return; }
  let kvh = wg.z;
  let Dr = params.dim; // == D; a runtime bound keeps lavapipe from unrolling these loops (seconds of compile)
  let h0 = kvh * G;
  var visible = i32(params.nk);
  if (params.causal != 0u) { visible = min(visible, i32(params.nk) - i32(params.nq) + i32(t) + 1); }
  let n = min(params.width, u32(max(visible, 0)));
  for (var g = lid; g < G; g += WG) { ms[g] = NEG; ls[g] = 0.0; bads[g] = 0u; }
  for (var x = lid; x < G * Dr; x += WG) { qs[x] = f32(q[((h0 + x / D) * params.nq + t) * D + x % D]) * params.scale; }
  var acc: array<f32, ${NA}>;
  for (var e0 = 0u; e0 < n; e0 += BC) {
    workgroupBarrier();
    for (var x = lid; x < BC * Dr; x += WG) {
      let e = e0 + x / D;
      var kx = 0.0; var vx = 0.0;
      if (e < n) {
        let at = (kvh * params.stride + u32(idx[t * params.width + e])) * D + x % D;
        kx = f32(k[at]); vx = f32(v[at]);
      }
      ks[x] = kx; vs[x] = vx;
    }
    workgroupBarrier();
    for (var x = lid; x < G * BC; x += WG) {
      let g = x / BC; let j = x % BC;
      var sc = NEG;
      if (e0 + j < n) {
        var dot = 0.0;
        for (var d = 0u; d < Dr; d++) { dot += qs[g * D + d] * ks[j * D + d]; }
        sc = dot;
      }
      ps[x] = sc;
    }
    workgroupBarrier();
    for (var g = lid; g < G; g += WG) {
      var tmax = NEG;
      for (var j = 0u; j < BC; j++) {
        tmax = max(tmax, ps[g * BC + j]);
        if (non_finite(ps[g * BC + j])) { bads[g] = 1u; }
      }
      let m_new = max(ms[g], tmax);
      let alpha = exp(ms[g] - m_new);
      var l = ls[g] * alpha;
      for (var j = 0u; j < BC; j++) {
        let p = select(exp(ps[g * BC + j] - m_new), 0.0, ps[g * BC + j] == NEG);
        ps[g * BC + j] = p;
        l += p;
      }
      ls[g] = l; ms[g] = m_new; alphas[g] = alpha;
    }
    workgroupBarrier();
    for (var a = 0u; a < ${NA}u; a++) {
      let x = lid + a * WG;
      if (x < G * D) {
        let g = x / D; let d = x % D;
        var s = acc[a] * alphas[g];
        for (var j = 0u; j < BC; j++) { s += ps[g * BC + j] * vs[j * D + d]; }
        acc[a] = s;
      }
    }
  }
  workgroupBarrier();
  for (var a = 0u; a < ${NA}u; a++) {
    let x = lid + a * WG;
    if (x < G * D) {
      let g = x / D; let d = x % D;
      let l = ls[g];
      o[((h0 + g) * params.nq + t) * D + d] = select(select(0.0, acc[a] / l, l > 0.0), nan_value(), bads[g] != 0u);
    }
  }
  for (var g = lid; g < G; g += WG) {
    let l = ls[g];
    let lse_g = select(bitcast<f32>(params.neg_inf_bits), ms[g] + log(l), l > 0.0);
    lse[(h0 + g) * params.nq + t] = select(lse_g, nan_value(), bads[g] != 0u);
  }
}
`;
}
