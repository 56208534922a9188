// Builds a GGUF model (llama, qwen2, mistral architectures) into the LoadedModel contract: the config from
// `<arch>.*` metadata, weights as byte slices of the file (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K;
// others are refused by name), and the tokenizer stored in the metadata. GGUF dims [ne0 = in, ne1 = out] are
// row-major [out][in]. Free of Node: the browser bundle loads models through it (gguf.ts reads files in Node).
import { checkModelBounds } from './model-bounds.js';
import { InputError, UnsupportedError } from '../../errors.js';
import { ggmlTypeName, parseGguf, type GgufFile, type GgufTensorInfo, type GgufValue } from './gguf-reader.js';
import { ggufTokenizer } from './gguf-tokenizer.js';
import type { LayerWeights, LoadedModel, ModelConfig, RopeScaling, WeightDType, WeightTensor } from '../types.js';

const DTYPES: Record<number, WeightDType> = {
  0: 'f32',
  1: 'f16',
  2: 'q4_0',
  8: 'q8_0',
  12: 'q4_k',
  13: 'q5_k',
  14: 'q6_k',
  30: 'bf16',
};
const SUPPORTED_TYPES = Object.keys(DTYPES)
  .map((t) => ggmlTypeName(Number(t)))
  .join(', ');
const ARCHITECTURES = ['llama', 'qwen2', 'mistral'] as const;

/** The model in a GGUF file's bytes; `file` names it in messages. Tensors are views into `buf` (no copy). */
export function ggufModel(buf: Uint8Array, file: string): LoadedModel {
  return ggufModelFromParsed(parseGguf(buf, file), file, (t) => buf.subarray(t.offset, t.offset + t.byteLength));
}

/** Each tensor's bytes, wherever they are held (a view of the whole file, or a piece read on its own). */
export type TensorBytes = (t: GgufTensorInfo) => Uint8Array;

/** The model of a parsed GGUF header whose tensor bytes `bytesOf` gives (src/model/load/gguf-source.ts reads
 * them piece by piece from a Blob, so the browser never holds the file in one ArrayBuffer). */
export function ggufModelFromParsed(gguf: GgufFile, file: string, bytesOf: TensorBytes): LoadedModel {
  const config = ggufConfig(gguf, file);
  const weights = ggufWeights(gguf, config, file, bytesOf);
  const tokenizer = ggufTokenizer(gguf.metadata, file);
  if (tokenizer.vocabSize !== config.vocabSize) {
    throw new InputError(
      `${file}: the tokenizer has ${tokenizer.vocabSize} tokens but token_embd has ${config.vocabSize} rows`,
    );
  }
  return { config, weights, tokenizer, source: file };
}

function num(meta: Map<string, GgufValue>, key: string, file: string, fallback?: number): number {
  const v = meta.get(key);
  if (v === undefined) {
    if (fallback === undefined) throw new InputError(`${file}: metadata ${key} is missing`);
    return fallback;
  }
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n))
    throw new InputError(`${file}: metadata ${key} is not a number (${String(v)})`);
  return n;
}

function positiveInt(meta: Map<string, GgufValue>, key: string, file: string, fallback?: number): number {
  const n = num(meta, key, file, fallback);
  if (!Number.isInteger(n) || n < 1 || n > 1 << 24)
    throw new InputError(`${file}: metadata ${key} = ${n} is not a plausible size`);
  return n;
}

function ggufConfig(g: GgufFile, file: string): ModelConfig {
  const m = g.metadata;
  const arch = m.get('general.architecture');
  if (typeof arch !== 'string') throw new InputError(`${file}: metadata general.architecture is missing`);
  if (!(ARCHITECTURES as readonly string[]).includes(arch))
    throw new UnsupportedError(
      `${file}: architecture '${arch}' is not supported (supported: ${ARCHITECTURES.join(', ')})`,
    );
  const embd = g.tensors.find((t) => t.name === 'token_embd.weight');
  if (!embd || embd.dims.length !== 2)
    throw new InputError(`${file}: tensor token_embd.weight is missing or not a matrix`);
  const hiddenSize = positiveInt(m, `${arch}.embedding_length`, file);
  const heads = positiveInt(m, `${arch}.attention.head_count`, file);
  const kvHeads = positiveInt(m, `${arch}.attention.head_count_kv`, file, heads);
  const headDim = positiveInt(m, `${arch}.attention.key_length`, file, Math.floor(hiddenSize / heads));
  if (heads % kvHeads !== 0)
    throw new InputError(`${file}: ${heads} query heads are not a multiple of ${kvHeads} key/value heads`);
  const ropeDims = positiveInt(m, `${arch}.rope.dimension_count`, file, headDim);
  if (ropeDims !== headDim)
    throw new UnsupportedError(`${file}: partial RoPE (${ropeDims} of ${headDim} dims) is not supported`);
  if (g.tensors.some((t) => t.name === 'rope_freqs.weight')) {
    throw new UnsupportedError(
      `${file}: per-frequency RoPE factors (rope_freqs.weight, Llama 3.1 scaling baked in by llama.cpp) are ` +
        `not supported yet; load the Hugging Face directory instead`,
    );
  }
  const contextLength = positiveInt(m, `${arch}.context_length`, file, 2048);
  const eps = num(m, `${arch}.attention.layer_norm_rms_epsilon`, file, 1e-5);
  const config: ModelConfig = {
    architecture: arch as ModelConfig['architecture'],
    vocabSize: embd.dims[1],
    hiddenSize,
    intermediateSize: positiveInt(m, `${arch}.feed_forward_length`, file),
    layers: positiveInt(m, `${arch}.block_count`, file),
    heads,
    kvHeads,
    headDim,
    rmsNormEps: eps,
    ropeTheta: num(m, `${arch}.rope.freq_base`, file, 10000),
    rope: ggufRopeScaling(m, arch, contextLength, file),
    // convert_hf_to_gguf permutes llama's Q and K rows into interleaved pairs; qwen2 keeps NEOX (half) order.
    ropeLayout: arch === 'qwen2' ? 'half' : 'interleaved',
    contextLength,
    tiedEmbeddings: !g.tensors.some((t) => t.name === 'output.weight'),
    attentionBias: g.tensors.some((t) => t.name === 'blk.0.attn_q.bias'),
    bosTokenId: m.has('tokenizer.ggml.bos_token_id') ? num(m, 'tokenizer.ggml.bos_token_id', file) : undefined,
    eosTokenId: m.has('tokenizer.ggml.eos_token_id') ? num(m, 'tokenizer.ggml.eos_token_id', file) : undefined,
  };
  checkModelBounds(config, file);
  return config;
}

