// Split-KV flash decoding, version 3 (Dao, Haziza, Massa, Sizov 2023, "Flash-Decoding for long-context
// inference"; the structure of FlashInfer's and llama.cpp's decode kernels, no code copied): one query per
// head over a KV cache read in place, written to be bound by memory bandwidth rather than load latency.
// A workgroup of 128 threads takes one split of one KV head's keys for HPW of its query heads (GQA: the keys
// are read once for all of them; a group that HPW does not divide leaves idle heads, never stored). The cache
// is read in 16-byte words (8 f16 as vec4<u32>, or 4 f32; narrower words when D is not a multiple, down to one
// element for an odd D), every thread loading all its words of a chunk into registers before using them:
// - scores: L lanes (up to 8, a subgroup-aligned team) per key, each lane a slice of the key's words, so 8 lanes
//   read a 128-byte row at once; the lanes' partial dots are summed by subgroupShuffleXor; a tile of BC keys
//   is scored into workgroup memory (one barrier);
// - P V: threads own a word column of V and a slice of the tile's keys (consecutive threads read consecutive
//   words of a row: coalesced); each keeps its own online-softmax state (FlashAttention-2's m, l, O) over
//   its keys and all HPW heads, so no reduction or barrier stands between tiles;
// - at the end of the split the slices' states are merged once (the spine's merge: O = sum exp(m_s - M) O_s).
// It writes the partial states of version 1 (po [Hq, splits, D] normalised, plse [Hq, splits]), so
// flash-decode-wgsl.ts's merge folds the splits, and it keeps the same NaN policy (docs/HARDENING.md): a head
// whose split scores a NaN or an infinity writes a NaN state (a per-head bit, set where the score is made).
// Checked against the float64 reference beside versions 1 and 2 (test/flash-decode.test.ts).
import type { DType } from '../tensor.js';
import { decodePartialBindings } from './flash-decode-wgsl.js';

const THREADS = 128;
/** Keys per tile (scored together, then weighted into the states). */
const TILE = 128;
/** Query heads per workgroup at most. */
const MAX_HEADS_PER_WORKGROUP = 8;
/** Registers of loaded words per thread and chunk at most (loads in flight before their first use). */
const WORDS_IN_FLIGHT = 16;

/** Query heads per workgroup: the group, or its share of ceil(group / 8) workgroups, rounded up to a power of 2. */
export function decodeV3HeadsPerWorkgroup(group: number): number {
  const share = Math.ceil(group / Math.ceil(group / MAX_HEADS_PER_WORKGROUP));
  return 2 ** Math.ceil(Math.log2(share));
}

/** Workgroups per KV head. */
function workgroupsPerKvHead(group: number): number {
  return Math.ceil(group / decodeV3HeadsPerWorkgroup(group));
}

/** Workgroups: (splits, KV heads x workgroups per KV head). */
export function decodeV3Grid(splits: number, heads: number, kvHeads: number): [number, number] {
  return [splits, kvHeads * workgroupsPerKvHead(heads / kvHeads)];
}

/** Lanes per key: the largest power of 2 up to 8 within the device's smallest subgroup (1 without subgroups). */
export function decodeV3Lanes(subgroupMinSize: number): number {
  let lanes = 1;
  while (lanes < 8 && lanes * 2 <= subgroupMinSize) lanes *= 2;
  return lanes;
}

/** Elements per word: 16 bytes where D allows it, else the widest word that divides D. */
function elementsPerWord(headDim: number, dtype: DType): number {
  for (const e of dtype === 'f16' ? [8, 4, 2] : [4, 2]) if (headDim % e === 0) return e;
  return 1;
}

