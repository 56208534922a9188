// What one layer does with the needle at the answer position (the last prompt token), from the exact model's
// post-RoPE keys and that position's query (eval/needle-eval.ts runs it; results in docs/DSA-MASS.md):
// - the exact attention mass on the needle's value tokens (softmax of q.k / sqrt(D) per query head over the
//   visible keys, averaged over the heads: DSA's key set is shared by a token's heads);
// - for each key scorer (the oracle = that mass, the indexers' scores) and budget k: are all / any of the
//   value tokens inside its top-k of every visible key, and inside what `dsa:topk=k` attends (the sinks, the
//   last `local` keys, and the top-k of the keys between: dsa:P), and what share of the needle's mass those keep;
// - for CCA (group g, window w): the exact mass on the group(s) that hold the needle behind the raw window
//   and on the raw window itself; and CCA's own attention (one softmax over the pooled cores it sees and its
//   raw keys, kernels/cca-cpu.ts's pass 2): its mass on the needle's core(s), and whether one of them is the
//   core it attends most.
// Top-k ties are taken in key order, as eval/dsa-mass.ts and the model's selection take them.
import { coresSeen } from '../kernels/cca-cpu.js';

export interface NeedleShape {
  heads: number;
  kvHeads: number;
  headDim: number;
}

export interface KeyScorer {
  name: string;
  /** Scores of keys 0..n-1 (larger is kept first). */
  score: ArrayLike<number>;
}

export interface CcaCores {
  name: string;
  group: number;
  window: number;
  /** Pooled core keys [Hkv, stride, D]: core j pools tokens [j g, (j + 1) g) (kernels/cca-cpu.ts ccaPoolCpu). */
  keys: Float32Array;
  stride: number;
}

export interface NeedleLayerInput {
  shape: NeedleShape;
  /** Visible keys: the answer position is n - 1. */
  n: number;
  /** Post-RoPE keys [Hkv, stride, D]. */
  keys: Float32Array;
  stride: number;
  /** The answer position's post-RoPE query [Hq, D]. */
  query: Float32Array;
  /** [from, to): the needle's value tokens. */
  span: [number, number];
  scorers: KeyScorer[];
  budgets: number[];
  /** DSA's forced keys around the top-k. */
  sinks: number;
  local: number;
  cca: CcaCores[];
}

export interface SelectorHit {
  /** `oracle`, an indexer's name, or `dsa:` + an indexer's name. */
  selector: string;
  budget: number;
  all: boolean;
  any: boolean;
  /** Exact mass on the value tokens kept / exact mass on the value tokens. */
  kept: number;
}

export interface CcaHit {
  name: string;
  /** Some value token lies in the raw window (CCA reads it exactly). */
  inWindow: boolean;
  /** Exact mass on the tokens of the core(s) holding value tokens behind the window, and on the raw window. */
  coreMass: number;
  windowMass: number;
  /** Under CCA's softmax over cores + raw keys: mass on the needle's core(s), and on the raw window. */
  ccaCoreMass: number;
  ccaWindowMass: number;
  /** CCA's most attended core holds a value token; null when no value token lies behind the window. */
  top1: boolean | null;
}

export interface NeedleLayerResult {
  needleMass: number;
  hits: SelectorHit[];
  cca: CcaHit[];
}

/** Mean over query heads of the softmax of q.k / sqrt(D) over keys 0..n-1, in doubles. */
export function exactMass(x: Pick<NeedleLayerInput, 'shape' | 'n' | 'keys' | 'stride' | 'query'>): Float64Array {
  const { heads, kvHeads, headDim: D } = x.shape;
  const group = heads / kvHeads;
  const mass = new Float64Array(x.n);
  const logits = new Float64Array(x.n);
  for (let h = 0; h < heads; h++) {
    const base = Math.floor(h / group) * x.stride * D;
    let max = -Infinity;
    for (let s = 0; s < x.n; s++) {
      let d = 0;
      for (let e = 0; e < D; e++) d += x.query[h * D + e] * x.keys[base + s * D + e];
      logits[s] = d / Math.sqrt(D);
      if (logits[s] > max) max = logits[s];
    }
    let z = 0;
    for (let s = 0; s < x.n; s++) z += logits[s] = Math.exp(logits[s] - max);
    for (let s = 0; s < x.n; s++) mass[s] += logits[s] / z / heads;
  }
  return mass;
}

/** Place of key s among keys [from, to) by score, largest first, ties in key order (0 = kept first). */
function rankAmong(score: ArrayLike<number>, s: number, from: number, to: number): number {
  const v = score[s];
  let r = 0;
  for (let t = from; t < to; t++) if (score[t] > v || (score[t] === v && t < s)) r++;
  return r;
}

