// How much of the true softmax attention mass the training-free DSA indexer's top-k captures, per layer, on
// real text (`longctx eval-mass`; results in docs/DSA-MASS.md). The model runs with exact attention (dense
// on the CPU, flash on WebGPU); an observer keeps every layer's post-RoPE keys and the queries of sampled
// positions. For each sampled query p and layer, the exact attention probabilities over keys 0..p (averaged
// over the layer's query heads, since DSA's key set is shared by a token's heads) are summed over the key
// set each selector picks with the same budget of B keys:
//   oracle        the B keys of largest mean probability (the best any shared set can do)
//   indexer:P     the indexer's top-B over all visible keys (float scores), P rotary pairs per index head
//   dsa:P         what the model runs: 4 sinks + the last 64 + the indexer's top-(B-68) of the keys between
//   trained       a trained indexer's top-B (when the model file has one: `longctx train-indexer`), dsa:trained as dsa:P
//   recent        the last B keys (a window)
//   sinks+recent  4 sinks + the last B-4 (StreamingLLM)
//   random        B distinct visible keys drawn uniformly
// Queries are sampled in the last quarter of each context [3C/4, C), so each sees at least 3C/4 keys.
import { uniformSchedule } from '../attention/sparse.js';
import { InputError } from '../errors.js';
import {
  indexKeysInto,
  indexQueries,
  indexScoresRow,
  layerIndexer,
  trainedIndexKeysInto,
  trainedIndexQueries,
  trainedIndexScoresRow,
  trainingFreeIndexer,
  type LayerIndexer,
} from '../model/caches/dsa-indexer.js';
import { createDecoder } from '../model/forward/create-decoder.js';
import type { LoadedModel } from '../model/types.js';
import type { Device } from '../runtime/device.js';

export interface DsaMassOptions {
  contexts: number[];
  /** Sampled queries per context. */
  samples: number;
  /** Key budgets B. */
  budgets: number[];
  /** Rotary pairs per index head of the indexers compared. */
  pairs: number[];
  /** Prefill chunk. */
  chunk: number;
}

/** One (context, budget, layer): the mean mass each selector keeps, by selector name. */
export interface DsaMassRow {
  context: number;
  budget: number;
  layer: number;
  [selector: string]: number;
}

export interface DsaMassProgress {
  /** Contexts measured so far, in order; rows cover exactly these. */
  done: number[];
  rows: DsaMassRow[];
  prefillSeconds: number;
  /** The first indexer's description. */
  indexer: string;
  selectors: string[];
}

const SINKS = 4;
const LOCAL = 64;

/** Seeded xorshift32 in [0, 1): the sampled positions and the random baseline. */
function xorshift(seed: number): () => number {
  return () => {
    seed ^= seed << 13;
    seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    seed >>>= 0;
    return seed / 4294967296;
  };
}

/** Sum of mass over the B entries of largest score among [from, to), ties taken in order. The sorted scores of
 * one (score array, from) are kept in `sorted` for the other budgets of the same query. */
function massOfTop(
  score: Float32Array,
  mass: Float64Array,
  from: number,
  to: number,
  B: number,
  sorted: Map<Float32Array, Map<number, Float32Array>>,
): number {
  const n = to - from;
  if (n <= 0 || B <= 0) return 0;
  if (B >= n) return sumRange(mass, from, to);
  let byFrom = sorted.get(score);
  if (!byFrom) sorted.set(score, (byFrom = new Map()));
  let s = byFrom.get(from);
  if (!s) byFrom.set(from, (s = Float32Array.from(score.subarray(from, to)).sort()));
  const thr = s[n - B];
  let sum = 0;
  let taken = 0;
  for (let i = from; i < to; i++)
    if (score[i] > thr) {
      sum += mass[i];
      taken++;
    }
  for (let i = from; i < to && taken < B; i++)
    if (score[i] === thr) {
      sum += mass[i];
      taken++;
    }
  return sum;
}

function sumRange(mass: Float64Array, from: number, to: number): number {
  let s = 0;
  for (let i = Math.max(0, from); i < to; i++) s += mass[i];
  return s;
}

export interface DsaMassEvents {
  onPrefill?: (seconds: number) => void;
  /** The rows so far after each context, so a run cut short by a time limit still reports the shorter ones. */
  onContext?: (p: DsaMassProgress) => void;
}

