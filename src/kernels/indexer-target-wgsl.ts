// The lightning indexer's training on WebGPU, continued (kernels/indexer-train-wgsl.ts has the projections,
// LayerNorm, RoPE and their backward): the two per-block kernels that replaced host work, in f32 (DeepSeek-V3.2
// tech report sec. 2.1.1 for the target):
//   target:   DeepSeek-V3.2's p from the frozen layer's q [Hq, L, D] and k [Hkv, L, D]: a workgroup per query,
//             pass 1 an online softmax (max and sum, FlashAttention's rescaling, Dao et al. 2022) per head over
//             the visible keys, pass 2 writes sum_h softmax_h / Hq for the block; never more than the block;
//   mass:     the target mass in each query's top-k by score (ties in key order, as train/indexer-grad.ts's
//             massOfTopK): the k-th largest score by a radix select on order-preserving u32 keys (4 passes of
//             a 256-bucket workgroup histogram, a byte each: few barriers, which lavapipe makes dear), then one
//             ordered pass with a prefix count over threads for the ties.
// The float64 truth is train/attention-target.ts and train/indexer-grad.ts's massOfTopK
// (test/indexer-grad-gpu.test.ts).
import { PARAMS, pad4, TRAIN_THREADS } from './indexer-train-wgsl.js';

