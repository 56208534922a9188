// What the positional-method tests on WebGPU share: a small random model's shape and the largest difference.
import type { ModelConfig } from '../src/model/types.js';

/** A small Llama shape (6 query heads over 2 KV heads, D 16, trained context 64) with overrides. */
export const positionsShape = (o: Partial<ModelConfig>): ModelConfig => ({
  architecture: 'llama',
  vocabSize: 97,
  hiddenSize: 40,
  intermediateSize: 56,
  layers: 2,
  heads: 6,
  kvHeads: 2,
  headDim: 16,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  rope: { kind: 'none' },
  ropeLayout: 'half',
  contextLength: 64,
  tiedEmbeddings: false,
  attentionBias: false,
  ...o,
});

export const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
};