/** Prefills `ids` (at least max(contexts) tokens) once with exact attention, then measures context by context. */
export async function dsaAttentionMass(
  device: Device,
  model: LoadedModel,
  ids: number[],
  o: DsaMassOptions,
  events: DsaMassEvents = {},
): Promise<DsaMassProgress> {
  const c = model.config;
  const [Hq, Hkv, D, L] = [c.heads, c.kvHeads, c.headDim, c.layers];
  const N = Math.max(...o.contexts);
  if (ids.length < N) throw new InputError(`the text gives ${ids.length} tokens, fewer than ${N}`);
  const rnd = xorshift(12345);
  const sampled = new Map<number, number>(); // position -> context
  for (const C of o.contexts) {
    const lo = Math.floor((3 * C) / 4);
    const picks = new Set<number>();
    while (picks.size < Math.min(o.samples, C - lo)) picks.add(lo + Math.floor(rnd() * (C - lo)));
    for (const p of picks) sampled.set(p, C);
  }

  const keys = Array.from({ length: L }, () => new Float32Array(Hkv * N * D)); // [Hkv, N, D] per layer
  const queries = Array.from({ length: L }, () => new Map<number, Float32Array>()); // position -> [Hq, D]
  const trained = model.weights.layers.some((l) => l.indexer);
  const inputs = trained ? Array.from({ length: L }, () => new Float32Array(N * c.hiddenSize)) : []; // h [N, hidden]
  const observe = (layer: number, pos: number, T: number, q: Float32Array, k: Float32Array, h?: Float32Array) => {
    if (trained && !h) throw new InputError('a trained indexer is measured on the CPU backend (it reads h)');
    if (h && trained) inputs[layer].set(h.subarray(0, T * c.hiddenSize), pos * c.hiddenSize);
    for (let h = 0; h < Hkv; h++) keys[layer].set(k.subarray(h * T * D, (h + 1) * T * D), (h * N + pos) * D);
    for (let t = 0; t < T; t++) {
      if (!sampled.has(pos + t)) continue;
      const row = new Float32Array(Hq * D);
      for (let h = 0; h < Hq; h++) row.set(q.subarray((h * T + t) * D, (h * T + t + 1) * D), h * D);
      queries[layer].set(pos + t, row);
    }
  };
  const t0 = performance.now();
  const schedule = uniformSchedule(device.gpu ? 'flash' : 'dense');
  const decoder = await createDecoder(device, model, schedule, { maxTokens: N, chunk: o.chunk, observe });
  try {
    await decoder.forward(ids.slice(0, N));
  } finally {
    decoder.destroy();
  }
  const prefillSeconds = (performance.now() - t0) / 1000;
  events.onPrefill?.(prefillSeconds);

  const selectors = [
    'oracle',
    ...o.pairs.flatMap((P) => [`indexer:${P}`, `dsa:${P}`]),
    ...(trained ? ['trained', 'dsa:trained'] : []),
    'recent',
    'sinks+recent',
    'random',
  ];
  const totals = new Map<string, [number, number]>(); // `${C}|${layer}|${B}|${selector}` -> [sum, count]
  const add = (key: string, v: number) => {
    const t = totals.get(key) ?? [0, 0];
    t[0] += v;
    t[1]++;
    totals.set(key, t);
  };
  const mass = new Float64Array(N);
  const massF = new Float32Array(N);
  const logits = new Float64Array(N);
  const indexersOf = Array.from({ length: L }, (_, layer) =>
    o.pairs.map((P) => {
      const ix = trainingFreeIndexer(model.weights.layers[layer], c, { pairsPerHead: P });
      const indexK = new Float32Array(N * ix.dim);
      indexKeysInto(ix, keys[layer], N, D, indexK, 0);
      return { P, ix, indexK, score: new Float32Array(N) };
    }),
  );
  const trainedOf = trained
    ? model.weights.layers.map((l, layer) => trainedScorer(layerIndexer(l, c), inputs[layer], N))
    : [];
  const ix0 = trainingFreeIndexer(model.weights.layers[0], c, { pairsPerHead: o.pairs[0] });
  const progress: DsaMassProgress = {
    done: [],
    rows: [],
    prefillSeconds,
    indexer: ix0.description,
    selectors,
  };
  const group = Hq / Hkv;
  for (const context of o.contexts) {
    for (let layer = 0; layer < L; layer++) {
      const indexers = indexersOf[layer];
      for (const [p, C] of sampled) {
        if (C !== context) continue;
        const q = queries[layer].get(p)!;
        const n = p + 1;
        mass.fill(0, 0, n);
        for (let h = 0; h < Hq; h++) {
          const kh = Math.floor(h / group);
          let max = -Infinity;
          for (let s = 0; s < n; s++) {
            let d = 0;
            for (let e = 0; e < D; e++) d += q[h * D + e] * keys[layer][(kh * N + s) * D + e];
            logits[s] = d / Math.sqrt(D);
            if (logits[s] > max) max = logits[s];
          }
          let z = 0;
          for (let s = 0; s < n; s++) z += logits[s] = Math.exp(logits[s] - max);
          for (let s = 0; s < n; s++) mass[s] += logits[s] / z / Hq;
        }
        for (let s = 0; s < n; s++) massF[s] = mass[s];
        for (const { ix, indexK, score } of indexers)
          indexScoresRow(ix, indexQueries(ix, q, Hq, 1, D).q, 1, 0, indexK, n, score);
        const sorted = new Map<Float32Array, Map<number, Float32Array>>();
        const scorers: Array<{ name: string; score: Float32Array }> = indexers.map((x) => ({
          name: String(x.P),
          score: x.score,
        }));
        if (trained) scorers.push({ name: 'trained', score: trainedOf[layer](p) });
        for (const B of o.budgets) {
          const key = (m: string) => `${C}|${layer}|${B}|${m}`;
          add(key('oracle'), massOfTop(massF, mass, 0, n, B, sorted));
          const mid = Math.max(SINKS, n - LOCAL);
          for (const { name, score } of scorers) {
            add(key(name === 'trained' ? name : `indexer:${name}`), massOfTop(score, mass, 0, n, B, sorted));
            add(
              key(`dsa:${name}`),
              sumRange(mass, 0, Math.min(SINKS, n)) +
                sumRange(mass, mid, n) +
                massOfTop(score, mass, SINKS, mid, B - SINKS - LOCAL, sorted),
            );
          }
          add(key('recent'), sumRange(mass, n - B, n));
          add(
            key('sinks+recent'),
            sumRange(mass, 0, Math.min(SINKS, n)) + sumRange(mass, Math.max(SINKS, n - (B - SINKS)), n),
          );
          const picks = new Set<number>();
          while (picks.size < Math.min(B, n)) picks.add(Math.floor(rnd() * n));
          let r = 0;
          for (const s of picks) r += mass[s];
          add(key('random'), r);
        }
      }
    }
    progress.done.push(context);
    for (const B of o.budgets)
      for (let layer = 0; layer < L; layer++) {
        const row: DsaMassRow = { context, budget: B, layer };
        for (const m of selectors) {
          const [s, k] = totals.get(`${context}|${layer}|${B}|${m}`)!;
          row[m] = s / k;
        }
        progress.rows.push(row);
      }
    events.onContext?.(progress);
  }
  return progress;
}

