// A training-free lightning indexer for DSA layers of a Llama-family model (DeepSeek-V3.2 sec. 2.1 defines
// the indexer I[t,s] = sum_j w[t,j] ReLU(q_I[j,t] . k_I[s]); V3.2 trains it, Llama checkpoints have none).
// Derived from the layer's own projections: index head j = KV head j (one per GQA group) looks at P whole
// rotary pairs C_j of that head, chosen once from the weights, so RoPE stays consistent (a pair rotates as a
// unit, and the partial dot q.k over whole pairs depends on positions only through t - s, as the full one does).
//   pair score(j, i) = || mean over the group's query heads of W_Q diag(g) rows of pair i || * || W_K diag(g) rows of pair i ||
// (g = the layer's attention RMSNorm weight, folded in because it scales the input of both projections).
// The pairs of largest score carry most of |q.k| on average: they are where the group's logits come from.
// Index key k_I[s] = concat over KV heads j of post-RoPE k_j[s] on C_j (D_I = Hkv * 2P). Index query q_I[j,t]
// = the group's mean post-RoPE query on C_j in slot j, zeros elsewhere; so q_I[j,t] . k_I[s] is the group's
// mean logit restricted to C_j (times sqrt(D)). w[t,j] = 1/sqrt(D), the attention's own scale: I is then a
// sum over groups of ReLU'd partial logits, in logit units (a uniform w does not change the ranking).
// A trained indexer (LayerWeights.indexer, from GGUF blk.N.indexer.*) is used instead when the file has one, in
// DeepSeek-V3.2's form on the layer's attention input h (after the attention RMSNorm): q_I = W_q h split in H_I
// heads of D_I, k_I = LayerNorm(W_k h) (k_norm weight and bias, eps 1e-6, when present), the model's RoPE (same
// frequencies and pair layout) on the first head-dim channels of q_I and k_I, w = W_proj h / sqrt(H_I D_I).
// V3.2's Hadamard rotation before FP8 is orthogonal on both sides, so dots are unchanged and it is omitted;
// its low-rank query path (MLA's q latent) has no Llama counterpart, so W_q reads h.
import { InputError, ShapeError } from '../../errors.js';
import { WeightMatrix } from '../../weights/weight-matrix.js';
import { ropeInverseFrequencies } from '../positions/rope.js';
import type { LayerWeights, ModelConfig } from '../types.js';
import type { ResidentTrainedIndexer } from '../../attention/layers/dsa-trained-gpu.js';

export interface TrainedIndexer {
  wq: WeightMatrix;
  wk: WeightMatrix;
  proj: WeightMatrix;
  kNormWeight?: Float32Array;
  kNormBias?: Float32Array;
  invFreq: Float64Array;
  config: ModelConfig;
}

export interface LayerIndexer {
  /** Set when the weights file has a trained indexer: index q, k, w come from h, not from the layer's q, k. */
  trained?: TrainedIndexer;
  /** H_I: one index head per KV head (training-free), or the trained indexer's head count. */
  heads: number;
  /** D_I = heads * 2 * pairs. */
  dim: number;
  /** Per index head j: the 2P channels (within head dim D) of KV head j, in slot order. */
  channels: Int32Array[];
  /** w[t, j], the same for every token and head. */
  weight: number;
  /** What was used, for logs and the report. */
  description: string;
}

/** Channels of rotary pair i: (2i, 2i+1) in the interleaved (GGUF) layout, (i, i + D/2) in the half (HF) one. */
export function pairChannels(i: number, D: number, layout: ModelConfig['ropeLayout']): [number, number] {
  return layout === 'interleaved' ? [2 * i, 2 * i + 1] : [i, i + D / 2];
}

function rowNormSq(row: Float32Array, g: Float32Array): number {
  let s = 0;
  for (let c = 0; c < row.length; c++) s += (row[c] * g[c]) ** 2;
  return s;
}

export function trainingFreeIndexer(
  layer: LayerWeights,
  c: ModelConfig,
  opts: { pairsPerHead?: number } = {},
): LayerIndexer {
  const D = c.headDim;
  const half = D / 2;
  const P = Math.min(opts.pairsPerHead ?? 4, half);
  if (!Number.isInteger(P) || P < 1)
    throw new ShapeError(`pairsPerHead must be a positive integer, got ${opts.pairsPerHead}`);
  const group = c.heads / c.kvHeads;
  const wq = new WeightMatrix(layer.wq, true);
  const wk = new WeightMatrix(layer.wk, true);
  const g = new WeightMatrix(layer.attnNorm, true).toFloat32();
  const channels: Int32Array[] = [];
  for (let j = 0; j < c.kvHeads; j++) {
    const scores: { pair: number; score: number }[] = [];
    for (let i = 0; i < half; i++) {
      let qn = 0;
      let kn = 0;
      for (const ch of pairChannels(i, D, c.ropeLayout)) {
        const mean = new Float32Array(c.hiddenSize);
        for (let h = j * group; h < (j + 1) * group; h++) {
          const r = wq.row(h * D + ch);
          for (let x = 0; x < mean.length; x++) mean[x] += r[x] / group;
        }
        qn += rowNormSq(mean, g);
        kn += rowNormSq(wk.row(j * D + ch), g);
      }
      scores.push({ pair: i, score: Math.sqrt(qn * kn) });
    }
    scores.sort((a, b) => b.score - a.score || a.pair - b.pair);
    const chosen = scores
      .slice(0, P)
      .map((s) => s.pair)
      .sort((a, b) => a - b);
    channels.push(Int32Array.from(chosen.flatMap((i) => pairChannels(i, D, c.ropeLayout))));
  }
  const dim = c.kvHeads * 2 * P;
  return {
    heads: c.kvHeads,
    dim,
    channels,
    weight: 1 / Math.sqrt(D),
    description:
      `training-free: ${c.kvHeads} index heads x ${2 * P} channels (${P} of ${half} rotary pairs ` +
      `per KV head by |W_Q||W_K|), D_I ${dim}, w = 1/sqrt(${D})`,
  };
}

