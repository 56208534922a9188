// Choosing the next token from logits: greedy (temperature 0), or softmax at a temperature restricted to
// the smallest set whose probability reaches top_p (Holtzman et al. 2019, nucleus sampling), drawn
// with a seeded PRNG so runs repeat.
import { InputError } from '../../errors.js';

/** mulberry32: a small, fast 32-bit PRNG; uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SamplerOptions {
  temperature: number;
  topP?: number;
  seed?: number;
}

export class Sampler {
  private readonly random: () => number;
  private readonly probs: Float64Array;
  private readonly order: Uint32Array;

  constructor(
    vocabSize: number,
    readonly opts: SamplerOptions,
  ) {
    if (!(opts.temperature >= 0) || !Number.isFinite(opts.temperature))
      throw new InputError(`temperature must be a number >= 0, got ${opts.temperature}`);
    const p = opts.topP ?? 1;
    if (!(p > 0 && p <= 1)) throw new InputError(`top-p must be in (0, 1], got ${p}`);
    this.random = seededRandom(opts.seed ?? 0);
    this.probs = new Float64Array(vocabSize);
    this.order = new Uint32Array(vocabSize);
  }

  next(logits: Float32Array): number {
    if (this.opts.temperature === 0) return argmax(logits);
    const n = logits.length;
    const probs = this.probs;
    let max = -Infinity;
    for (let i = 0; i < n; i++) max = Math.max(max, logits[i]);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += probs[i] = Math.exp((logits[i] - max) / this.opts.temperature);
    const topP = this.opts.topP ?? 1;
    const u = this.random();
    if (topP >= 1) {
      let acc = 0;
      for (let i = 0; i < n; i++) if ((acc += probs[i] / sum) > u) return i;
      return n - 1;
    }
    const order = this.order;
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => probs[b] - probs[a] || a - b);
    let kept = 0;
    let mass = 0;
    while (kept < n && mass < topP * sum) mass += probs[order[kept++]];
    let acc = 0;
    for (let j = 0; j < kept; j++) if ((acc += probs[order[j]] / mass) > u) return order[j];
    return order[kept - 1];
  }
}

/** Index of the largest logit; ties go to the lowest index (as llama2.c's argmax). */
export function argmax(xs: Float32Array): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}
