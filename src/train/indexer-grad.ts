// The lightning indexer's warm-up loss and its gradient, written by hand for exactly these operations
// (DeepSeek-V3.2 tech report sec. 2.1.1, dense warm-up stage), on one sequence h [L, hidden] at positions 0..L-1:
//   q_I[t,j] = RoPE_t(W_q h_t)_j            k_I[s] = RoPE_s(LayerNorm(W_k h_s))     w[t,j] = W_proj h_t / sqrt(H_I D_I)
//   I[t,s]   = sum_j w[t,j] ReLU(q_I[t,j] . k_I[s])   for s <= t
//   loss     = mean over queries t of KL(p_t || softmax_{s<=t} I[t,:])
// p_t is the frozen model's attention of query t, summed over heads and L1-normalised (train/attention-target.ts).
// Backward: dI = (softmax(I) - p) / queries; then the chain through the weighted sum, ReLU, dots, RoPE
// (a rotation: its transpose), LayerNorm and the three projections. Queries go in chunks, so only a
// [chunk, H_I, L] block of dots is ever held; index keys and their gradient are [L, D_I].
// The WebGPU backend (train/indexer-grad-gpu.ts) runs all of it in f32 with its own kernels; this stays the
// float64 reference its tests compare against.
import type { TargetAttention } from './attention-target.js';
import { type IndexerGeometry, paramLayout } from './indexer-params.js';

export interface IndexerSequence {
  /** The layer's attention input h [L, hidden] (after its RMSNorm). */
  h: Float32Array;
  L: number;
  /** Target rows p [t1 - t0, L] for queries t0..t1-1 (entries s > t are ignored). */
  target: (t0: number, t1: number) => Float64Array;
  /** The frozen layer's q and k that `target` is computed from: when given, the WebGPU backend computes the
   * target on the GPU from them and never calls `target` (the CPU backend always calls it). */
  attention?: TargetAttention;
  /** Queries per block (default 64). */
  chunk?: number;
  /** Also measure the target mass inside the indexer's top-k of each query that sees more than k keys. */
  topk?: number;
}

export interface IndexerLoss {
  /** Mean KL over the sequence's queries. */
  loss: number;
  queries: number;
  /** Sum and count of the captured mass at top-k (queries with more than k visible keys). */
  massSum: number;
  massCount: number;
}

/** Rotates channel pairs of x[at..] by position pos; sign -1 applies the transpose (the backward). */
export function rope(g: IndexerGeometry, x: Float64Array, at: number, pos: number, sign: number): void {
  for (let i = 0; i < g.pairs.length; i++) {
    const [a, b] = g.pairs[i];
    const angle = pos * g.invFreq[i];
    const [c, s] = [Math.cos(angle), sign * Math.sin(angle)];
    const [u, v] = [x[at + a], x[at + b]];
    x[at + a] = u * c - v * s;
    x[at + b] = u * s + v * c;
  }
}

/** out[r] = sum_x W[r, x] h[x] for rows r0..r0+n-1 of W (in params at w), into out at o. */
export function project(
  params: Float64Array,
  w: number,
  rows: number,
  h: Float32Array,
  ht: number,
  H: number,
  out: Float64Array,
  o: number,
): void {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const base = w + r * H;
    for (let x = 0; x < H; x++) s += params[base + x] * h[ht + x];
    out[o + r] = s;
  }
}

/** grad[W rows] += dy[r] h[x] (the outer product of one token). */
export function projectBack(
  grad: Float64Array,
  w: number,
  rows: number,
  h: Float32Array,
  ht: number,
  H: number,
  dy: Float64Array,
  o: number,
): void {
  for (let r = 0; r < rows; r++) {
    const d = dy[o + r];
    if (d === 0) continue;
    const base = w + r * H;
    for (let x = 0; x < H; x++) grad[base + x] += d * h[ht + x];
  }
}

export interface IndexKeys {
  /** LayerNorm's normalised input xhat [L, D_I], its 1/sigma [L], and the post-RoPE keys k_I [L, D_I]. */
  kHat: Float64Array;
  kInv: Float64Array;
  kI: Float64Array;
}

/** k_I[s] = RoPE_s(LayerNorm(W_k h_s)) for s < L, with what the backward needs. */
export function indexKeys(g: IndexerGeometry, params: Float64Array, h: Float32Array, L: number): IndexKeys {
  const [H, DI] = [g.hidden, g.dim];
  const lay = paramLayout(g);
  const kHat = new Float64Array(L * DI);
  const kInv = new Float64Array(L);
  const kI = new Float64Array(L * DI);
  for (let s = 0; s < L; s++) {
    project(params, lay.wk, DI, h, s * H, H, kHat, s * DI);
    let mean = 0;
    for (let d = 0; d < DI; d++) mean += kHat[s * DI + d] / DI;
    let v = 0;
    for (let d = 0; d < DI; d++) v += (kHat[s * DI + d] - mean) ** 2 / DI;
    kInv[s] = 1 / Math.sqrt(v + 1e-6);
    for (let d = 0; d < DI; d++) {
      const xh = (kHat[s * DI + d] - mean) * kInv[s];
      kHat[s * DI + d] = xh;
      kI[s * DI + d] = xh * params[lay.gamma + d] + params[lay.beta + d];
    }
    rope(g, kI, s * DI, s, 1);
  }
  return { kHat, kInv, kI };
}

