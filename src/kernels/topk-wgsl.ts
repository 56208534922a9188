// Top-k of the lightning indexer's scores by radix select, fused with the score computation so that no
// Nq x Nk score matrix is ever written (the algorithm and its CPU twin: kernels/topk-cpu.ts). The host
// records decide(init), then TOPK_MAX_PASSES x [pass, decide] in one compute pass:
//   pass:   per block of BQ tokens (and per key split, for decoding), recompute the scores of the visible
//           keys; REFINE tokens histogram the next 8 bits of the keys that share their prefix (workgroup
//           atomics, flushed to a global histogram); COLLECT tokens write keys above the prefix straight to
//           the output and the prefix's keys to a candidate list; ALL tokens (k >= visible) write all.
//   decide: per token (kernels/topk-decide-wgsl.ts): REFINE extends the prefix by the digit holding the k-th
//           key (COLLECT once that bucket has at most TOPK_CANDIDATES keys); after COLLECT it ranks the
//           candidates exactly (score, then lower index) and pads the row with -1. Finished workgroups
//           return at once.
import { TOPK_CANDIDATES } from './topk-cpu.js';
import { indexerWgsl, type IndexerKernelShape } from './dsa-indexer-wgsl.js';
import { FINITE_TESTS_WGSL } from './wgsl-common.js';

export const TOPK_THREADS = 128;
export const MODE = { init: 0, refine: 1, collect: 2, all: 3, done: 4, sample: 5, guess: 6 } as const;
/** u32 words of selection state per token: mode, bits, hi, lo, need, take, -, -. */
export const STATE_WORDS = 8;

/** Uniform block of both kernels; keep in sync with topkParams(). */
export const PARAMS_WGSL = /* wgsl */ `
struct Params { nq: u32, nk: u32, causal: u32, width: u32, splits: u32, stride: u32, row0: u32, per_token: u32 }
@group(0) @binding(0) var<uniform> params: Params;
// Row t of the selection; per_token rows of one query token each (remap ranks a token's keys per query head,
// token-major rows) share the token's causal limit. 0 reads as 1 (DSA: a row per token).
fn key_limit(t: u32) -> i32 {
  let all = i32(params.nk) - 1;
  if (params.causal == 0u) { return all; }
  let per = max(params.per_token, 1u);
  return min(all, i32(params.nk) - i32(params.nq / per) + i32(t / per));
}`;

/**
 * stride: the sample pass's key stride (kernels/topk-cpu.ts sampleStride), 0 for no sample pass.
 * outRow0: the output row of token 0 (a block of a chunk's tokens writes its rows of the chunk's lists).
 */
export function topkParams(p: {
  queries: number;
  keys: number;
  causal: boolean;
  width: number;
  splits: number;
  stride?: number;
  outRow0?: number;
  /** Rows per query token (default 1): `queries` counts rows, a multiple of it. */
  rowsPerToken?: number;
}): ArrayBuffer {
  const row = [
    p.queries,
    p.keys,
    p.causal ? 1 : 0,
    p.width,
    p.splits,
    p.stride ?? 0,
    p.outRow0 ?? 0,
    p.rowsPerToken ?? 1,
  ];
  return new Uint32Array(row).buffer;
}

/** Prefix comparison and digit of the 64-bit composite (ordered score, ~index), as topk-cpu.ts. */
const COMPOSITE_WGSL = /* wgsl */ `${FINITE_TESTS_WGSL}
// A NaN score (of either sign) ranks above every number: its key is selected, and the attention that reads
// it turns the row NaN (docs/HARDENING.md), instead of the NaN being dropped by the selection.
fn ordered_key(f: f32) -> u32 {
  if (is_nan(f)) { return 0xffffffffu; }
  let b = bitcast<u32>(select(f, 0.0, f == 0.0));
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
fn compare_prefix(hi: u32, lo: u32, bits: u32, phi: u32, plo: u32) -> i32 {
  if (bits == 0u) { return 0; }
  if (bits <= 32u) {
    let x = hi >> (32u - bits);
    return select(select(-1, 1, x > phi), 0, x == phi);
  }
  if (hi != phi) { return select(-1, 1, hi > phi); }
  let y = lo >> (64u - bits);
  return select(select(-1, 1, y > plo), 0, y == plo);
}
fn next_digit(hi: u32, lo: u32, bits: u32) -> u32 {
  if (bits < 32u) { return (hi >> (24u - bits)) & 255u; }
  return (lo >> (56u - bits)) & 255u;
}`;