/** A word's WGSL type and how its elements become vec4<f32> halves (h 0: elements 0-3, h 1: 4-7). */
function wordWgsl(epw: number, dtype: DType): { type: string; unpack: (w: string, h: number) => string } {
  if (dtype === 'f32') {
    const type = epw === 4 ? 'vec4<f32>' : epw === 2 ? 'vec2<f32>' : 'f32';
    return { type, unpack: (w) => (epw === 4 ? w : epw === 2 ? `vec4(${w}, 0.0, 0.0)` : `vec4(${w}, 0.0, 0.0, 0.0)`) };
  }
  if (epw === 8)
    return {
      type: 'vec4<u32>',
      unpack: (w, h) =>
        h === 0
          ? `vec4(unpack2x16float(${w}.x), unpack2x16float(${w}.y))`
          : `vec4(unpack2x16float(${w}.z), unpack2x16float(${w}.w))`,
    };
  if (epw === 4) return { type: 'vec2<u32>', unpack: (w) => `vec4(unpack2x16float(${w}.x), unpack2x16float(${w}.y))` };
  if (epw === 2) return { type: 'u32', unpack: (w) => `vec4(unpack2x16float(${w}), 0.0, 0.0)` };
  return { type: 'f16', unpack: (w) => `vec4(f32(${w}), 0.0, 0.0, 0.0)` };
}

/** The layout one (D, dtype, group, lanes) compiles to (exported for the tests' checks of the chunking). */
export function decodeV3Layout(headDim: number, dtype: DType, group: number, lanes: number) {
  const epw = elementsPerWord(headDim, dtype);
  const words = headDim / epw;
  const halves = epw === 8 ? 2 : 1;
  const wordsPerLane = Math.ceil(words / lanes);
  const keysPerTeam = TILE / (THREADS / lanes);
  const scoreChunk = Math.max(1, Math.min(keysPerTeam, Math.floor(WORDS_IN_FLIGHT / wordsPerLane)));
  let columns = 1;
  while (columns < words && columns < THREADS) columns *= 2;
  const slices = THREADS / columns;
  const wordsPerThread = Math.ceil(words / columns);
  const keysPerSlice = TILE / slices;
  const valueChunk = Math.max(1, Math.min(keysPerSlice, 8, Math.floor(WORDS_IN_FLIGHT / wordsPerThread)));
  const hpw = decodeV3HeadsPerWorkgroup(group);
  return {
    epw,
    words,
    halves,
    wordsPerLane,
    keysPerTeam,
    scoreChunk,
    columns,
    slices,
    wordsPerThread,
    keysPerSlice,
    valueChunk,
    hpw,
  };
}

/** Where key j of a split's numbering sits: `wgsl` defines `fn key_row(j: u32) -> u32` (its row within the KV
 * head) over uniform fields `params` (each `name: u32,`, after decodeParams' eight). CCA's decode numbers its cores,
 * then its raw tokens in a ring (cca-decode-wgsl.ts); without a map key j is row j. */
export interface KeyRowMap {
  params: string;
  wgsl: string;
}

/** Partial states: q [Hq, 1, D], k/v [Hkv, kv_stride, D] -> po [Hq, splits, D], plse [Hq, splits].
 * The uniform is decodeParams' (flash-decode-wgsl.ts); `group` (Hq / Hkv) and `lanes` (decodeV3Lanes: the
 * subgroups must hold them, 1 compiles no subgroup operation) are compiled in. `unrolled` (version decode-v4) writes
 * the per-head rescale of each tile and the final merge of the slices as straight-line code with constant indices,
 * so that no private array (the accumulators above all) is indexed by a loop variable: a compiler that does not
 * unroll those loops otherwise keeps the arrays in local memory (a load and store for every accumulation). */