/** The layer's indexer: its trained one when the weights have it, else the training-free one. */
export function layerIndexer(layer: LayerWeights, c: ModelConfig, opts: { pairsPerHead?: number } = {}): LayerIndexer {
  const t = layer.indexer;
  if (!t) return trainingFreeIndexer(layer, c, opts);
  const [dim, heads] = [t.wk.shape[0], t.proj.shape[0]];
  if (dim < c.headDim || dim % 2 !== 0)
    throw new InputError(
      `${t.wk.name}: a trained indexer needs an even index dim of at least the head dim ${c.headDim} (RoPE on ` +
        `its first ${c.headDim} channels); got ${dim}`,
    );
  const vec = (w?: LayerWeights['wk']) => w && new WeightMatrix(w, true).toFloat32();
  return {
    trained: {
      wq: new WeightMatrix(t.wq, true),
      wk: new WeightMatrix(t.wk, true),
      proj: new WeightMatrix(t.proj, true),
      kNormWeight: vec(t.kNormWeight),
      kNormBias: vec(t.kNormBias),
      invFreq: ropeInverseFrequencies(c),
      config: c,
    },
    heads,
    dim,
    channels: [],
    weight: 1 / Math.sqrt(heads * dim),
    description: `trained (${t.wq.name.replace(/attn_q\.weight$/, '*')}): ${heads} index heads x ${dim}, w = W_proj h / sqrt(${heads * dim})`,
  };
}

/** A trained indexer's weights as the GPU-resident DSA layer takes them (attention/layers/dsa-trained-gpu.ts):
 * [W_q; W_k; W_proj] rows stacked over the hidden size, then k_norm's weight and bias (1 and 0 when absent). */
export function residentTrainedIndexer(ix: LayerIndexer): ResidentTrainedIndexer {
  const ti = ix.trained!;
  const [HI, DI, H] = [ix.heads, ix.dim, ti.config.hiddenSize];
  const rows = [
    ...Array.from({ length: HI * DI }, (_, r) => ti.wq.row(r)),
    ...Array.from({ length: DI }, (_, r) => ti.wk.row(r)),
    ...Array.from({ length: HI }, (_, r) => ti.proj.row(r)),
  ];
  const weights = new Float32Array(rows.length * H + 2 * DI);
  rows.forEach((row, r) => weights.set(row, r * H));
  const g = rows.length * H;
  for (let d = 0; d < DI; d++) {
    weights[g + d] = ti.kNormWeight?.[d] ?? 1;
    weights[g + DI + d] = ti.kNormBias?.[d] ?? 0;
  }
  const norm = ti.kNormWeight !== undefined || ti.kNormBias !== undefined;
  return { hidden: H, weights, norm, weight: ix.weight, invFreq: ti.invFreq, ropeLayout: ti.config.ropeLayout };
}

/** The model's RoPE on the first head-dim channels of `rows` vectors of length `stride` at `offset`, position pos. */
function ropeHead(
  x: Float32Array,
  offset: number,
  rows: number,
  stride: number,
  pos: number,
  ti: TrainedIndexer,
): void {
  const c = ti.config;
  for (let i = 0; i < c.headDim / 2; i++) {
    const [a, b] = pairChannels(i, c.headDim, c.ropeLayout);
    const angle = pos * ti.invFreq[i];
    const [cos, sin] = [Math.cos(angle), Math.sin(angle)];
    for (let r = 0; r < rows; r++) {
      const base = offset + r * stride;
      const [u, v] = [x[base + a], x[base + b]];
      x[base + a] = u * cos - v * sin;
      x[base + b] = u * sin + v * cos;
    }
  }
}