export interface TargetShape {
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** Workgroup bytes of the target kernel: checked against the device's limit. */
export function indexerTargetWorkgroupBytes(s: TargetShape): number {
  return 4 * (pad4(s.heads * s.headDim) + 2 * TRAIN_THREADS + pad4(s.heads));
}

/** Dispatch (rows). Params a = t0, b = rows, c = L. Bindings: params, q [Hq, L, D], k [Hkv, L, D], p [rows, L]. */
export function indexerTargetWgsl(s: TargetShape): string {
  const group = s.heads / s.kvHeads;
  return /* wgsl */ `
${PARAMS}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read_write> p: array<f32>;
const HQ: u32 = ${s.heads}u;
const D: u32 = ${s.headDim}u;
const GROUP: u32 = ${group}u;
const SCALE: f32 = ${1 / Math.sqrt(s.headDim)};
var<workgroup> qs: array<f32, ${pad4(s.heads * s.headDim)}>;
var<workgroup> rm: array<f32, ${TRAIN_THREADS}>;
var<workgroup> rz: array<f32, ${TRAIN_THREADS}>;
var<workgroup> lse: array<f32, ${pad4(s.heads)}>;

fn logit(h: u32, s: u32) -> f32 {
  let kb = ((h / GROUP) * params.c + s) * D;
  var d = 0.0;
  for (var e = 0u; e < D; e++) { d += qs[h * D + e] * k[kb + e]; }
  return d * SCALE;
}

@compute @workgroup_size(${TRAIN_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x;
  let t = params.a + r;
  let n = t + 1u;
  for (var x = lid; x < HQ * D; x += ${TRAIN_THREADS}u) {
    qs[x] = q[((x / D) * params.c + t) * D + x % D];
  }
  workgroupBarrier();
  var m: array<f32, ${s.heads}>;
  var z: array<f32, ${s.heads}>;
  for (var h = 0u; h < HQ; h++) { m[h] = -3.0e38; z[h] = 0.0; }
  for (var s = lid; s < n; s += ${TRAIN_THREADS}u) {
    for (var h = 0u; h < HQ; h++) {
      let l = logit(h, s);
      let mn = max(m[h], l);
      z[h] = z[h] * exp(m[h] - mn) + exp(l - mn);
      m[h] = mn;
    }
  }
  for (var h = 0u; h < HQ; h++) {
    rm[lid] = m[h];
    rz[lid] = z[h];
    workgroupBarrier();
    for (var half = ${TRAIN_THREADS / 2}u; half > 0u; half /= 2u) {
      if (lid < half) {
        let ma = rm[lid];
        let mb = rm[lid + half];
        let mn = max(ma, mb);
        rz[lid] = rz[lid] * exp(ma - mn) + rz[lid + half] * exp(mb - mn);
        rm[lid] = mn;
      }
      workgroupBarrier();
    }
    if (lid == 0u) { lse[h] = rm[0] + log(rz[0]); }
    workgroupBarrier();
  }
  for (var s = lid; s < n; s += ${TRAIN_THREADS}u) {
    var acc = 0.0;
    for (var h = 0u; h < HQ; h++) { acc += exp(logit(h, s) - lse[h]); }
    p[r * params.c + s] = acc / f32(HQ);
  }
}
`;
}

/** Dispatch (rows). Params a = t0, b = rows, c = L, d = topk. Bindings: params, scores [rows, L], p [rows, L],
 * mass [L] (row t: the target mass in its top-k, 0 where t + 1 <= topk). */
export function indexerMassWgsl(): string {
  const WG = TRAIN_THREADS;
  return /* wgsl */ `
${PARAMS}
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> p: array<f32>;
@group(0) @binding(3) var<storage, read_write> mass: array<f32>;
var<workgroup> cnt: array<u32, ${WG}>;
var<workgroup> sum: array<f32, ${WG}>;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> sel: vec2u;

// Order-preserving u32 of an f32 (negative zero counts as zero).
fn key(x: f32) -> u32 {
  if (x == 0.0) { return 0x80000000u; }
  let b = bitcast<u32>(x);
  return select(b ^ 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x;
  let t = params.a + r;
  let n = t + 1u;
  let K = params.d;
  if (n <= K) {
    if (lid == 0u) { mass[t] = 0.0; }
    return;
  }
  let row = r * params.c;
  // Radix select, a byte at a time from the top: a histogram of the keys that share the prefix found so far,
  // then the bucket holding the k-th largest. T ends as that key; need = k - (keys above T).
  var prefix = 0u;
  var mask = 0u;
  var need = K;
  for (var round = 0u; round < 4u; round++) {
    let shift = 24u - 8u * round;
    for (var x = lid; x < 256u; x += ${WG}u) { atomicStore(&hist[x], 0u); }
    workgroupBarrier();
    for (var s = lid; s < n; s += ${WG}u) {
      let kv = key(scores[row + s]);
      if ((kv & mask) == prefix) { atomicAdd(&hist[(kv >> shift) & 255u], 1u); }
    }
    workgroupBarrier();
    if (lid == 0u) {
      var above = 0u;
      var bucket = 255u;
      loop {
        let c = atomicLoad(&hist[bucket]);
        if (above + c >= need || bucket == 0u) { break; }
        above += c;
        bucket--;
      }
      sel = vec2u(prefix | (bucket << shift), need - above);
    }
    workgroupBarrier();
    prefix = sel.x;
    need = sel.y;
    mask |= 255u << shift;
  }
  let T = prefix;
  // Each thread owns a contiguous run of keys, so that the ties are taken in key order.
  let per = (n + ${WG - 1}u) / ${WG}u;
  let lo = min(n, lid * per);
  let hi = min(n, lo + per);
  var acc = 0.0;
  var ties = 0u;
  for (var s = lo; s < hi; s++) {
    let kv = key(scores[row + s]);
    if (kv > T) { acc += p[row + s]; }
    if (kv == T) { ties++; }
  }
  cnt[lid] = ties;
  workgroupBarrier();
  var before = 0u;
  for (var x = 0u; x < lid; x++) { before += cnt[x]; }
  for (var s = lo; s < hi; s++) {
    if (before >= need) { break; }
    if (key(scores[row + s]) == T) { acc += p[row + s]; before++; }
  }
  sum[lid] = acc;
  workgroupBarrier();
  for (var half = ${WG / 2}u; half > 0u; half /= 2u) {
    if (lid < half) { sum[lid] += sum[lid + half]; }
    workgroupBarrier();
  }
  if (lid == 0u) { mass[t] = sum[0]; }
}
`;
}