export function flashDecodeV3PartialWgsl(
  headDim: number,
  dtype: DType,
  group: number,
  lanes: number,
  unrolled = false,
  rows?: KeyRowMap,
): string {
  const y = decodeV3Layout(headDim, dtype, group, lanes);
  const row = (j: string) => (rows ? `key_row(${j})` : j);
  const w = wordWgsl(y.epw, dtype);
  const H = y.halves;
  const seq = (n: number) => Array.from({ length: n }, (_, i) => i);
  const enables = [y.epw === 1 && dtype === 'f16' ? 'enable f16;' : '', lanes > 1 ? 'enable subgroups;' : '']
    .filter((s) => s)
    .join('\n');
  const T = THREADS / lanes;
  const heads = seq(y.hpw);
  // Score chunk: U keys of this team (x0 + i T), each lane's words of them, loaded first, then dotted with
  // each head's q (words past W and keys past n load as zeros: a NaN row past the keys is never used).
  const U = y.scoreChunk;
  const scoreLoads = seq(U).flatMap((i) =>
    seq(y.wordsPerLane).map((c) => {
      const word = `lane + ${c * lanes}u`;
      const at = `kbase + ${row(`min(t0 + x0 + ${i * T}u, last)`)} * W + min(${word}, W - 1u)`;
      return `      let kw${i}_${c} = select(${w.type}(), k[${at}], x0 + ${i * T}u < n && ${word} < W);`;
    }),
  );
  const scoreDots = heads.flatMap((hh) =>
    seq(U).map((i) => {
      const terms = seq(y.wordsPerLane).flatMap((c) =>
        seq(H).map(
          (h) =>
            `dot(qs[${(hh * y.words) * H + h}u + min(lane + ${c * lanes}u, W - 1u) * ${H}u], ${w.unpack(`kw${i}_${c}`, h)})`,
        ),
      );
      const shuffles = seq(Math.log2(lanes)).map(
        (b) => `      s${hh}_${i} += subgroupShuffleXor(s${hh}_${i}, ${1 << b}u);`,
      );
      return [`      var s${hh}_${i} = ${terms.join(' + ')};`, ...shuffles].join('\n');
    }),
  );
  const scoreStores = heads.flatMap((hh) =>
    seq(U).map(
      (i) => `      if (lane == 0u && x0 + ${i * T}u < BC) {
        let s = select(NEG, s${hh}_${i}, x0 + ${i * T}u < n);
        sc[${hh * TILE}u + x0 + ${i * T}u] = s;
        if (non_finite(s)) { atomicOr(&poison, ${1 << hh}u); }
      }`,
    ),
  );
  // Value chunk: V keys of this slice (x0 + i SLICES), this thread's word columns of them.
  const V = y.valueChunk;
  const S = y.slices;
  const valueLoads = seq(V).flatMap((i) =>
    seq(y.wordsPerThread).map((c) => {
      const word = `col + ${c * y.columns}u`;
      const at = `kbase + ${row(`min(t0 + x0 + ${i * S}u, last)`)} * W + min(${word}, W - 1u)`;
      return `      let vw${i}_${c} = select(${w.type}(), v[${at}], x0 + ${i * S}u < n && ${word} < W);`;
    }),
  );
  const valueUse = heads.flatMap((hh) =>
    seq(V).map((i) => {
      const adds = seq(y.wordsPerThread).flatMap((c) =>
        seq(H).map((h) => `        acc[${(hh * y.wordsPerThread + c) * H + h}u] += p * ${w.unpack(`vw${i}_${c}`, h)};`),
      );
      return `      {
        let s = sc[${hh * TILE}u + min(x0 + ${i * S}u, BC - 1u)];
        let p = select(exp(s - m[${hh}u]), 0.0, s == NEG || x0 + ${i * S}u >= n);
        l[${hh}u] += p;
${adds.join('\n')}
      }`;
    }),
  );
  const rescale = unrolled ? rescaleUnrolled(y, H) : rescaleLoop(H);
  const merge = unrolled ? mergeUnrolled(y, H, headDim) : mergeLoop(H);
  // The heads' merged maxima and sums: private arrays in v3, workgroup memory in v4 (read with the thread index).
  const [top, tot] = unrolled ? ['w_top', 'w_total'] : ['top', 'total'];
  const kept = unrolled
    ? `var<workgroup> w_top: array<f32, ${y.hpw}>;\nvar<workgroup> w_total: array<f32, ${y.hpw}>;\n`
    : '';
  return /* wgsl */ `${enables}
${decodePartialBindings(w.type, rows?.params)}
${rows?.wgsl ?? ''}
const D: u32 = ${headDim}u;
const EPW: u32 = ${y.epw}u; // elements per word
const W: u32 = ${y.words}u; // words per row
const G: u32 = ${group}u;
const HPW: u32 = ${y.hpw}u;
const WG: u32 = ${THREADS}u;
const BC: u32 = ${TILE}u;
const LANES: u32 = ${lanes}u; // lanes per key (scores)
const TEAMS: u32 = ${THREADS / lanes}u;
const COLS: u32 = ${y.columns}u; // word columns (P V)
const SLICES: u32 = ${y.slices}u;
const WPT: u32 = ${y.wordsPerThread}u;
const NEG: f32 = -3.0e38;
var<workgroup> qs: array<vec4<f32>, ${y.hpw * y.words * H}>;
var<workgroup> sc: array<f32, ${y.hpw * TILE}>;
var<workgroup> ms: array<f32, ${y.slices * y.hpw}>;
var<workgroup> ls: array<f32, ${y.slices * y.hpw}>;
var<workgroup> outs: array<f32, ${y.hpw * headDim}>;
${kept}var<workgroup> poison: atomic<u32>; // bit h: head h of this workgroup scored a NaN or an infinity

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let per_kv = ${workgroupsPerKvHead(group)}u;
  let kvh = wg.y / per_kv;
  let g0 = (wg.y % per_kv) * HPW; // this workgroup's first head within the group
  let split = wg.x;
  if (lid == 0u) { atomicStore(&poison, 0u); }
  for (var i = lid; i < HPW * W; i += WG) {
    let hh = i / W;
    var e = ${w.type}();
    if (g0 + hh < G) { e = q[(kvh * G + g0 + hh) * W + i % W]; }
${seq(H)
  .map((h) => `    qs[i * ${H}u + ${h}u] = ${w.unpack('e', h)} * params.scale;`)
  .join('\n')}
  }
  let j0 = split * params.keys_per_split;
  let j1 = min(params.nk, j0 + params.keys_per_split);
  let kbase = kvh * params.kv_stride * W;
  let lane = lid % LANES;
  let team = lid / LANES;
  let col = lid % COLS;
  let slice = lid / COLS;
  var acc: array<vec4<f32>, ${y.hpw * y.wordsPerThread * H}>;
  var m: array<f32, HPW>;
  var l: array<f32, HPW>;
  for (var hh = 0u; hh < HPW; hh++) { m[hh] = NEG; l[hh] = 0.0; }
  for (var t0 = j0; t0 < j1; t0 += BC) {
    let n = min(BC, j1 - t0);
    let last = t0 + n - 1u;
    workgroupBarrier(); // qs written; the previous tile's sc read
    for (var j = 0u; j < ${y.keysPerTeam}u; j += ${U}u) {
      let x0 = team + j * TEAMS; // uniform trip count: the shuffles run in uniform control flow
${scoreLoads.join('\n')}
${scoreDots.join('\n')}
${scoreStores.join('\n')}
    }
    workgroupBarrier(); // sc written
${rescale}
    for (var x0 = slice; x0 < BC; x0 += ${V * S}u) {
${valueLoads.join('\n')}
${valueUse.join('\n')}
    }
  }
  // Merge the slices' states: M = max m_s, L = sum l_s exp(m_s - M), O = sum O_s exp(m_s - M), one slice a round.
  workgroupBarrier();
  if (col == 0u) {
    for (var hh = 0u; hh < HPW; hh++) { ms[slice * HPW + hh] = m[hh]; ls[slice * HPW + hh] = l[hh]; }
  }
  workgroupBarrier();
${merge}
  let bits = atomicLoad(&poison);
  for (var i = lid; i < HPW * D; i += WG) {
    let hh = i / D;
    if (g0 + hh < G) {
      let r = (kvh * G + g0 + hh) * params.splits + split;
      let bad = ((bits >> hh) & 1u) != 0u;
      let inv = select(0.0, 1.0 / ${tot}[hh], ${tot}[hh] > 0.0);
      po[r * D + i % D] = select(outs[i] * inv, nan_value(), bad);
    }
  }
  if (lid < HPW && g0 + lid < G) {
    let r = (kvh * G + g0 + lid) * params.splits + split;
    let bad = ((bits >> lid) & 1u) != 0u;
    plse[r] = select(select(bitcast<f32>(params.neg_inf_bits), ${top}[lid] + log(${tot}[lid]), ${tot}[lid] > 0.0), nan_value(), bad);
  }
}
`;
}

