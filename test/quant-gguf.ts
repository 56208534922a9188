// Test support: a tiny GGUF (a 2-layer Llama of width 256 with stories260K's tokenizer) whose matrices are
// in the ggml types a function picks, written by the test GGUF builder (quant.test.ts, quant-kernels.test.ts).
import { parseGguf } from '../src/model/load/gguf-reader.js';
import { randomModel } from '../src/model/load/random-model.js';
import type { ModelConfig } from '../src/model/types.js';
import { buildGguf, encodeTensor, metaValue, type BuilderTensor, type MetaValue } from './gguf-builder.js';
import { fixtureBytes } from './model-support.js';

/** A 2-layer Llama of width 256 with stories260K's tokenizer, its matrices in the given ggml types. */
export function quantisedGguf(types: (name: string) => number): Buffer {
  const config: ModelConfig = {
    architecture: 'llama',
    vocabSize: 512,
    hiddenSize: 256,
    intermediateSize: 512,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    headDim: 64,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    rope: { kind: 'none' },
    ropeLayout: 'interleaved',
    contextLength: 256,
    tiedEmbeddings: false,
    attentionBias: false,
  };
  const m = randomModel(config, 5);
  const fixture = parseGguf(fixtureBytes(), 'fixture').metadata;
  const meta: Array<[string, MetaValue]> = [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['llama.embedding_length', { type: 'u32', value: 256 }],
    ['llama.feed_forward_length', { type: 'u32', value: 512 }],
    ['llama.block_count', { type: 'u32', value: 2 }],
    ['llama.attention.head_count', { type: 'u32', value: 4 }],
    ['llama.attention.head_count_kv', { type: 'u32', value: 2 }],
    ['llama.context_length', { type: 'u32', value: 256 }],
    ...[...fixture]
      .filter(([k]) => k.startsWith('tokenizer.'))
      .map(([k, v]) => [k, metaValue(v)] as [string, MetaValue]),
  ];
  const tensors: BuilderTensor[] = [];
  const add = (name: string, t: { shape: readonly number[]; bytes: Uint8Array }) => {
    const values = new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4);
    const type = t.shape.length === 2 ? types(name) : 0;
    // Q4_1 (type 3, 20 bytes per 32) is not encoded here: zero bytes stand in for a type the loader refuses.
    const data = type === 3 ? new Uint8Array((values.length / 32) * 20) : encodeTensor(values, type);
    tensors.push({ name, dims: [...t.shape].reverse(), type, data });
  };
  const w = m.weights;
  add('token_embd.weight', w.tokenEmbedding);
  add('output_norm.weight', w.outputNorm);
  add('output.weight', w.output!);
  const names = [
    'attn_norm',
    'ffn_norm',
    'attn_q',
    'attn_k',
    'attn_v',
    'attn_output',
    'ffn_gate',
    'ffn_up',
    'ffn_down',
  ];
  const fields = ['attnNorm', 'ffnNorm', 'wq', 'wk', 'wv', 'wo', 'wGate', 'wUp', 'wDown'] as const;
  w.layers.forEach((l, i) => names.forEach((n, k) => add(`blk.${i}.${n}.weight`, l[fields[k]])));
  return buildGguf(meta, tensors);
}

// Every format in one model: the embedding Q6_K, attention Q4_K and Q4_0, the MLP Q5_K, the output Q6_K.
export const MIXED = (name: string): number =>
  name.startsWith('token_embd') || name === 'output.weight'
    ? 14
    : /attn_(q|k)\./.test(name)
      ? 12
      : /attn_(v|output)/.test(name)
        ? 2
        : 13;
