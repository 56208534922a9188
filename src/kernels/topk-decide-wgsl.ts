// The decide step of the radix top-k (kernels/topk-wgsl.ts records decide(init), then passes and decides;
// the algorithm and its CPU twin: kernels/topk-cpu.ts). Two versions, side by side, that leave the same
// state, histogram and output:
//   serial:    one thread per token walks the 256 bins from the top, zeroes them and ranks the boundary
//              bucket's candidates against each other (n^2 loads of one thread). Cheap when a chunk has many
//              tokens (one thread each), slow when decoding: one token's thread does it all, at the latency of
//              a global atomic load per bin and 65K candidate comparisons after the collect pass.
//   workgroup: one workgroup of 256 threads per token: a thread per bin loads and zeroes it, a suffix scan
//              (Hillis and Steele, 1986) finds the bin holding the need-th key in 8 steps, and each thread
//              ranks one candidate against the others staged in workgroup memory; rows are padded in parallel.
import { SAMPLE_MIN_RATIO } from './topk-cpu.js';
import { MODE, PARAMS_WGSL, selectionBindings } from './topk-wgsl.js';

export const DECIDE_VERSIONS = ['serial', 'workgroup'] as const;
export type DecideVersion = (typeof DECIDE_VERSIONS)[number];
/** The default: one workgroup per token. */
export const DEFAULT_DECIDE: DecideVersion = 'workgroup';

const WORKGROUP_THREADS = 256;

/** WGSL of a version; dispatch it with decideGroups(). */
export function topkDecideWgsl(version: DecideVersion = DEFAULT_DECIDE): string {
  return version === 'serial' ? serialDecideWgsl() : workgroupDecideWgsl();
}

/** Workgroups of a decide dispatch over `queries` tokens (wrap to 2D with wrapGrid: t = x + y * columns). */
export function decideGroups(version: DecideVersion, queries: number): number {
  return version === 'serial' ? Math.ceil(queries / 64) : queries;
}

