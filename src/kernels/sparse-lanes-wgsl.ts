// Exact attention over gathered keys with register-resident rows (DSA's sparse attention, DeepSeek-V3.2
// sec. 2.1; the split-KV merge is flash-decoding, Dao et al. 2023). L lanes of one subgroup own one query
// head: each holds D/L dims of the scaled query and of the accumulator, loads its D/L dims of a listed key
// straight from global memory (vec4 loads, coalesced over the L lanes; the G heads of a KV head read the
// same row), butterfly-reduces the dot with subgroupShuffleXor and runs the online softmax per key (one exp:
// alpha or p is 1; the accumulator is rescaled only on a new maximum) redundantly per lane: no workgroup
// memory and no barrier in the key loop. A workgroup of G*L*S threads serves the G heads of one (token, KV
// head, split); its S sub-splits take every S-th key and are merged at the end through workgroup memory.
// Several splits per (token, KV head) write partial states that the one merge kernel (merge-wgsl.ts) folds
// by log-sum-exp. CPU twin: kernels/sparse-lanes-cpu.ts. NaN policy (docs/HARDENING.md): a head that scores a
// NaN or an infinity over its listed keys writes a NaN state (a flag per lane, joined over the sub-splits).
import type { DType } from '../tensor.js';
import { inputType, NON_FINITE_WGSL } from './wgsl-common.js';
import { sparseGatherParams } from './sparse-gather-wgsl.js';

/** Threads per workgroup the kernel aims at (G*L*S, S >= 1). */
export const LANES_TARGET_THREADS = 64;
/** Keys unrolled per loop iteration of each sub-split (loads of the next key in flight). */
export const LANES_UNROLL = 2;

export interface LanesLayout {
  lanes: number;
  /** Sub-splits per workgroup (S). */
  subSplits: number;
  threads: number;
}

/** Lanes per head L and sub-splits S for head dim D and group G, or undefined when this kernel cannot run. */
export function lanesLayout(headDim: number, group: number, lanes: number): LanesLayout | undefined {
  if (lanes < 1 || (lanes & (lanes - 1)) !== 0 || headDim % (4 * lanes) !== 0) return undefined;
  if (group * lanes > 256) return undefined;
  const subSplits = Math.max(1, Math.floor(LANES_TARGET_THREADS / (group * lanes)));
  return { lanes, subSplits, threads: group * lanes * subSplits };
}

/** Uniforms: as sparseGatherParams, plus splits and the heads of the chunk (partial states' stride). */
export function sparseLanesParams(p: {
  queries: number;
  keys: number;
  group: number;
  causal: boolean;
  scale: number;
  width: number;
  headDim: number;
  keyStride: number;
  splits: number;
  heads: number;
}): ArrayBuffer {
  const buf = sparseGatherParams(p);
  const u = new Uint32Array(buf);
  u[9] = p.splits;
  u[10] = p.heads;
  u[11] = 0x7fc00000; // NaN
  return buf;
}

const PARAMS =
  'struct Params { nq: u32, nk: u32, group: u32, causal: u32, scale: f32, neg_inf_bits: u32, width: u32, dim: u32, ' +
  'stride: u32, splits: u32, heads: u32, nan_bits: u32 }';

/**
 * Dispatch (tokens wrapped over x/y, kvHeads * splits on z). o/lse receive split w's state at row offset
 * w * heads * nq (with one split: the final state).
 */