type Layout = ReturnType<typeof decodeV3Layout>;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Each head's tile maximum, then its state rescaled (v3: loops over heads and accumulators). */
function rescaleLoop(H: number): string {
  return `    for (var hh = 0u; hh < HPW; hh++) {
      var tmax = NEG;
      for (var x = slice; x < n; x += SLICES) { tmax = max(tmax, sc[hh * BC + x]); }
      let m_new = max(m[hh], tmax);
      let alpha = exp(m[hh] - m_new);
      l[hh] *= alpha;
      for (var c = 0u; c < WPT * ${H}u; c++) { acc[hh * WPT * ${H}u + c] *= alpha; }
      m[hh] = m_new;
    }`;
}

function rescaleUnrolled(y: Layout, H: number): string {
  const n = y.wordsPerThread * H;
  return range(y.hpw)
    .map(
      (hh) => `    {
      var tmax = NEG;
      for (var x = slice; x < n; x += SLICES) { tmax = max(tmax, sc[${hh * TILE}u + x]); }
      let m_new = max(m[${hh}u], tmax);
      let alpha = exp(m[${hh}u] - m_new);
      l[${hh}u] *= alpha;
${range(n)
  .map((c) => `      acc[${hh * n + c}u] *= alpha;`)
  .join('\n')}
      m[${hh}u] = m_new;
    }`,
    )
    .join('\n');
}