function serialDecideWgsl(): string {
  return /* wgsl */ `
${PARAMS_WGSL}
${selectionBindings(1)}
/** Extends the prefix by the digit holding the need-th key of the histogram; COLLECT once that bucket is small. */
fn refine_step(t: u32, base: u32) {
  var need = state[base + 4u];
  var above = 0u;
  var d = 255u;
  loop {
    let h = atomicLoad(&hist[t * 256u + d]);
    if (above + h >= need || d == 0u) { break; }
    above += h;
    d -= 1u;
  }
  let count = atomicLoad(&hist[t * 256u + d]);
  for (var i = 0u; i < 256u; i++) { atomicStore(&hist[t * 256u + i], 0u); }
  need -= above;
  let bits = state[base + 1u];
  if (bits < 32u) { state[base + 2u] = (state[base + 2u] << 8u) | d; } else { state[base + 3u] = (state[base + 3u] << 8u) | d; }
  state[base + 1u] = bits + 8u;
  state[base + 4u] = need;
  state[base] = select(${MODE.refine}u, ${MODE.collect}u, count <= CAP || bits + 8u == 64u);
}
fn pad_row(t: u32, first: u32) {
  for (var i = first; i < params.width; i++) { out[(params.row0 + t) * params.width + i] = -1; }
}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= params.nq) { return; }
  let base = t * SW;
  let mode = state[base];
  if (mode == ${MODE.init}u) {
    let visible = u32(max(key_limit(t) + 1, 0));
    let take = min(params.width, visible);
    state[base + 1u] = 0u; state[base + 2u] = 0u; state[base + 3u] = 0u;
    state[base + 4u] = take; state[base + 5u] = take;
    atomicStore(&counters[t * 2u], 0u); atomicStore(&counters[t * 2u + 1u], 0u);
    if (take == 0u) { pad_row(t, 0u); state[base] = ${MODE.done}u; }
    else if (take == visible) { state[base] = ${MODE.all}u; }
    else if (params.stride >= 2u && visible >= ${SAMPLE_MIN_RATIO}u * take) { state[base] = ${MODE.sample}u; }
    else { state[base] = ${MODE.refine}u; }
  } else if (mode == ${MODE.refine}u) {
    refine_step(t, base);
  } else if (mode == ${MODE.sample}u) {
    // The sampled first digit: the bucket of the ceil(take / stride)-th sampled key becomes the guess.
    let need = (state[base + 5u] + params.stride - 1u) / params.stride;
    var above = 0u;
    var d = 255u;
    loop {
      let h = atomicLoad(&hist[t * 256u + d]);
      if (above + h >= need || d == 0u) { break; }
      above += h;
      d -= 1u;
    }
    for (var i = 0u; i < 256u; i++) { atomicStore(&hist[t * 256u + i], 0u); }
    state[base + 1u] = 8u; state[base + 2u] = d; state[base] = ${MODE.guess}u;
  } else if (mode == ${MODE.guess}u) {
    // Keys above the guessed bucket were counted, the bucket's keys histogrammed by their next digit.
    let above = atomicLoad(&counters[t * 2u]);
    atomicStore(&counters[t * 2u], 0u);
    var total = 0u;
    for (var i = 0u; i < 256u; i++) { total += atomicLoad(&hist[t * 256u + i]); }
    let need = state[base + 4u];
    if (above < need && above + total >= need) {
      state[base + 4u] = need - above;
      refine_step(t, base);
    } else {
      for (var i = 0u; i < 256u; i++) { atomicStore(&hist[t * 256u + i], 0u); }
      state[base + 1u] = 0u; state[base + 2u] = 0u; state[base + 3u] = 0u;
      state[base + 4u] = state[base + 5u];
      state[base] = ${MODE.refine}u;
    }
  } else if (mode == ${MODE.collect}u) {
    let taken = atomicLoad(&counters[t * 2u]);
    let n = min(atomicLoad(&counters[t * 2u + 1u]), CAP);
    let need = state[base + 4u];
    for (var a = 0u; a < n; a++) {
      let ka = cand[(t * CAP + a) * 2u];
      let ia = cand[(t * CAP + a) * 2u + 1u];
      var rank = 0u;
      for (var b = 0u; b < n; b++) {
        let kb = cand[(t * CAP + b) * 2u];
        let ib = cand[(t * CAP + b) * 2u + 1u];
        if (kb > ka || (kb == ka && ib < ia)) { rank += 1u; }
      }
      if (rank < need && taken + rank < params.width) { out[(params.row0 + t) * params.width + taken + rank] = i32(ia); }
    }
    pad_row(t, state[base + 5u]);
    state[base] = ${MODE.done}u;
  } else if (mode == ${MODE.all}u) {
    pad_row(t, state[base + 5u]);
    state[base] = ${MODE.done}u;
  }
}
`;
}

