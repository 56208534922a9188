// Tiny Hugging Face model directories: config.json, safetensors with random weights (f32, f16 or bf16; one
// file or shards with an index), and a byte-level BPE tokenizer.json with a few merges. The one builder of
// them: the fuzzer's seeds (seeds.ts) mutate what it makes, and the tests load it (test/hf-fixture.ts).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { float32ToHalf } from '../f16.js';
import { addedTokenJson, bpeModelJson } from '../model/load/gguf-bpe.js';

export type FixtureDType = 'F32' | 'F16' | 'BF16';

export interface FixtureTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Deterministic uniform numbers in [-1, 1). */
export function randomValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 32) * 2 - 1;
  }
  return out;
}

export function encodeValues(values: Float32Array, dtype: FixtureDType): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer.slice(0));
  if (dtype === 'F16') return new Uint8Array(float32ToHalf(values).buffer);
  // bf16: the upper half of the f32 bits (truncation is fine for a fixture).
  const bits = new Uint32Array(values.buffer.slice(0));
  return new Uint8Array(Uint16Array.from(bits, (b) => b >>> 16).buffer);
}

/** The safetensors header object for these tensors (data back to back in their order). */
export function safetensorsHeader(tensors: FixtureTensor[]): Record<string, unknown> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  return header;
}

/** The tensors' data back to back. */
export function tensorBytes(tensors: FixtureTensor[]): Uint8Array {
  const out = new Uint8Array(tensors.reduce((n, t) => n + t.bytes.length, 0));
  let at = 0;
  for (const t of tensors) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  return out;
}

/** A safetensors file from a header object (JSON padded with spaces to 8 bytes, as the library's writer does)
 * and data; `lengthDelta` misstates the header length (the fuzzer's cases). */
export function safetensorsFile(header: unknown, data: Uint8Array, lengthDelta = 0): Uint8Array {
  let json = JSON.stringify(header) ?? 'null';
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigInt64(0, BigInt(headerBytes.length + lengthDelta), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

/** The bytes of a .safetensors file holding these tensors. */
export function safetensorsBytes(tensors: FixtureTensor[]): Uint8Array {
  return safetensorsFile(safetensorsHeader(tensors), tensorBytes(tensors));
}

export interface TinyModelOptions {
  architecture?: 'llama' | 'qwen2' | 'mistral';
  dtype?: FixtureDType;
  tied?: boolean;
  /** Split tensors over this many shards with model.safetensors.index.json. */
  shards?: number;
  /** transformers 5 style: rope under rope_parameters. */
  ropeParameters?: boolean;
  seed?: number;
}

export const TINY = { vocab: 300, hidden: 16, heads: 4, kvHeads: 2, headDim: 4, intermediate: 24, layers: 2 };

export function tinyConfigJson(opts: TinyModelOptions = {}): Record<string, unknown> {
  const arch = opts.architecture ?? 'llama';
  const names = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', mistral: 'MistralForCausalLM' };
  const rope = {
    rope_type: 'llama3',
    factor: 8.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 64,
  };
  return {
    architectures: [names[arch]],
    model_type: arch,
    vocab_size: TINY.vocab,
    hidden_size: TINY.hidden,
    intermediate_size: TINY.intermediate,
    num_hidden_layers: TINY.layers,
    num_attention_heads: TINY.heads,
    num_key_value_heads: TINY.kvHeads,
    max_position_embeddings: 512,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: opts.tied ?? false,
    bos_token_id: 256,
    eos_token_id: [257],
    ...(opts.ropeParameters
      ? { rope_parameters: { ...rope, rope_theta: 50000.0 } }
      : { rope_theta: 50000.0, rope_scaling: rope }),
  };
}

/** Every tensor of the tiny model, in HF names, with random values. */
export function tinyTensors(opts: TinyModelOptions = {}): FixtureTensor[] {
  const { vocab, hidden: h, heads, kvHeads, headDim: d, intermediate: ff, layers } = TINY;
  const dtype = opts.dtype ?? 'F32';
  let seed = opts.seed ?? 1;
  const make = (name: string, shape: number[]): FixtureTensor => ({
    name,
    dtype,
    shape,
    bytes: encodeValues(
      randomValues(
        shape.reduce((a, b) => a * b, 1),
        seed++,
      ),
      dtype,
    ),
  });
  const out = [make('model.embed_tokens.weight', [vocab, h])];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    out.push(
      make(`${p}input_layernorm.weight`, [h]),
      make(`${p}self_attn.q_proj.weight`, [heads * d, h]),
      make(`${p}self_attn.k_proj.weight`, [kvHeads * d, h]),
      make(`${p}self_attn.v_proj.weight`, [kvHeads * d, h]),
      make(`${p}self_attn.o_proj.weight`, [h, heads * d]),
      make(`${p}post_attention_layernorm.weight`, [h]),
      make(`${p}mlp.gate_proj.weight`, [ff, h]),
      make(`${p}mlp.up_proj.weight`, [ff, h]),
      make(`${p}mlp.down_proj.weight`, [h, ff]),
    );
    if (opts.architecture === 'qwen2') {
      out.push(
        make(`${p}self_attn.q_proj.bias`, [heads * d]),
        make(`${p}self_attn.k_proj.bias`, [kvHeads * d]),
        make(`${p}self_attn.v_proj.bias`, [kvHeads * d]),
      );
    }
  }
  out.push(make('model.norm.weight', [h]));
  if (!opts.tied) out.push(make('lm_head.weight', [vocab, h]));
  return out;
}

/** GPT-2's byte-to-character table (printable bytes are themselves). */
export function byteChars(): string[] {
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : next++));
}

/** A byte-level BPE: ids 0-255 are the bytes, 256 and 257 <s> and </s> (added, special), then these merges. */
export const MERGES: [string, string][] = [
  ['h', 'e'], // 258 "he"
  ['l', 'l'], // 259 "ll"
  ['he', 'll'], // 260 "hell"
  ['hell', 'o'], // 261 "hello"
  ['Ġ', 'w'], // 262 " w"
  ['o', 'r'], // 263 "or"
  ['Ġw', 'or'], // 264 " wor"
];

export function tinyTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  byteChars().forEach((c, b) => (vocab[c] = b));
  vocab['<s>'] = 256;
  vocab['</s>'] = 257;
  MERGES.forEach(([a, b], i) => (vocab[a + b] = 258 + i));
  const special = (id: number, content: string) => addedTokenJson(id, content, true);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(256, '<s>'), special(257, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: bpeModelJson(
      vocab,
      MERGES.map(([a, b]) => `${a} ${b}`),
      false,
    ),
  };
}

/** Writes a tiny model directory and returns its path and tensors (as written). */
export function writeTinyModel(opts: TinyModelOptions = {}): { dir: string; tensors: FixtureTensor[] } {
  const dir = mkdtempSync(join(tmpdir(), 'longctx-hf-'));
  const tensors = tinyTensors(opts);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyConfigJson(opts), null, 2));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ bos_token: '<s>', eos_token: { content: '</s>' } }),
  );
  const shards = opts.shards ?? 1;
  if (shards === 1) {
    writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors));
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(tensors.length / shards);
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = tensors.slice(s * per, (s + 1) * per);
      for (const t of part) weightMap[t.name] = file;
      writeFileSync(join(dir, file), safetensorsBytes(part));
    }
    const total = tensors.reduce((n, t) => n + t.bytes.length, 0);
    writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }),
    );
  }
  return { dir, tensors };
}