/** The slices' states merged into outs, one slice a round (v3: loops over heads, words and elements). */
function mergeLoop(H: number): string {
  return `  var top: array<f32, HPW>;
  var total: array<f32, HPW>;
  for (var hh = 0u; hh < HPW; hh++) {
    var t = NEG;
    for (var s = 0u; s < SLICES; s++) { t = max(t, ms[s * HPW + hh]); }
    var sum = 0.0;
    for (var s = 0u; s < SLICES; s++) { sum += ls[s * HPW + hh] * exp(ms[s * HPW + hh] - t); }
    top[hh] = t;
    total[hh] = sum;
  }
  for (var r = 0u; r < SLICES; r++) {
    if (slice == r) {
      for (var hh = 0u; hh < HPW; hh++) {
        let f = exp(m[hh] - top[hh]);
        for (var c = 0u; c < WPT; c++) {
          let word = col + c * COLS;
          if (word < W) {
            for (var e = 0u; e < EPW; e++) {
              let a = acc[(hh * WPT + c) * ${H}u + e / 4u][e % 4u] * f;
              let i = hh * D + word * EPW + e;
              outs[i] = select(outs[i] + a, a, r == 0u);
            }
          }
        }
      }
    }
    workgroupBarrier();
  }`;
}

function mergeUnrolled(y: Layout, H: number, headDim: number): string {
  const stats = range(y.hpw)
    .map(
      (hh) => `  var top${hh} = NEG;
  for (var s = 0u; s < SLICES; s++) { top${hh} = max(top${hh}, ms[s * HPW + ${hh}u]); }
  var total${hh} = 0.0;
  for (var s = 0u; s < SLICES; s++) { total${hh} += ls[s * HPW + ${hh}u] * exp(ms[s * HPW + ${hh}u] - top${hh}); }
  let f${hh} = exp(m[${hh}u] - top${hh});`,
    )
    .join('\n');
  const keep = range(y.hpw)
    .map((hh) => `  if (lid == 0u) { w_top[${hh}u] = top${hh}; w_total[${hh}u] = total${hh}; }`)
    .join('\n');
  const adds = range(y.hpw).flatMap((hh) =>
    range(y.wordsPerThread).map((c) => {
      const elems = range(y.epw).map((e) => {
        const a = `acc[${(hh * y.wordsPerThread + c) * H + Math.floor(e / 4)}u][${e % 4}u] * f${hh}`;
        const i = `${hh * headDim}u + word * EPW + ${e}u`;
        return `          outs[${i}] = select(outs[${i}] + ${a}, ${a}, r == 0u);`;
      });
      return `        {
          let word = col + ${c}u * COLS;
          if (word < W) {
${elems.join('\n')}
          }
        }`;
    }),
  );
  return `${stats}
${keep}
  for (var r = 0u; r < SLICES; r++) {
    if (slice == r) {
${adds.join('\n')}
    }
    workgroupBarrier();
  }`;
}
