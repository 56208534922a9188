// A model with random weights in a given shape, held in memory (no file, no tokenizer): for benchmarks
// and `plan`-style experiments at real sizes. Weights are uniform in +-sqrt(3 / in) (unit-variance
// activations), norms in [0.5, 1.5], drawn with a seeded xorshift so runs repeat. The matrices may be encoded
// as f16 or a llama.cpp block format (weights/quant-encode.ts) as a GGUF file would hold them, each as soon as it
// is drawn (a 1B model's f32 values are 5 GB); a block format applies to the embedding too (llama.cpp's --pure).
import { float32ToHalf } from '../../f16.js';
import { ShapeError } from '../../errors.js';
import { type EncodableQuant, QUANT_TYPE_IDS, QUANTISERS, quantise } from '../../weights/quant-encode.js';
import type { LayerWeights, LoadedModel, ModelConfig, WeightTensor } from '../types.js';

/** The encoding of a random model's layer matrices. */
export type RandomWeights = 'f32' | 'f16' | EncodableQuant;
export const RANDOM_WEIGHTS: readonly RandomWeights[] = ['f32', 'f16', 'q4_0', 'q4_k', 'q5_k', 'q6_k'];

function encoded(t: WeightTensor, as: RandomWeights): WeightTensor {
  if (as === 'f32') return t;
  const values = new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4);
  if (as === 'f16') return { ...t, dtype: 'f16', bytes: new Uint8Array(float32ToHalf(values).buffer) };
  const per = QUANTISERS[QUANT_TYPE_IDS[as]][0];
  if (t.shape[1] % per !== 0)
    throw new ShapeError(`${t.name}: rows of ${t.shape[1]} are not whole ${as.toUpperCase()} blocks of ${per}`);
  return { ...t, dtype: as, bytes: quantise(values, as) };
}

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

export function randomModel(config: ModelConfig, seed = 1, matrices: RandomWeights = 'f32'): LoadedModel {
  let s = (seed * 2654435761) >>> 0 || 1;
  const tensor = (name: string, shape: number[], lo: number, hi: number): WeightTensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    const span = (hi - lo) / 4294967296;
    // xorshift32 on an int32 (the same bits as on its uint32 image, without V8 boxing values >= 2^31).
    let r = s | 0;
    for (let i = 0; i < n; i++) {
      r ^= r << 13;
      r ^= r >>> 17;
      r ^= r << 5;
      values[i] = lo + (r >>> 0) * span;
    }
    s = r >>> 0;
    return { name, shape, dtype: 'f32', bytes: new Uint8Array(values.buffer) };
  };
  const c = config;
  const mat = (name: string, out: number, inp: number) =>
    encoded(tensor(name, [out, inp], -Math.sqrt(3 / inp), Math.sqrt(3 / inp)), matrices);
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
  // Quantised runs quantise the embedding too (a "pure" file: on WebGPU it stays quantised, and tied it is the head).
  const table = tensor('token_embd', [c.vocabSize, c.hiddenSize], -1, 1);
  const tokenEmbedding = matrices === 'f32' || matrices === 'f16' ? table : encoded(table, matrices);
  const weights = {
    tokenEmbedding,
    layers,
    outputNorm: norm('output_norm'),
    output: c.tiedEmbeddings ? undefined : mat('output', c.vocabSize, c.hiddenSize),
  };
  const tokenizer = { vocabSize: c.vocabSize, encode: () => [], decode: () => '', tokenBytes: () => new Uint8Array(0) };
  return { config, weights, tokenizer, source: `random ${c.layers}-layer ${c.hiddenSize}-wide model` };
}