/** The selection's scratch in its binding order (before the output): u32 words per row (query token, or
 * (token, head) for remap): mode and prefix state, counters (taken, candidates), a 256-bin histogram, and
 * TOPK_CANDIDATES (key, index) candidates. Every allocator sizes it from here. */
export const SELECTION_SCRATCH = [
  ['state', STATE_WORDS],
  ['counters', 2],
  ['histogram', 256],
  ['candidates', 2 * TOPK_CANDIDATES],
] as const;

/** Bindings after the indexer's: state, counters (taken, candidates), histogram, candidates, output. */
export function selectionBindings(first: number): string {
  return /* wgsl */ `
@group(0) @binding(${first}) var<storage, read_write> state: array<u32>;
@group(0) @binding(${first + 1}) var<storage, read_write> counters: array<atomic<u32>>;
@group(0) @binding(${first + 2}) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(${first + 3}) var<storage, read_write> cand: array<u32>;
@group(0) @binding(${first + 4}) var<storage, read_write> out: array<i32>;
const CAP: u32 = ${TOPK_CANDIDATES}u;
const SW: u32 = ${STATE_WORDS}u;`;
}

/**
 * Subgroup-aggregated atomics (aggregate variant): a subgroup's lanes that add to one counter add once
 * (ballot count, exclusive prefix for their slots); histogram adds aggregate the subgroup's largest and
 * smallest digits (the first digit's keys fall into a few bins: same-address atomics serialise).
 */
const AGGREGATE_WGSL = /* wgsl */ `
fn claim(ci: u32, want: bool) -> u32 {
  let w = u32(want);
  let n = subgroupAdd(w);
  let rank = subgroupExclusiveAdd(w);
  var base = 0u;
  if (subgroupElect() && n > 0u) { base = atomicAdd(&counters[ci], n); }
  return subgroupBroadcastFirst(base) + rank;
}
fn count_add(ci: u32, want: bool) {
  let n = subgroupAdd(u32(want));
  if (subgroupElect() && n > 0u) { atomicAdd(&counters[ci], n); }
}
fn hist_add(b: u32, want: bool, dig: u32) {
  let d0 = subgroupMax(select(0u, dig + 1u, want));
  let m0 = want && dig + 1u == d0;
  let n0 = subgroupAdd(u32(m0));
  if (subgroupElect() && n0 > 0u) { atomicAdd(&hist_wg[b * 256u + d0 - 1u], n0); }
  let rest = want && !m0;
  let d1 = subgroupMin(select(0xffffffffu, dig, rest));
  let m1 = rest && dig == d1;
  let n1 = subgroupAdd(u32(m1));
  if (subgroupElect() && n1 > 0u) { atomicAdd(&hist_wg[b * 256u + d1], n1); }
  if (rest && !m1) { atomicAdd(&hist_wg[b * 256u + dig], 1u); }
}`;