/** A trained indexer's scores I[s] (s = 0..p) of query p, from the layer's attention inputs h [N, hidden]. */
function trainedScorer(ix: LayerIndexer, h: Float32Array, N: number): (p: number) => Float32Array {
  const hidden = ix.trained!.config.hiddenSize;
  const keys = new Float32Array(N * ix.dim);
  trainedIndexKeysInto(ix, h, N, 0, keys, 0);
  const score = new Float32Array(N);
  return (p) => {
    const { q, w } = trainedIndexQueries(ix, h.subarray(p * hidden, (p + 1) * hidden), 1, p);
    trainedIndexScoresRow(ix, q, w, keys, p + 1, score);
    return score;
  };
}

/** The markdown table of docs/DSA-MASS.md: a heading, the run's setting, one row per (context, B, layer). */
export function dsaMassMarkdown(p: DsaMassProgress, samples: number, setting: string): string {
  const m = p.selectors;
  return [
    `# Share of exact attention mass inside each selector's B keys ` +
      `(mean over ${samples} sampled queries in [3C/4, C) and the query heads)`,
    setting,
    '',
    `| context | B | layer | ${m.join(' | ')} |`,
    `| --- | --- | --- | ${m.map(() => '---').join(' | ')} |`,
    ...p.rows.map((r) => `| ${r.context} | ${r.budget} | ${r.layer} | ${m.map((s) => r[s].toFixed(3)).join(' | ')} |`),
  ].join('\n');
}
