// The contract between weight loaders (GGUF, safetensors + config.json), tokenizers and the decoder.
// Loaders turn a file into a LoadedModel; the decoder and `plan` only ever see these types.

/** RoPE context extension, read from the model's config or set on the command line. */
export type RopeScaling =
  | { kind: 'none' }
  /** Positions divided by factor (Chen et al. 2023, position interpolation). */
  | { kind: 'linear'; factor: number }
  /** NTK-aware: theta scaled by factor^(d/(d-2)) (bloc97; HF "dynamic" uses it per length). */
  | { kind: 'ntk'; factor: number; dynamic?: boolean; originalContext?: number }
  /** YaRN (Peng et al. 2023): ramp between interpolation and extrapolation per frequency, plus mscale. */
  | {
      kind: 'yarn';
      factor: number;
      originalContext: number;
      betaFast: number;
      betaSlow: number;
      attentionFactor?: number;
    }
  /** Llama 3.1: wavelengths above originalContext/lowFreqFactor divided by factor, below .../highFreqFactor kept. */
  | { kind: 'llama3'; factor: number; originalContext: number; lowFreqFactor: number; highFreqFactor: number };

export interface ModelConfig {
  architecture: 'llama' | 'qwen2' | 'mistral';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  rope: RopeScaling;
  /**
   * 'interleaved': rotate pairs (2i, 2i+1) — GGUF llama / llama2.c (convert_hf_to_gguf permutes Q, K).
   * 'half': rotate (i, i + d/2) — Hugging Face and GGUF qwen2.
   */
  ropeLayout: 'interleaved' | 'half';
  /** The context the model was trained at (max_position_embeddings / llama.context_length). */
  contextLength: number;
  tiedEmbeddings: boolean;
  /** Qwen2 has biases on q, k, v. */
  attentionBias: boolean;
  bosTokenId?: number;
  eosTokenId?: number;
}

export type { WeightDType, WeightTensor } from '../weights/weight-tensor.js';
import type { WeightTensor } from '../weights/weight-tensor.js';

export interface LayerWeights {
  attnNorm: WeightTensor;
  wq: WeightTensor;
  wk: WeightTensor;
  wv: WeightTensor;
  wo: WeightTensor;
  bq?: WeightTensor;
  bk?: WeightTensor;
  bv?: WeightTensor;
  ffnNorm: WeightTensor;
  wGate: WeightTensor;
  wUp: WeightTensor;
  wDown: WeightTensor;
  /** A trained DSA lightning indexer, when the file has one (GGUF blk.N.indexer.*; see model/caches/dsa-indexer.ts). */
  indexer?: TrainedIndexerWeights;
}

/** DeepSeek-V3.2's indexer on a Llama layer's attention input h: q_I = W_q h [H_I * D_I], k_I = LayerNorm(W_k h)
 * [D_I], w = W_proj h [H_I]; RoPE on the first head-dim channels of q_I and k_I. */
export interface TrainedIndexerWeights {
  wq: WeightTensor;
  wk: WeightTensor;
  proj: WeightTensor;
  kNormWeight?: WeightTensor;
  kNormBias?: WeightTensor;
}

export interface ModelWeights {
  tokenEmbedding: WeightTensor;
  layers: LayerWeights[];
  outputNorm: WeightTensor;
  /** Absent when tied to tokenEmbedding. */
  output?: WeightTensor;
}

export interface Tokenizer {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  /** Text of one token, for streaming (may be a partial UTF-8 sequence: the decoder buffers bytes). */
  tokenBytes(id: number): Uint8Array;
  readonly vocabSize: number;
  readonly bosId?: number;
  readonly eosId?: number;
}

export interface LoadedModel {
  config: ModelConfig;
  weights: ModelWeights;
  tokenizer: Tokenizer;
  /** Where it came from, for messages. */
  source: string;
}