/** For each budget: all / any value tokens kept, and the kept share of their mass, given a token's membership. */
function hitsOf(
  selector: string,
  budgets: number[],
  tokens: number[],
  mass: Float64Array,
  needleMass: number,
  kept: (s: number, k: number) => boolean,
): SelectorHit[] {
  return budgets.map((budget) => {
    const inside = tokens.filter((s) => kept(s, budget));
    const m = inside.reduce((a, s) => a + mass[s], 0);
    return {
      selector,
      budget,
      all: inside.length === tokens.length,
      any: inside.length > 0,
      kept: needleMass > 0 ? m / needleMass : 0,
    };
  });
}

/** What `dsa:topk=k` with a scorer is called: dsa:P for indexer:P (as eval/dsa-mass.ts names it), dsa:trained. */
export function dsaName(scorer: string): string {
  return `dsa:${scorer.replace(/^indexer:/, '')}`;
}

export function measureNeedleLayer(x: NeedleLayerInput): NeedleLayerResult {
  const { n } = x;
  const [from, to] = x.span;
  const tokens: number[] = [];
  for (let s = Math.max(0, from); s < Math.min(to, n); s++) tokens.push(s);
  const mass = exactMass(x);
  const needleMass = tokens.reduce((a, s) => a + mass[s], 0);
  const hits: SelectorHit[] = [];
  const mid0 = Math.min(x.sinks, n);
  const mid1 = Math.max(mid0, n - x.local);
  for (const { name, score } of [{ name: 'oracle', score: mass }, ...x.scorers]) {
    const ranks = new Map(tokens.map((s) => [s, rankAmong(score, s, 0, n)]));
    hits.push(...hitsOf(name, x.budgets, tokens, mass, needleMass, (s, k) => ranks.get(s)! < k));
    if (name === 'oracle') continue;
    const middle = new Map(tokens.map((s) => [s, s >= mid0 && s < mid1 ? rankAmong(score, s, mid0, mid1) : -1]));
    hits.push(...hitsOf(dsaName(name), x.budgets, tokens, mass, needleMass, (s, k) => middle.get(s)! < k));
  }
  return { needleMass, hits, cca: x.cca.map((c) => measureCca(x, c, tokens, mass)) };
}

function measureCca(x: NeedleLayerInput, c: CcaCores, tokens: number[], mass: Float64Array): CcaHit {
  const { heads, kvHeads, headDim: D } = x.shape;
  const n = x.n;
  const seen = coresSeen(n - 1, c.group, c.window);
  const rawFrom = seen * c.group;
  const needleCores = [...new Set(tokens.filter((s) => s < rawFrom).map((s) => Math.floor(s / c.group)))];
  let coreMass = 0;
  for (const j of needleCores) for (let s = j * c.group; s < (j + 1) * c.group; s++) coreMass += mass[s];
  let windowMass = 0;
  for (let s = rawFrom; s < n; s++) windowMass += mass[s];
  // CCA's pass 2 at the answer position: one softmax over cores [0, seen) and raw keys [rawFrom, n).
  const coreProb = new Float64Array(seen);
  let ccaWindowMass = 0;
  const logits = new Float64Array(seen + n - rawFrom);
  const group = heads / kvHeads;
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / group);
    const q = x.query.subarray(h * D, (h + 1) * D);
    const dot = (keys: Float32Array, row: number) => {
      let d = 0;
      for (let e = 0; e < D; e++) d += q[e] * keys[row * D + e];
      return d / Math.sqrt(D);
    };
    for (let j = 0; j < seen; j++) logits[j] = dot(c.keys, kvh * c.stride + j);
    for (let s = rawFrom; s < n; s++) logits[seen + s - rawFrom] = dot(x.keys, kvh * x.stride + s);
    let max = -Infinity;
    for (const v of logits) max = Math.max(max, v);
    let z = 0;
    for (let i = 0; i < logits.length; i++) z += logits[i] = Math.exp(logits[i] - max);
    for (let j = 0; j < seen; j++) coreProb[j] += logits[j] / z / heads;
    for (let i = seen; i < logits.length; i++) ccaWindowMass += logits[i] / z / heads;
  }
  let best = -1;
  for (let j = 0; j < seen; j++) if (best < 0 || coreProb[j] > coreProb[best]) best = j;
  return {
    name: c.name,
    inWindow: tokens.some((s) => s >= rawFrom),
    coreMass,
    windowMass,
    ccaCoreMass: needleCores.reduce((a, j) => a + coreProb[j], 0),
    ccaWindowMass,
    top1: needleCores.length === 0 ? null : needleCores.includes(best),
  };
}