/** A trained indexer's keys [T, D_I] of h [T, hidden] at positions first.., written into out at row `at`. */
export function trainedIndexKeysInto(
  ix: LayerIndexer,
  h: Float32Array,
  T: number,
  first: number,
  out: Float32Array,
  at: number,
): void {
  const ti = ix.trained!;
  const H = ti.config.hiddenSize;
  const D_I = ix.dim;
  for (let t = 0; t < T; t++) {
    const row = (at + t) * D_I;
    const x = h.subarray(t * H, (t + 1) * H);
    for (let d = 0; d < D_I; d++) out[row + d] = dotRow(ti.wk.row(d), x);
    if (ti.kNormWeight || ti.kNormBias) {
      let mean = 0;
      for (let d = 0; d < D_I; d++) mean += out[row + d] / D_I;
      let v = 0;
      for (let d = 0; d < D_I; d++) v += (out[row + d] - mean) ** 2 / D_I;
      const inv = 1 / Math.sqrt(v + 1e-6);
      for (let d = 0; d < D_I; d++)
        out[row + d] = (out[row + d] - mean) * inv * (ti.kNormWeight?.[d] ?? 1) + (ti.kNormBias?.[d] ?? 0);
    }
    ropeHead(out, row, 1, D_I, first + t, ti);
  }
}

/** A trained indexer's queries q_I [H_I, T, D_I] and weights w [T, H_I] of h [T, hidden] at positions first... */
export function trainedIndexQueries(
  ix: LayerIndexer,
  h: Float32Array,
  T: number,
  first: number,
): { q: Float32Array; w: Float32Array } {
  const ti = ix.trained!;
  const H = ti.config.hiddenSize;
  const [HI, D_I] = [ix.heads, ix.dim];
  const q = new Float32Array(HI * T * D_I);
  const w = new Float32Array(T * HI);
  for (let t = 0; t < T; t++) {
    const x = h.subarray(t * H, (t + 1) * H);
    for (let j = 0; j < HI; j++) {
      for (let d = 0; d < D_I; d++) q[(j * T + t) * D_I + d] = dotRow(ti.wq.row(j * D_I + d), x);
      w[t * HI + j] = dotRow(ti.proj.row(j), x) * ix.weight;
    }
    ropeHead(q, t * D_I, HI, T * D_I, first + t, ti);
  }
  return { q, w };
}

/** A trained indexer's I[s] = sum_j w[j] ReLU(q_I[j] . k_I[s]) for one query (trainedIndexQueries with T = 1)
 * against keys 0..n-1 [n, D_I] (trainedIndexKeysInto). */
export function trainedIndexScoresRow(
  ix: LayerIndexer,
  q: Float32Array,
  w: Float32Array,
  keys: Float32Array,
  n: number,
  out: Float32Array,
): void {
  for (let s = 0; s < n; s++) {
    let total = 0;
    for (let j = 0; j < ix.heads; j++) {
      let d = 0;
      for (let e = 0; e < ix.dim; e++) d += q[j * ix.dim + e] * keys[s * ix.dim + e];
      if (d > 0) total += w[j] * d;
    }
    out[s] = total;
  }
}

function dotRow(row: Float32Array, x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += row[i] * x[i];
  return s;
}

/** Index keys [T, D_I] of post-RoPE keys k [Hkv, T, D] (head-major), written into out at row `at`. */
export function indexKeysInto(
  ix: LayerIndexer,
  k: Float32Array,
  T: number,
  D: number,
  out: Float32Array,
  at: number,
): void {
  const per = ix.dim / ix.heads;
  for (let t = 0; t < T; t++) {
    const row = (at + t) * ix.dim;
    for (let j = 0; j < ix.heads; j++) {
      const ch = ix.channels[j];
      const base = (j * T + t) * D;
      for (let c = 0; c < per; c++) out[row + j * per + c] = k[base + ch[c]];
    }
  }
}

/** Index queries q_I [H_I, T, D_I] and weights w [T, H_I] of post-RoPE queries q [Hq, T, D] (head-major). */
export function indexQueries(
  ix: LayerIndexer,
  q: Float32Array,
  heads: number,
  T: number,
  D: number,
): { q: Float32Array; w: Float32Array } {
  const per = ix.dim / ix.heads;
  const group = heads / ix.heads;
  const out = new Float32Array(ix.heads * T * ix.dim);
  for (let j = 0; j < ix.heads; j++) {
    const ch = ix.channels[j];
    for (let t = 0; t < T; t++) {
      const row = (j * T + t) * ix.dim + j * per;
      for (let h = j * group; h < (j + 1) * group; h++) {
        const base = (h * T + t) * D;
        for (let c = 0; c < per; c++) out[row + c] += q[base + ch[c]] / group;
      }
    }
  }
  return { q: out, w: new Float32Array(T * ix.heads).fill(ix.weight) };
}

/** I[s] for one query (its index query rows at token t of q_I [H_I, T, D_I]) against keys 0..n-1 [n, D_I]. */
export function indexScoresRow(
  ix: LayerIndexer,
  qI: Float32Array,
  T: number,
  t: number,
  keys: Float32Array,
  n: number,
  out: Float32Array,
): void {
  const per = ix.dim / ix.heads;
  for (let s = 0; s < n; s++) {
    let total = 0;
    for (let j = 0; j < ix.heads; j++) {
      const qrow = (j * T + t) * ix.dim + j * per;
      let d = 0;
      for (let c = 0; c < per; c++) d += qI[qrow + c] * keys[s * ix.dim + j * per + c];
      if (d > 0) total += ix.weight * d;
    }
    out[s] = total;
  }
}