/** Key loop of the aggregate variant: uniform trip count (subgroup operations), out-of-range lanes masked. */
const AGGREGATE_LOOP_WGSL = /* wgsl */ `
  let stu = workgroupUniformLoad(&st);
  let kend = key_limit(min(params.nq - 1u, q0 + BQ - 1u)) + 1;
  if (kend > 0) {
    let per = (u32(kend) + params.splits - 1u) / params.splits;
    let s0 = wg.y * per;
    let s1 = min(u32(kend), s0 + per);
    // Only sample-pass tokens in this block: visit every stride-th key (1/stride of the work).
    let step = select(1u, params.stride, live == 2u);
    let sa = (s0 + step - 1u) / step * step;
    let cnt = select(0u, (s1 - sa + step - 1u) / step, s1 > sa);
    for (var ib = 0u; ib < cnt; ib += WG) {
      let inr = ib + lid < cnt;
      let s = sa + min(ib + lid, cnt - 1u) * step;
      let scores = index_scores(s);
      let lo = 0xffffffffu - s;
      for (var b = 0u; b < BQ; b++) {
        let t = q0 + b;
        let vis = inr && t < params.nq && i32(s) <= key_limit(t);
        let sb = stu[b];
        let hi = ordered_key(scores[b]);
        let c = compare_prefix(hi, lo, sb.y, sb.z, sb.w);
        if (sb.x == ${MODE.refine}u) {
          hist_add(b, vis && c == 0, next_digit(hi, lo, sb.y));
        } else if (sb.x == ${MODE.sample}u) {
          hist_add(b, vis && s % params.stride == 0u, next_digit(hi, lo, 0u));
        } else if (sb.x == ${MODE.guess}u) {
          count_add(t * 2u, vis && c > 0);
          hist_add(b, vis && c == 0, next_digit(hi, lo, sb.y));
        } else if (sb.x == ${MODE.collect}u) {
          let slot = claim(t * 2u, vis && c > 0);
          if (vis && c > 0 && slot < params.width) { out[(params.row0 + t) * params.width + slot] = i32(s); }
          let cs = claim(t * 2u + 1u, vis && c == 0);
          if (vis && c == 0 && cs < CAP) { cand[(t * CAP + cs) * 2u] = hi; cand[(t * CAP + cs) * 2u + 1u] = s; }
        } else if (sb.x == ${MODE.all}u) {
          let slot = claim(t * 2u, vis);
          if (vis && slot < params.width) { out[(params.row0 + t) * params.width + slot] = i32(s); }
        }
      }
    }
  }`;

/**
 * The indexer part of a pass that reads scores stored once (kernels/dsa-indexer-scores-wgsl.ts) instead of
 * recomputing them: scores [nq, nk] at binding 1, token-major; the same stage/index_scores interface.
 */
export function storedScoresWgsl(first: number): { enable: string; bindings: number; code: string } {
  return {
    enable: '',
    bindings: 1,
    code: /* wgsl */ `
@group(0) @binding(${first}) var<storage, read> scores: array<f32>;
const BQ: u32 = ${STORED_BLOCK_QUERIES}u;
var<private> q_first: u32;
fn stage_queries(q0: u32, lid: u32, threads: u32) { q_first = q0; }
fn index_scores(s: u32) -> array<f32, BQ> {
  var out: array<f32, BQ>;
  for (var b = 0u; b < BQ; b++) {
    let t = q_first + b;
    if (t < params.nq) { out[b] = scores[t * params.nk + s]; }
  }
  return out;
}`,
  };
}

/** Tokens per workgroup of the stored-score pass. */
export const STORED_BLOCK_QUERIES = 4;

