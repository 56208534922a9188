// Test support for the indexer-training tests (CPU backward and its WebGPU twin): a one-layer model config
// for the indexer geometry, and random sequences with random target rows.
import type { IndexerSequence } from '../src/train/indexer-grad.js';
import { seededNormal } from '../src/train/indexer-params.js';
import type { ModelConfig } from '../src/model/types.js';

export const indexerTestConfig = (
  layout: ModelConfig['ropeLayout'],
  hidden: number,
  headDim: number,
  contextLength: number,
): ModelConfig => ({
  architecture: 'llama',
  vocabSize: 32,
  hiddenSize: hidden,
  intermediateSize: 16,
  layers: 1,
  heads: 4,
  kvHeads: 2,
  headDim,
  rmsNormEps: 1e-5,
  ropeTheta: 100,
  rope: { kind: 'none' },
  ropeLayout: layout,
  contextLength,
  tiedEmbeddings: true,
  attentionBias: false,
});

/** A random sequence with its own random target rows (normalised over each query's visible keys, about a
 * fifth of them zero; the rest uniform to the `power`). */
export function randomIndexerSequence(
  L: number,
  hidden: number,
  seed: number,
  chunk: number,
  o: { power: number; topk?: number },
): IndexerSequence {
  const { normal, uniform } = seededNormal(seed);
  const h = Float32Array.from({ length: L * hidden }, () => normal());
  const p = new Float64Array(L * L);
  for (let t = 0; t < L; t++) {
    let z = 0;
    for (let s = 0; s <= t; s++) z += p[t * L + s] = uniform() < 0.2 ? 0 : uniform() ** o.power;
    if (z === 0) p[t * L] = z = 1;
    for (let s = 0; s <= t; s++) p[t * L + s] /= z;
  }
  return { h, L, chunk, topk: o.topk, target: (t0, t1) => p.slice(t0 * L, t1 * L) };
}