/** Adds d loss / d (W_k, gamma, beta) into grad from dkI [L, D_I] (overwritten: RoPE's transpose is applied in place). */
export function indexKeysBack(
  g: IndexerGeometry,
  params: Float64Array,
  h: Float32Array,
  L: number,
  keys: IndexKeys,
  dkI: Float64Array,
  grad: Float64Array,
): void {
  const [H, DI] = [g.hidden, g.dim];
  const lay = paramLayout(g);
  const { kHat, kInv } = keys;
  const dk = new Float64Array(DI);
  for (let s = 0; s < L; s++) {
    rope(g, dkI, s * DI, s, -1);
    // LayerNorm backward: dxhat = dy * gamma; dx = inv * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
    let m1 = 0;
    let m2 = 0;
    for (let d = 0; d < DI; d++) {
      const dy = dkI[s * DI + d];
      const xh = kHat[s * DI + d];
      grad[lay.gamma + d] += dy * xh;
      grad[lay.beta + d] += dy;
      const dxh = dy * params[lay.gamma + d];
      dk[d] = dxh;
      m1 += dxh / DI;
      m2 += (dxh * xh) / DI;
    }
    for (let d = 0; d < DI; d++) dk[d] = kInv[s] * (dk[d] - m1 - kHat[s * DI + d] * m2);
    projectBack(grad, lay.wk, DI, h, s * H, H, dk, 0);
  }
}

/** Loss of one sequence; when `grad` is given, adds d loss / d params into it (scaled by gradScale). */
export function indexerLossGrad(
  g: IndexerGeometry,
  params: Float64Array,
  seq: IndexerSequence,
  grad?: Float64Array,
  gradScale = 1,
): IndexerLoss {
  const { L, h } = seq;
  const [H, HI, DI] = [g.hidden, g.heads, g.dim];
  const lay = paramLayout(g);
  const chunk = seq.chunk ?? 64;
  const { kHat, kInv, kI } = indexKeys(g, params, h, L);
  const dkI = grad ? new Float64Array(L * DI) : undefined;
  const queries = L;
  let loss = 0;
  let massSum = 0;
  let massCount = 0;
  const qI = new Float64Array(HI * DI);
  const w = new Float64Array(HI);
  const dq = new Float64Array(HI * DI);
  const dw = new Float64Array(HI);
  const dots = new Float64Array(HI * L);
  const score = new Float64Array(L);
  for (let t0 = 0; t0 < L; t0 += chunk) {
    const t1 = Math.min(L, t0 + chunk);
    const p = seq.target(t0, t1);
    for (let t = t0; t < t1; t++) {
      const n = t + 1;
      const prow = (t - t0) * L;
      project(params, lay.wq, HI * DI, h, t * H, H, qI, 0);
      for (let j = 0; j < HI; j++) rope(g, qI, j * DI, t, 1);
      project(params, lay.proj, HI, h, t * H, H, w, 0);
      for (let j = 0; j < HI; j++) w[j] *= g.weightScale;
      let max = -Infinity;
      for (let s = 0; s < n; s++) {
        let I = 0;
        for (let j = 0; j < HI; j++) {
          let d = 0;
          for (let e = 0; e < DI; e++) d += qI[j * DI + e] * kI[s * DI + e];
          dots[j * L + s] = d;
          if (d > 0) I += w[j] * d;
        }
        score[s] = I;
        if (I > max) max = I;
      }
      let z = 0;
      for (let s = 0; s < n; s++) z += Math.exp(score[s] - max);
      const logZ = max + Math.log(z);
      for (let s = 0; s < n; s++) {
        const ps = p[prow + s];
        if (ps > 0) loss += (ps * (Math.log(ps) - (score[s] - logZ))) / queries;
      }
      if (seq.topk !== undefined && n > seq.topk) {
        massSum += massOfTopK(score, p, prow, n, seq.topk);
        massCount++;
      }
      if (!grad || !dkI) continue;
      dq.fill(0);
      dw.fill(0);
      for (let s = 0; s < n; s++) {
        const dI = ((Math.exp(score[s] - logZ) - p[prow + s]) / queries) * gradScale;
        for (let j = 0; j < HI; j++) {
          const d = dots[j * L + s];
          if (d <= 0) continue;
          dw[j] += dI * d;
          const gd = dI * w[j];
          for (let e = 0; e < DI; e++) {
            dq[j * DI + e] += gd * kI[s * DI + e];
            dkI[s * DI + e] += gd * qI[j * DI + e];
          }
        }
      }
      for (let j = 0; j < HI; j++) {
        rope(g, dq, j * DI, t, -1);
        dw[j] *= g.weightScale;
      }
      projectBack(grad, lay.wq, HI * DI, h, t * H, H, dq, 0);
      projectBack(grad, lay.proj, HI, h, t * H, H, dw, 0);
    }
  }
  if (grad && dkI) indexKeysBack(g, params, h, L, { kHat, kInv, kI }, dkI, grad);
  return { loss, queries, massSum, massCount };
}

/** Target mass inside the k keys of largest score among 0..n-1 (ties taken in key order, as eval/dsa-mass.ts). */
export function massOfTopK(score: Float64Array, p: Float64Array, prow: number, n: number, k: number): number {
  const sorted = Float64Array.from(score.subarray(0, n)).sort();
  const thr = sorted[n - k];
  let sum = 0;
  let taken = 0;
  for (let s = 0; s < n; s++)
    if (score[s] > thr) {
      sum += p[prow + s];
      taken++;
    }
  for (let s = 0; s < n && taken < k; s++)
    if (score[s] === thr) {
      sum += p[prow + s];
      taken++;
    }
  return sum;
}
