// A trained lightning indexer's vectors made on the GPU from the layer's attention input h (DeepSeek-V3.2 sec.
// 2.1, in the form model/caches/dsa-indexer.ts reads from a model file: q_I = W_q h in H_I heads of D_I, one
// shared key k_I = LayerNorm(W_k h) (eps 1e-6, when the file has k_norm), w = W_proj h / sqrt(H_I D_I), the
// model's RoPE on the first head-dim channels of q_I and k_I), written straight into the resident index cache
// that kernels/dsa-indexer-scores-wgsl.ts reads with a shared key (IndexerSlots.shared).
// One workgroup per token: its H_I D_I + D_I + H_I dots over the hidden size (W = [W_q; W_k; W_proj] stacked,
// then the k_norm weight and bias), the key's LayerNorm, RoPE from a per-token cos/sin table the host makes in
// float64 (as the model's own RoPE: f32 angles lose ~1e-2 rad at 128K), then f32 rows or, int8, one
// power-of-two scale per vector as kernels/dsa-indexer-cpu.ts quantizeInt8 (the query's scale folded into
// its weight, as prepareIndexerQueries; a vector with a NaN or an infinity gets a NaN scale, zero values).
import { QUANT_WGSL, type IndexerSlots, slotWords } from './dsa-indexer-project-wgsl.js';

export const TRAINED_PROJECT_THREADS = 64;

export interface TrainedProjectShape {
  slots: IndexerSlots;
  /** Rotary pairs of the model's head dim (RoPE covers channels of the first head dim only). */
  pairs: number;
  ropeLayout: 'interleaved' | 'half';
}

/** Keep in sync with the Params struct below. */
export function trainedProjectParams(p: {
  tokens: number;
  start: number;
  hidden: number;
  norm: boolean;
  weight: number;
}): ArrayBuffer {
  const buf = new ArrayBuffer(32);
  const u = new Uint32Array(buf);
  [u[0], u[1], u[2], u[3]] = [p.tokens, p.start, p.hidden, p.norm ? 1 : 0];
  new Float32Array(buf)[4] = p.weight;
  u[5] = 0xff800000; // -Infinity's bits: nan_value() is made from them at run time
  return buf;
}

/** Dispatch (T). Bindings: h, w (stacked weights + k_norm), cs, ik, iq, iw, (int8) kscale, params. */
export function trainedProjectWgsl(s: TrainedProjectShape): string {
  const { heads: HI, per: DI, precision } = s.slots;
  const int8 = precision === 'int8';
  const SW = slotWords(s.slots);
  const OUT = HI * DI + DI + HI;
  const pair = s.ropeLayout === 'interleaved' ? 'vec2u(2u * i, 2u * i + 1u)' : 'vec2u(i, i + R)';
  const word = int8 ? 'u32' : 'f32';
  return /* wgsl */ `
struct Params { tokens: u32, start: u32, hidden: u32, norm: u32, weight: f32, neg_inf_bits: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> h: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> cs: array<f32>;
@group(0) @binding(3) var<storage, read_write> ik: array<${word}>;
@group(0) @binding(4) var<storage, read_write> iq: array<${word}>;
@group(0) @binding(5) var<storage, read_write> iw: array<f32>;
${int8 ? '@group(0) @binding(6) var<storage, read_write> kscale: array<f32>;' : ''}
@group(0) @binding(${int8 ? 7 : 6}) var<uniform> params: Params;
const HI: u32 = ${HI}u;
const DI: u32 = ${DI}u;
const SW: u32 = ${SW}u;
const R: u32 = ${s.pairs}u;
const K0: u32 = HI * DI;          // the key's values after the H_I query heads
const W0: u32 = HI * DI + DI;     // then the H_I weights
const OUT: u32 = ${OUT}u;
const WG: u32 = ${TRAINED_PROJECT_THREADS}u;
${QUANT_WGSL}
var<workgroup> v: array<f32, ${Math.ceil(OUT / 4) * 4}>;
var<workgroup> stats: array<f32, 4>;

@compute @workgroup_size(${TRAINED_PROJECT_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg.x;
  let T = params.tokens;
  let H = params.hidden;
  for (var o = lid; o < OUT; o += WG) {
    var acc = 0.0;
    for (var c = 0u; c < H; c++) { acc += w[o * H + c] * h[t * H + c]; }
    v[o] = acc;
  }
  workgroupBarrier();
  if (params.norm == 1u && lid == 0u) {
    var mean = 0.0;
    for (var d = 0u; d < DI; d++) { mean += v[K0 + d]; }
    mean /= f32(DI);
    var sq = 0.0;
    for (var d = 0u; d < DI; d++) { sq += (v[K0 + d] - mean) * (v[K0 + d] - mean); }
    stats[0] = mean;
    stats[1] = inverseSqrt(sq / f32(DI) + 1e-6);
  }
  workgroupBarrier();
  if (params.norm == 1u) {
    let g = OUT * H; // k_norm weight [DI] then bias [DI] after the stacked matrix
    for (var d = lid; d < DI; d += WG) { v[K0 + d] = (v[K0 + d] - stats[0]) * stats[1] * w[g + d] + w[g + DI + d]; }
  }
  workgroupBarrier();
  // RoPE on the first head-dim channels of each query head and of the key (vector HI is the key, at K0).
  for (var x = lid; x < (HI + 1u) * R; x += WG) {
    let base = (x / R) * DI;
    let i = x % R;
    let ab = ${pair};
    let co = cs[t * R + i];
    let si = cs[(T + t) * R + i];
    let p = v[base + ab.x];
    let q = v[base + ab.y];
    v[base + ab.x] = p * co - q * si;
    v[base + ab.y] = p * si + q * co;
  }
  workgroupBarrier();
${int8 ? int8Writes() : floatWrites()}
}
`;
}

function floatWrites(): string {
  return `  for (var d = lid; d < DI; d += WG) { ik[(params.start + t) * DI + d] = v[K0 + d]; }
  for (var x = lid; x < HI * DI; x += WG) { iq[((x / DI) * T + t) * DI + x % DI] = v[x]; }
  for (var j = lid; j < HI; j += WG) { iw[t * HI + j] = v[W0 + j] * params.weight; }`;
}

/** Thread e < H_I + 1 quantises vector e (query head e, or the key for e = H_I) whole: D_I is small. */
function int8Writes(): string {
  return `  let e = lid;
  if (e <= HI) {
    let base = e * DI;
    var amax = 0.0;
    var bad = false;
    for (var d = 0u; d < DI; d++) { amax = max(amax, abs(v[base + d])); bad = bad || non_finite(v[base + d]); }
    var scale = 0.0;
    var inv = 0.0;
    if (bitcast<u32>(amax) >= TINY) { let x = int8_scale_exp(amax); scale = ldexp(1.0, x); inv = ldexp(1.0, -x); }
    if (bad) { scale = nan_value(); } // NaN policy: every score this vector enters is NaN
    let row = select((e * T + t) * SW, (params.start + t) * SW, e == HI);
    for (var k = 0u; k < SW; k++) {
      var word = 0u;
      for (var b = 0u; b < 4u; b++) {
        let d = k * 4u + b;
        if (d < DI && !bad) { word |= quant8(v[base + d], inv) << (8u * b); }
      }
      if (e == HI) { ik[row + k] = word; } else { iq[row + k] = word; }
    }
    if (e == HI) { kscale[params.start + t] = scale; } else { iw[t * HI + e] = v[W0 + e] * params.weight * scale; }
  }`;
}