/** The fused score + histogram/collect pass. Bindings: params, indexer (3 or 4; stored: 1), then selection. */
export function topkPassWgsl(s: IndexerKernelShape | 'stored', aggregate = false): string {
  const ix = s === 'stored' ? storedScoresWgsl(1) : indexerWgsl(s, 1);
  return /* wgsl */ `${ix.enable}
${aggregate ? 'enable subgroups;' : ''}
${PARAMS_WGSL}
${ix.code}
${selectionBindings(1 + ix.bindings)}
${COMPOSITE_WGSL}
const WG: u32 = ${TOPK_THREADS}u;
${aggregate ? AGGREGATE_WGSL : ''}
var<workgroup> hist_wg: array<atomic<u32>, ${256 * 8}>;
var<workgroup> st: array<vec4u, 8>; // mode, bits, hi, lo of each staged token
var<workgroup> any_active: u32;

@compute @workgroup_size(${TOPK_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let q0 = wg.x * BQ;
  if (lid == 0u) {
    var a = 0u;
    for (var b = 0u; b < BQ; b++) {
      let t = q0 + b;
      var v = vec4u(${MODE.done}u, 0u, 0u, 0u);
      if (t < params.nq) { v = vec4u(state[t * SW], state[t * SW + 1u], state[t * SW + 2u], state[t * SW + 3u]); }
      st[b] = v;
      let m = v.x;
      if (m == ${MODE.refine}u || m == ${MODE.collect}u || m == ${MODE.all}u || m == ${MODE.guess}u) { a |= 1u; }
      if (m == ${MODE.sample}u) { a |= 2u; }
    }
    any_active = a;
  }
  let live = workgroupUniformLoad(&any_active);
  if (live == 0u) { return; }
  for (var x = lid; x < BQ * 256u; x += WG) { atomicStore(&hist_wg[x], 0u); }
  stage_queries(q0, lid, WG);
  workgroupBarrier();${
    aggregate
      ? AGGREGATE_LOOP_WGSL
      : /* wgsl */ `
  let kend = key_limit(min(params.nq - 1u, q0 + BQ - 1u)) + 1;
  if (kend > 0) {
    let per = (u32(kend) + params.splits - 1u) / params.splits;
    let s0 = wg.y * per;
    let s1 = min(u32(kend), s0 + per);
    // Only sample-pass tokens in this block: visit every stride-th key (1/stride of the work).
    let step = select(1u, params.stride, live == 2u);
    let sa = (s0 + step - 1u) / step * step;
    for (var s = sa + lid * step; s < s1; s += WG * step) {
      let scores = index_scores(s);
      let lo = 0xffffffffu - s;
      for (var b = 0u; b < BQ; b++) {
        let t = q0 + b;
        if (t >= params.nq || i32(s) > key_limit(t)) { continue; }
        let sb = st[b];
        let hi = ordered_key(scores[b]);
        if (sb.x == ${MODE.refine}u) {
          if (compare_prefix(hi, lo, sb.y, sb.z, sb.w) == 0) { atomicAdd(&hist_wg[b * 256u + next_digit(hi, lo, sb.y)], 1u); }
        } else if (sb.x == ${MODE.sample}u) {
          if (s % params.stride == 0u) { atomicAdd(&hist_wg[b * 256u + next_digit(hi, lo, 0u)], 1u); }
        } else if (sb.x == ${MODE.guess}u) {
          let c = compare_prefix(hi, lo, sb.y, sb.z, sb.w);
          if (c > 0) { atomicAdd(&counters[t * 2u], 1u); } else if (c == 0) { atomicAdd(&hist_wg[b * 256u + next_digit(hi, lo, sb.y)], 1u); }
        } else if (sb.x == ${MODE.collect}u) {
          let c = compare_prefix(hi, lo, sb.y, sb.z, sb.w);
          if (c > 0) {
            let slot = atomicAdd(&counters[t * 2u], 1u);
            if (slot < params.width) { out[(params.row0 + t) * params.width + slot] = i32(s); }
          } else if (c == 0) {
            let slot = atomicAdd(&counters[t * 2u + 1u], 1u);
            if (slot < CAP) { cand[(t * CAP + slot) * 2u] = hi; cand[(t * CAP + slot) * 2u + 1u] = s; }
          }
        } else if (sb.x == ${MODE.all}u) {
          let slot = atomicAdd(&counters[t * 2u], 1u);
          if (slot < params.width) { out[(params.row0 + t) * params.width + slot] = i32(s); }
        }
      }
    }
  }`
  }
  workgroupBarrier();
  for (var x = lid; x < BQ * 256u; x += WG) {
    let v = atomicLoad(&hist_wg[x]);
    let t = q0 + x / 256u;
    if (v > 0u && t < params.nq) { atomicAdd(&hist[t * 256u + x % 256u], v); }
  }
}
`;
}
