// The training-free lightning indexer's vectors made on the GPU from a chunk's rotated q and k (the indexer of
// model/caches/dsa-indexer.ts: index head j = KV head j looks at `per` channels C_j of that head; DeepSeek-V3.2
// sec. 2.1 defines I[t,s] = sum_j w[t,j] ReLU(q_I[j,t] . k_I[s])), written straight into a resident cache:
//   keys:    k_I[s] = concat_j k_j[s][C_j], one thread per token, appended at row start + t;
//   queries: q_I[j,t] = mean over the group's query heads of q_h[t][C_j], one thread per (head, token).
// int8: one power-of-two scale per vector (kernels/dsa-indexer-cpu.ts int8Scale; exact, so this matches the
// CPU quantiser bit for bit; a vector holding a NaN or an infinity gets a NaN scale and zero values, as
// quantizeInt8, since WGSL's NaN to integer conversion is undefined), values rounded half up, four to a u32, each head's slot padded to whole words
// (the dots of head j read only its slot: D_I / H_I channels, not D_I). The query's weight is its scale alone:
// the training-free w = 1/sqrt(D) is one positive constant per layer and does not change the ranking.
// float: f32 vectors, weight 1.
import type { DType } from '../tensor.js';
import type { IndexerPrecision } from './dsa-indexer-cpu.js';
import { inputType, NON_FINITE_WGSL } from './wgsl-common.js';

export const PROJECT_THREADS = 64;

export interface IndexerSlots {
  precision: IndexerPrecision;
  /** Index heads H_I (one per KV head). */
  heads: number;
  /** Channels per head (2 x rotary pairs), or a trained indexer's D_I. */
  per: number;
  /** One key of `per` channels shared by every head (a trained indexer, kernels/dsa-trained-project-wgsl.ts);
   * else the training-free layout, key rows of H_I slots with head j's dot over slot j only. */
  shared?: boolean;
}

/** u32 words of one head's slot (int8) or f32 values (float). */
export function slotWords(s: IndexerSlots): number {
  return s.precision === 'int8' ? Math.ceil(s.per / 4) : s.per;
}

/** Uniform block of both kernels (after their storage bindings); keep in sync with projectParams(). */
function paramsWgsl(binding: number): string {
  return /* wgsl */ `
struct Params { tokens: u32, start: u32, dim: u32, group: u32, inv_group: f32, neg_inf_bits: u32, pad1: u32, pad2: u32 }
@group(0) @binding(${binding}) var<uniform> params: Params;`;
}

export function projectParams(p: { tokens: number; start: number; headDim: number; group: number }): ArrayBuffer {
  const buf = new ArrayBuffer(32);
  const u = new Uint32Array(buf);
  [u[0], u[1], u[2], u[3]] = [p.tokens, p.start, p.headDim, p.group];
  new Float32Array(buf)[4] = 1 / p.group;
  u[5] = 0xff800000; // -Infinity's bits: nan_value() is made from them at run time
  return buf;
}

/** The int8 scale (int8Scale) and round-half-up of an exactly scaled value (x * 2^-e is exact). */
export const QUANT_WGSL = /* wgsl */ `
fn int8_scale_exp(amax: f32) -> i32 {
  let b = bitcast<u32>(amax);
  return i32((b >> 23u) & 255u) - 133 + select(0, 1, (b & 0x7fffffu) > 0x7e0000u);
}
fn quant8(x: f32, inv: f32) -> u32 {
  let r = x * inv;
  let a = abs(r);
  let n = floor(a);
  let f = a - n;
  let up = select(f > 0.5, f >= 0.5, r >= 0.0); // Math.round: ties toward +infinity
  let m = min(n + select(0.0, 1.0, up), 127.0);
  return u32(select(-i32(m), i32(m), r >= 0.0)) & 255u;
}
const TINY: u32 = 0x03800000u; // 2^-120: smaller maxima quantise to a zero vector
${NON_FINITE_WGSL}`;

function slotsWgsl(s: IndexerSlots): string {
  return `const IH: u32 = ${s.heads}u;
const PER: u32 = ${s.per}u;
const SW: u32 = ${slotWords(s)}u;`;
}

