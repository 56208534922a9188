// The lightning indexer's scores (DeepSeek-V3.2 sec. 2.1, I[t,s] = sum_j w[t,j] ReLU(q_I[j,t] . k_I[s])) of a
// block of query tokens against the resident index keys, computed once and written to a [queries, keys]
// scratch, so that the radix-select passes (topk-wgsl.ts, stored-score variant) read scores instead of
// recomputing them in every pass. Head j's dot covers only its slot of the key (the training-free indexer's
// block-diagonal layout, dsa-indexer-project-wgsl.ts): H_I x slot, not H_I x D_I, multiply-adds per pair.
// A workgroup stages the index queries of BQ tokens and loads each key once for all of them; keys are split
// over workgroups on y (decoding fills the GPU with one token). A trained indexer's key is shared by its heads
// (IndexerSlots.shared): every head dots all D_I channels of the one key, each key word loaded once. int8: exact i32 dots with dot4I8Packed,
// I = k_scale[s] sum_j iw[t,j] ReLU(dot) (iw = the query's scale); float: f32 dots. CPU twin:
// kernels/dsa-indexer-cpu.ts indexRowScores (same ranking; see dsa-indexer-project-wgsl.ts for why w drops).
import type { IndexerSlots } from './dsa-indexer-project-wgsl.js';
import { slotWords } from './dsa-indexer-project-wgsl.js';
import { RELU_KEEP_NAN_WGSL } from './wgsl-common.js';

export const SCORE_THREADS = 128;
/** Query tokens per workgroup (each key load serves all of them). */
export const SCORE_BLOCK_QUERIES = 4;

/** Keep in sync with the Params struct below. */
export function indexScoreParams(p: {
  /** Query tokens of the block, and its first token's row in the chunk's index queries. */
  queries: number;
  firstQuery: number;
  /** Keys visible to the block's last token (bottom-right causal: token t sees keys < keys - queries + t + 1). */
  keys: number;
  /** Rows of the chunk's index queries (the chunk's tokens). */
  chunkTokens: number;
  /** Index key row of key 0 (DSA layers rank keys from the sinks on). */
  keyRow0: number;
  splits: number;
}): ArrayBuffer {
  return new Uint32Array([p.queries, p.keys, p.firstQuery, p.chunkTokens, p.keyRow0, p.splits, 0, 0]).buffer;
}

/** Dispatch (ceil(queries / BQ), splits). Bindings: params, iq, ik, iw, (int8) kscale, scores. */
export function indexScoresWgsl(s: IndexerSlots): string {
  const int8 = s.precision === 'int8';
  const SW = slotWords(s);
  const BQ = SCORE_BLOCK_QUERIES;
  const H = s.heads;
  const pad4 = (n: number) => Math.ceil(n / 4) * 4; // workgroup arrays in multiples of 16 bytes (WEBGPU-NOTES)
  const word = int8 ? 'u32' : 'f32';
  const dot = int8 ? 'dot4I8Packed(qs[(b * IH + j) * SW + w], kw)' : 'qs[(b * IH + j) * SW + w] * kw';
  return /* wgsl */ `
struct Params { nq: u32, nk: u32, q0: u32, qstride: u32, key0: u32, splits: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> iq: array<${word}>;
@group(0) @binding(2) var<storage, read> ik: array<${word}>;
@group(0) @binding(3) var<storage, read> iw: array<f32>;
${int8 ? '@group(0) @binding(4) var<storage, read> kscale: array<f32>;' : ''}
@group(0) @binding(${int8 ? 5 : 4}) var<storage, read_write> scores: array<f32>;
const BQ: u32 = ${BQ}u;
const IH: u32 = ${H}u;
const SW: u32 = ${SW}u;
const WG: u32 = ${SCORE_THREADS}u;
var<workgroup> qs: array<${word}, ${pad4(BQ * H * SW)}>;
var<workgroup> ws: array<f32, ${pad4(BQ * H)}>;

fn key_limit(t: u32) -> i32 { return i32(params.nk) - i32(params.nq) + i32(t); }
${RELU_KEEP_NAN_WGSL}

@compute @workgroup_size(${SCORE_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t0 = wg.x * BQ;
  let nb = min(BQ, params.nq - t0);
  for (var x = lid; x < BQ * IH * SW; x += WG) {
    let b = x / (IH * SW);
    let j = (x / SW) % IH;
    let row = params.q0 + t0 + b;
    qs[x] = select(${word}(0), iq[(j * params.qstride + row) * SW + x % SW], b < nb);
  }
  for (var x = lid; x < BQ * IH; x += WG) {
    ws[x] = select(0.0, iw[(params.q0 + t0 + x / IH) * IH + x % IH], x / IH < nb);
  }
  workgroupBarrier();
  let kend = key_limit(t0 + nb - 1u) + 1;
  if (kend <= 0) { return; }
  let per = (u32(kend) + params.splits - 1u) / params.splits;
  let s0 = wg.y * per;
  let s1 = min(u32(kend), s0 + per);
  for (var s = s0 + lid; s < s1; s += WG) {
    let krow = (params.key0 + s) * ${s.shared ? 'SW' : 'IH * SW'};
    // Zeroed explicitly: lavapipe kept a loop-local array's values across iterations.
    var acc: array<${int8 ? 'i32' : 'f32'}, ${BQ * H}>;
    for (var x = 0u; x < BQ * IH; x++) { acc[x] = ${int8 ? '0' : '0.0'}; }
${s.shared ? sharedDots(dot) : slotDots(dot)}
    ${int8 ? 'let ks = kscale[params.key0 + s];' : ''}
    for (var b = 0u; b < nb; b++) {
      let t = t0 + b;
      if (i32(s) > key_limit(t)) { continue; }
      var sc = 0.0;
      // NaN reaches the top-k (docs/HARDENING.md): the f32 ReLU keeps it; int8 vectors that held one carry a NaN scale.
      for (var j = 0u; j < IH; j++) { sc += ws[b * IH + j] * ${int8 ? 'f32(max(acc[b * IH + j], 0))' : 'relu_keep_nan(acc[b * IH + j])'}; }
      scores[t * params.nk + s] = sc${int8 ? ' * ks' : ''};
    }
  }
}
`;
}

/** Training-free: head j's dot over slot j of the key. */
function slotDots(dot: string): string {
  return `    for (var j = 0u; j < IH; j++) {
      for (var w = 0u; w < SW; w++) {
        let kw = ik[krow + j * SW + w];
        for (var b = 0u; b < BQ; b++) { acc[b * IH + j] += ${dot}; }
      }
    }`;
}

/** Shared key: each word of the key serves every head and query of the block. */
function sharedDots(dot: string): string {
  return `    for (var w = 0u; w < SW; w++) {
      let kw = ik[krow + w];
      for (var j = 0u; j < IH; j++) {
        for (var b = 0u; b < BQ; b++) { acc[b * IH + j] += ${dot}; }
      }
    }`;
}