function workgroupDecideWgsl(): string {
  const N = WORKGROUP_THREADS;
  return /* wgsl */ `
${PARAMS_WGSL}
${selectionBindings(1)}
const N: u32 = ${N}u;
var<workgroup> w_mode: u32;
var<workgroup> w_need: u32; // the rank searched for in the histogram, 0 for no search
var<workgroup> w_pick: u32;
var<workgroup> w_pad: u32; // first output slot to pad with -1, or width for none
var<workgroup> incl: array<u32, 256>; // incl[d]: keys in bins d..255
var<workgroup> ck: array<u32, CAP>;
var<workgroup> ci: array<u32, CAP>;

fn pad_from(t: u32, first: u32, lid: u32) {
  for (var i = first + lid; i < params.width; i += N) { out[(params.row0 + t) * params.width + i] = -1; }
}
/** State after the search found bin d (refine_step of the serial version): extend the prefix, COLLECT when small. */
fn extend(base: u32, need: u32, d: u32) {
  var above = 0u;
  if (d < 255u) { above = incl[d + 1u]; }
  let count = incl[d] - above;
  let bits = state[base + 1u];
  if (bits < 32u) { state[base + 2u] = (state[base + 2u] << 8u) | d; } else { state[base + 3u] = (state[base + 3u] << 8u) | d; }
  state[base + 1u] = bits + 8u;
  state[base + 4u] = need - above;
  state[base] = select(${MODE.refine}u, ${MODE.collect}u, count <= CAP || bits + 8u == 64u);
}

@compute @workgroup_size(${N})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let t = wg.x + wg.y * nwg.x;
  if (t >= params.nq) { return; }
  let base = t * SW;
  if (lid == 0u) { w_mode = state[base]; w_pad = params.width; w_pick = 0u; }
  let mode = workgroupUniformLoad(&w_mode);
  if (mode == ${MODE.init}u) {
    if (lid == 0u) {
      let visible = u32(max(key_limit(t) + 1, 0));
      let take = min(params.width, visible);
      state[base + 1u] = 0u; state[base + 2u] = 0u; state[base + 3u] = 0u;
      state[base + 4u] = take; state[base + 5u] = take;
      atomicStore(&counters[t * 2u], 0u); atomicStore(&counters[t * 2u + 1u], 0u);
      if (take == 0u) { w_pad = 0u; state[base] = ${MODE.done}u; }
      else if (take == visible) { state[base] = ${MODE.all}u; }
      else if (params.stride >= 2u && visible >= ${SAMPLE_MIN_RATIO}u * take) { state[base] = ${MODE.sample}u; }
      else { state[base] = ${MODE.refine}u; }
    }
  } else if (mode == ${MODE.refine}u || mode == ${MODE.sample}u || mode == ${MODE.guess}u) {
    // Every histogram mode reads its token's 256 bins once and leaves them zero.
    var v = atomicLoad(&hist[t * 256u + lid]);
    atomicStore(&hist[t * 256u + lid], 0u);
    for (var off = 1u; off < 256u; off <<= 1u) {
      incl[lid] = v;
      workgroupBarrier();
      if (lid + off < 256u) { v += incl[lid + off]; }
      workgroupBarrier();
    }
    incl[lid] = v;
    workgroupBarrier();
    if (lid == 0u) {
      if (mode == ${MODE.refine}u) {
        w_need = state[base + 4u];
      } else if (mode == ${MODE.sample}u) {
        // The sampled first digit: the bucket of the ceil(take / stride)-th sampled key becomes the guess.
        w_need = (state[base + 5u] + params.stride - 1u) / params.stride;
      } else {
        // Keys above the guessed bucket were counted, the bucket's keys histogrammed by their next digit.
        let above = atomicLoad(&counters[t * 2u]);
        atomicStore(&counters[t * 2u], 0u);
        let need = state[base + 4u];
        if (above < need && above + incl[0] >= need) {
          state[base + 4u] = need - above;
          w_need = need - above;
        } else {
          state[base + 1u] = 0u; state[base + 2u] = 0u; state[base + 3u] = 0u;
          state[base + 4u] = state[base + 5u];
          state[base] = ${MODE.refine}u;
          w_need = 0u;
        }
      }
    }
    let need = workgroupUniformLoad(&w_need);
    // The bin holding the need-th key from the top: the highest d with incl[d] >= need (bin 0 if none).
    var hit = need > 0u && incl[lid] >= need;
    if (hit && lid < 255u) { hit = incl[lid + 1u] < need; }
    if (hit) { w_pick = lid; }
    workgroupBarrier();
    if (lid == 0u && need > 0u) {
      if (mode == ${MODE.sample}u) {
        state[base + 1u] = 8u; state[base + 2u] = w_pick; state[base] = ${MODE.guess}u;
      } else {
        extend(base, need, w_pick);
      }
    }
  } else if (mode == ${MODE.collect}u) {
    let taken = atomicLoad(&counters[t * 2u]);
    let n = min(atomicLoad(&counters[t * 2u + 1u]), CAP);
    let need = state[base + 4u];
    for (var a = lid; a < n; a += N) { ck[a] = cand[(t * CAP + a) * 2u]; ci[a] = cand[(t * CAP + a) * 2u + 1u]; }
    workgroupBarrier();
    for (var a = lid; a < n; a += N) {
      let ka = ck[a];
      let ia = ci[a];
      var rank = 0u;
      for (var b = 0u; b < n; b++) { rank += u32(ck[b] > ka || (ck[b] == ka && ci[b] < ia)); }
      if (rank < need && taken + rank < params.width) { out[(params.row0 + t) * params.width + taken + rank] = i32(ia); }
    }
    if (lid == 0u) { w_pad = state[base + 5u]; state[base] = ${MODE.done}u; }
  } else if (mode == ${MODE.all}u) {
    if (lid == 0u) { w_pad = state[base + 5u]; state[base] = ${MODE.done}u; }
  }
  pad_from(t, workgroupUniformLoad(&w_pad), lid);
}
`;
}