export function sparseLanesWgsl(headDim: number, group: number, dtype: DType, layout: LanesLayout): string {
  const { enable, elem } = inputType(dtype);
  const { lanes: L, subSplits: S, threads: WG } = layout;
  const D4 = headDim / 4;
  const C = D4 / L; // vec4 chunks per lane
  const U = LANES_UNROLL;
  const chunks = (f: (c: number) => string) => Array.from({ length: C }, (_, c) => f(c)).join('\n    ');
  const butterfly = (x: string) =>
    Array.from({ length: Math.log2(L) }, (_, i) => `${x} += subgroupShuffleXor(${x}, ${L >> (i + 1)}u);`).join(' ');
  // One loop iteration: U keys per sub-split, all their index, K and V loads issued before any arithmetic
  // (several rows in flight per lane), then dot, butterfly and the online softmax key by key.
  const us = Array.from({ length: U }, (_, u) => u);
  const body = [
    ...us.map(
      (u) => `let e${u} = e_begin + sub + (i + ${u}u) * S;
    let valid${u} = e${u} < e_end;
    let kb${u} = (kbase + u32(idx[row + select(e_begin, e${u}, valid${u})])) * D4 + lane;`,
    ),
    ...us.map((u) => chunks((c) => `let k${u}_${c} = vec4<f32>(k[kb${u} + ${c * L}u]);`)),
    ...us.map((u) => chunks((c) => `let v${u}_${c} = vec4<f32>(v[kb${u} + ${c * L}u]);`)),
    ...us.map(
      (u) => `var s${u} = ${Array.from({ length: C }, (_, c) => `dot(qr[${c}], k${u}_${c})`).join(' + ')};
    ${butterfly(`s${u}`)}`,
    ),
    // A new maximum (rare after the first keys: about ln n times) rescales; otherwise one fma per element.
    ...us.map(
      (u) => `{
      bad = bad || (valid${u} && non_finite(s${u}));
      let big = valid${u} && s${u} > m;
      let ex = exp(-abs(s${u} - m));
      if (big) {
        l *= ex;
        ${chunks((c) => `acc[${c}] *= ex;`)}
      }
      let p = select(select(ex, 1.0, big), 0.0, !valid${u});
      m = select(m, max(m, s${u}), valid${u});
      l += p;
      ${chunks((c) => `acc[${c}] = fma(vec4<f32>(p), v${u}_${c}, acc[${c}]);`)}
    }`,
    ),
  ].join('\n    ');
  return /* wgsl */ `${enable}
enable subgroups;
${PARAMS}
@group(0) @binding(0) var<storage, read> q: array<vec4<${elem}>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<${elem}>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<${elem}>>;
@group(0) @binding(3) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read> idx: array<i32>;
@group(0) @binding(6) var<uniform> params: Params;
${NON_FINITE_WGSL}

const D4: u32 = ${D4}u;
const G: u32 = ${group}u;
const L: u32 = ${L}u;
const S: u32 = ${S}u;
const C: u32 = ${C}u;
const NEG: f32 = -3.0e38;
var<workgroup> mw: array<f32, ${Math.ceil((S * group) / 4) * 4}>;
var<workgroup> lw: array<f32, ${Math.ceil((S * group) / 4) * 4}>;
var<workgroup> bw: array<u32, ${Math.ceil((S * group) / 4) * 4}>;
var<workgroup> accw: array<vec4<f32>, ${S > 1 ? S * group * L * C : 1}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
  let t = wg.x + wg.y * nwg.x;
  if (t >= params.nq) { return; }
  let kvh = wg.z / params.splits;
  let split = wg.z % params.splits;
  let lane = lid % L;
  let g = (lid / L) % G;
  let sub = lid / (L * G);
  let h = kvh * G + g;
  var visible = i32(params.nk);
  if (params.causal != 0u) { visible = min(visible, i32(params.nk) - i32(params.nq) + i32(t) + 1); }
  let n = min(params.width, u32(max(visible, 0)));
  let per = (n + params.splits - 1u) / params.splits;
  let e_begin = min(n, split * per);
  let e_end = min(n, e_begin + per);
  let qb = (h * params.nq + t) * D4 + lane;
  var qr: array<vec4<f32>, ${C}>;
  var acc: array<vec4<f32>, ${C}>;
  ${chunks((c) => `qr[${c}] = vec4<f32>(q[qb + ${c * L}u]) * params.scale;`)}
  var m = NEG;
  var l = 0.0;
  var bad = false;
  let kbase = kvh * params.stride;
  let row = t * params.width;
  // Trip count uniform over the workgroup (shuffles stay in uniform control flow); tails are masked.
  let steps = (e_end - e_begin + S - 1u) / S;
  for (var i = 0u; i < steps; i += ${U}u) {
    ${body}
  }
  ${
    S > 1
      ? /* wgsl */ `
  if (lane == 0u) { mw[sub * G + g] = m; lw[sub * G + g] = l; bw[sub * G + g] = select(0u, 1u, bad); }
  ${chunks((c) => `accw[((sub * G + g) * L + lane) * C + ${c}u] = acc[${c}];`)}
  workgroupBarrier();
  if (sub != 0u) { return; }
  var mm = NEG;
  for (var r = 0u; r < S; r++) { mm = max(mm, mw[r * G + g]); bad = bad || bw[r * G + g] != 0u; }
  l = 0.0;
  ${chunks((c) => `acc[${c}] = vec4<f32>(0.0);`)}
  for (var r = 0u; r < S; r++) {
    let w = exp(mw[r * G + g] - mm);
    l += lw[r * G + g] * w;
    ${chunks((c) => `acc[${c}] += accw[((r * G + g) * L + lane) * C + ${c}u] * w;`)}
  }
  m = mm;`
      : ''
  }
  let orow = (split * params.heads + h) * params.nq + t;
  // Subgroups narrower than L (the host probes against this) would mix heads: NaN out, never a wrong number.
  let inv = select(select(0.0, 1.0 / l, l > 0.0), bitcast<f32>(params.nan_bits), sg < L);
  ${chunks((c) => `o[orow * D4 + lane + ${c * L}u] = select(acc[${c}] * inv, vec4<f32>(nan_value()), bad);`)}
  if (lane == 0u) {
    lse[orow] = select(select(bitcast<f32>(params.neg_inf_bits), m + log(l), l > 0.0), nan_value(), bad);
  }
}
`;
}