function ggufRopeScaling(m: Map<string, GgufValue>, arch: string, contextLength: number, file: string): RopeScaling {
  const type = m.get(`${arch}.rope.scaling.type`);
  if (type === undefined || type === 'none') return { kind: 'none' };
  const factor = num(m, `${arch}.rope.scaling.factor`, file, 1);
  const originalContext = positiveInt(m, `${arch}.rope.scaling.original_context_length`, file, contextLength);
  if (type === 'linear') return { kind: 'linear', factor };
  if (type === 'yarn') return { kind: 'yarn', factor, originalContext, betaFast: 32, betaSlow: 1 };
  throw new UnsupportedError(`${file}: RoPE scaling '${String(type)}' is not supported`);
}

function ggufWeights(g: GgufFile, config: ModelConfig, file: string, bytesOf: TensorBytes): LoadedModel['weights'] {
  const byName = new Map(g.tensors.map((t) => [t.name, t]));
  const { hiddenSize: H, heads, kvHeads, headDim, intermediateSize: F, vocabSize: V } = config;
  const get = (name: string, shape: number[], optional = false): WeightTensor | undefined => {
    const t = byName.get(name);
    if (!t) {
      if (optional) return undefined;
      throw new InputError(`${file}: tensor ${name} is missing`);
    }
    return weightTensor(t, shape, file, bytesOf);
  };
  const must = (name: string, shape: number[]) => get(name, shape)!;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.layers; i++) {
    const p = `blk.${i}.`;
    layers.push({
      attnNorm: must(`${p}attn_norm.weight`, [H]),
      wq: must(`${p}attn_q.weight`, [heads * headDim, H]),
      wk: must(`${p}attn_k.weight`, [kvHeads * headDim, H]),
      wv: must(`${p}attn_v.weight`, [kvHeads * headDim, H]),
      wo: must(`${p}attn_output.weight`, [H, heads * headDim]),
      bq: get(`${p}attn_q.bias`, [heads * headDim], true),
      bk: get(`${p}attn_k.bias`, [kvHeads * headDim], true),
      bv: get(`${p}attn_v.bias`, [kvHeads * headDim], true),
      ffnNorm: must(`${p}ffn_norm.weight`, [H]),
      wGate: must(`${p}ffn_gate.weight`, [F, H]),
      wUp: must(`${p}ffn_up.weight`, [F, H]),
      wDown: must(`${p}ffn_down.weight`, [H, F]),
      indexer: trainedIndexer(p, byName, H, get),
    });
  }
  return {
    tokenEmbedding: must('token_embd.weight', [V, H]),
    layers,
    outputNorm: must('output_norm.weight', [H]),
    output: get('output.weight', [V, H], true),
  };
}

/** A layer's trained DSA indexer (blk.N.indexer.attn_q / attn_k / proj .weight, k_norm.weight / .bias), if any. */
function trainedIndexer(
  p: string,
  byName: Map<string, GgufTensorInfo>,
  H: number,
  get: (name: string, shape: number[], optional?: boolean) => WeightTensor | undefined,
): LayerWeights['indexer'] {
  const k = byName.get(`${p}indexer.attn_k.weight`);
  const proj = byName.get(`${p}indexer.proj.weight`);
  if (!k && !proj && !byName.has(`${p}indexer.attn_q.weight`)) return undefined;
  const [dim, heads] = [k ? Number(k.dims[1]) : 0, proj ? Number(proj.dims[1]) : 0];
  return {
    wq: get(`${p}indexer.attn_q.weight`, [heads * dim, H])!,
    wk: get(`${p}indexer.attn_k.weight`, [dim, H])!,
    proj: get(`${p}indexer.proj.weight`, [heads, H])!,
    kNormWeight: get(`${p}indexer.k_norm.weight`, [dim], true),
    kNormBias: get(`${p}indexer.k_norm.bias`, [dim], true),
  };
}

function weightTensor(t: GgufTensorInfo, shape: number[], file: string, bytesOf: TensorBytes): WeightTensor {
  const dtype = DTYPES[t.type];
  if (!dtype)
    throw new UnsupportedError(
      `${file}: tensor ${t.name} is ${ggmlTypeName(t.type)}; supported tensor types: ${SUPPORTED_TYPES} (re-quantise the model to one of them)`,
    );
  const logical = [...t.dims].reverse();
  if (logical.join() !== shape.join())
    throw new InputError(`${file}: tensor ${t.name} has shape [${logical}], expected [${shape}] from the metadata`);
  if (dtype.startsWith('q') && shape.length === 1)
    throw new UnsupportedError(`${file}: vector ${t.name} is ${ggmlTypeName(t.type)}; only matrices may be quantised`);
  return { name: t.name, shape: logical, dtype, bytes: bytesOf(t) };
}