/** Index keys of the chunk's k [Hkv, T, D] into ik rows start.. (int8: + kscale). Dispatch ceil(T / 64). */
export function indexKeysWgsl(s: IndexerSlots, dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  const int8 = s.precision === 'int8';
  return /* wgsl */ `${enable}
@group(0) @binding(0) var<storage, read> k: array<${elem}>;
@group(0) @binding(1) var<storage, read> channels: array<u32>;
@group(0) @binding(2) var<storage, read_write> ik: array<${int8 ? 'u32' : 'f32'}>;
${int8 ? '@group(0) @binding(3) var<storage, read_write> kscale: array<f32>;' : ''}
${paramsWgsl(int8 ? 4 : 3)}
${slotsWgsl(s)}
${QUANT_WGSL}
fn key_value(j: u32, c: u32, t: u32) -> f32 {
  return f32(k[(j * params.tokens + t) * params.dim + channels[j * PER + c]]);
}

@compute @workgroup_size(${PROJECT_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let t = gid.x;
  if (t >= params.tokens) { return; }
  let row = (params.start + t) * IH * SW;
${
  int8
    ? `  var amax = 0.0;
  var bad = false;
  for (var j = 0u; j < IH; j++) {
    for (var c = 0u; c < PER; c++) { let x = key_value(j, c, t); amax = max(amax, abs(x)); bad = bad || non_finite(x); }
  }
  var scale = 0.0;
  var inv = 0.0;
  if (bitcast<u32>(amax) >= TINY) { let e = int8_scale_exp(amax); scale = ldexp(1.0, e); inv = ldexp(1.0, -e); }
  if (bad) { scale = nan_value(); } // NaN policy: every score of this key is NaN (values 0, never converted)
  for (var j = 0u; j < IH; j++) {
    for (var w = 0u; w < SW; w++) {
      var word = 0u;
      for (var i = 0u; i < 4u; i++) {
        let c = w * 4u + i;
        if (c < PER && !bad) { word |= quant8(key_value(j, c, t), inv) << (8u * i); }
      }
      ik[row + j * SW + w] = word;
    }
  }
  kscale[params.start + t] = scale;`
    : `  for (var j = 0u; j < IH; j++) { for (var c = 0u; c < PER; c++) { ik[row + j * SW + c] = key_value(j, c, t); } }`
}
}
`;
}

/** Index queries q_I [H_I, T, SW] and weights iw [T, H_I] of the chunk's q [Hq, T, D]. Dispatch ceil(H_I T / 64). */
export function indexQueriesWgsl(s: IndexerSlots, dtype: DType): string {
  const { enable, elem } = inputType(dtype);
  const int8 = s.precision === 'int8';
  return /* wgsl */ `${enable}
@group(0) @binding(0) var<storage, read> q: array<${elem}>;
@group(0) @binding(1) var<storage, read> channels: array<u32>;
@group(0) @binding(2) var<storage, read_write> iq: array<${int8 ? 'u32' : 'f32'}>;
@group(0) @binding(3) var<storage, read_write> iw: array<f32>;
${paramsWgsl(4)}
${slotsWgsl(s)}
${QUANT_WGSL}

@compute @workgroup_size(${PROJECT_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let T = params.tokens;
  if (gid.x >= IH * T) { return; }
  let j = gid.x / T;
  let t = gid.x % T;
  // The group's mean, summed in head order as the CPU twin (model/caches/dsa-indexer.ts indexQueries) does.
  var x: array<f32, ${s.per}>;
  for (var c = 0u; c < PER; c++) {
    let ch = channels[j * PER + c];
    var acc = 0.0;
    for (var h = j * params.group; h < (j + 1u) * params.group; h++) {
      acc += f32(q[(h * T + t) * params.dim + ch]) * params.inv_group;
    }
    x[c] = acc;
  }
  let row = (j * T + t) * SW;
${
  int8
    ? `  var amax = 0.0;
  var bad = false;
  for (var c = 0u; c < PER; c++) { amax = max(amax, abs(x[c])); bad = bad || non_finite(x[c]); }
  var scale = 0.0;
  var inv = 0.0;
  if (bitcast<u32>(amax) >= TINY) { let e = int8_scale_exp(amax); scale = ldexp(1.0, e); inv = ldexp(1.0, -e); }
  if (bad) { scale = nan_value(); } // NaN policy: the weight is NaN, so every score of this query is NaN
  for (var w = 0u; w < SW; w++) {
    var word = 0u;
    for (var i = 0u; i < 4u; i++) {
      let c = w * 4u + i;
      if (c < PER && !bad) { word |= quant8(x[c], inv) << (8u * i); }
    }
    iq[row + w] = word;
  }
  iw[t * IH + j] = scale;`
    : `  for (var c = 0u; c < PER; c++) { iq[row + c] = x[c]; }
  iw[t * IH + j] = 1.0;`
}
}
`;
}
