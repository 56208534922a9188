// A model with random weights in a given shape, held in memory (no file, no tokenizer): for benchmarks
// and `plan`-style experiments at real sizes. Weights are uniform in +-sqrt(3 / in) (unit-variance
// activations), norms in [0.5, 1.5], drawn with a seeded xorshift so runs repeat.
import type { LayerWeights, LoadedModel, ModelConfig, WeightTensor } from '../types.js';

export const LLAMA_3_2_1B_SHAPE: ModelConfig = {
  architecture: 'llama',
  vocabSize: 128256,
  hiddenSize: 2048,
  intermediateSize: 8192,
  layers: 16,
  heads: 32,
  kvHeads: 8,
  headDim: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 500000,
  rope: { kind: 'none' },
  ropeLayout: 'half',
  contextLength: 131072,
  tiedEmbeddings: true,
  attentionBias: false,
  bosTokenId: 128000,
  eosTokenId: 128001,
};

export function randomModel(config: ModelConfig, seed = 1): LoadedModel {
  let s = (seed * 2654435761) >>> 0 || 1;
  const tensor = (name: string, shape: number[], lo: number, hi: number): WeightTensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    const span = (hi - lo) / 4294967296;
    // The state in a local for the loop: V8 keeps a closure's captured variable in its context object, a load
    // and a store per step (24 s for the 1B shape's 1.2G values on the H200 machine's CPU).
    let x = s;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      values[i] = lo + x * span;
    }
    s = x;
    return { name, shape, dtype: 'f32', bytes: new Uint8Array(values.buffer) };
  };
  const c = config;
  const mat = (name: string, out: number, inp: number) =>
    tensor(name, [out, inp], -Math.sqrt(3 / inp), Math.sqrt(3 / inp));
  const norm = (name: string) => tensor(name, [c.hiddenSize], 0.5, 1.5);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.layers; i++) {
    layers.push({
      attnNorm: norm(`blk.${i}.attn_norm`),
      ffnNorm: norm(`blk.${i}.ffn_norm`),
      wq: mat(`blk.${i}.attn_q`, c.heads * c.headDim, c.hiddenSize),
      wk: mat(`blk.${i}.attn_k`, c.kvHeads * c.headDim, c.hiddenSize),
      wv: mat(`blk.${i}.attn_v`, c.kvHeads * c.headDim, c.hiddenSize),
      wo: mat(`blk.${i}.attn_output`, c.hiddenSize, c.heads * c.headDim),
      wGate: mat(`blk.${i}.ffn_gate`, c.intermediateSize, c.hiddenSize),
      wUp: mat(`blk.${i}.ffn_up`, c.intermediateSize, c.hiddenSize),
      wDown: mat(`blk.${i}.ffn_down`, c.hiddenSize, c.intermediateSize),
    });
  }
  const tokenEmbedding = tensor('token_embd', [c.vocabSize, c.hiddenSize], -1, 1);
  const weights = {
    tokenEmbedding,
    layers,
    outputNorm: norm('output_norm'),
    output: c.tiedEmbeddings ? undefined : mat('output', c.vocabSize, c.hiddenSize),
  };
  const tokenizer = { vocabSize: c.vocabSize, encode: () => [], decode: () => '', tokenBytes: () => new Uint8Array(0) };
  return { config, weights, tokenizer, source: `random ${c.layers}-layer ${c.hiddenSize}-wide model` };
}
