// Valid inputs the mutators start from: a tiny Hugging Face directory (config.json, model.safetensors,
// tokenizer.json, tokenizer_config.json, and a sharded variant with its index), .npy arrays, and the
// stories260K GGUF from the repository's fixtures (a real llama2.c model converted by llama.cpp).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeNpy } from '../io/npy.js';
import { tensor } from '../tensor.js';
import type { Random } from './random.js';

export const TINY = { vocab: 262, hidden: 8, heads: 2, kvHeads: 1, headDim: 4, intermediate: 12, layers: 2 };

export function tinyConfig(): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: TINY.vocab,
    hidden_size: TINY.hidden,
    intermediate_size: TINY.intermediate,
    num_hidden_layers: TINY.layers,
    num_attention_heads: TINY.heads,
    num_key_value_heads: TINY.kvHeads,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    bos_token_id: 256,
    eos_token_id: 257,
  };
}

function byteChars(): string[] {
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : next++));
}

export function tinyTokenizer(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  byteChars().forEach((c, b) => (vocab[c] = b));
  vocab['<s>'] = 256;
  vocab['</s>'] = 257;
  const merges: [string, string][] = [
    ['h', 'e'],
    ['l', 'l'],
    ['he', 'll'],
    ['Ġ', 'w'],
  ];
  merges.forEach(([a, b], i) => (vocab[a + b] = 258 + i));
  const special = (id: number, content: string) => ({ id, content, special: true, normalized: false });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    added_tokens: [special(256, '<s>'), special(257, '</s>')],
    truncation: null,
    padding: null,
    normalizer: null,
    post_processor: null,
    pre_tokenizer: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

export interface SeedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export function tinyTensors(random: Random): SeedTensor[] {
  const { vocab: v, hidden: h, heads, kvHeads, headDim: d, intermediate: f, layers } = TINY;
  const make = (name: string, shape: number[]): SeedTensor => ({
    name,
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => random.next() - 0.5),
  });
  const out = [
    make('model.embed_tokens.weight', [v, h]),
    make('model.norm.weight', [h]),
    make('lm_head.weight', [v, h]),
  ];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    out.push(
      make(`${p}input_layernorm.weight`, [h]),
      make(`${p}self_attn.q_proj.weight`, [heads * d, h]),
      make(`${p}self_attn.k_proj.weight`, [kvHeads * d, h]),
      make(`${p}self_attn.v_proj.weight`, [kvHeads * d, h]),
      make(`${p}self_attn.o_proj.weight`, [h, heads * d]),
      make(`${p}post_attention_layernorm.weight`, [h]),
      make(`${p}mlp.gate_proj.weight`, [f, h]),
      make(`${p}mlp.up_proj.weight`, [f, h]),
      make(`${p}mlp.down_proj.weight`, [h, f]),
    );
  }
  return out;
}

/** The safetensors header object (F32, offsets back to back) for these tensors. */
export function safetensorsHeader(tensors: SeedTensor[]): Record<string, unknown> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  return header;
}

/** A safetensors file from a header object (JSON, padded to 8 bytes) and data bytes. */
export function safetensorsFile(header: unknown, data: Uint8Array, lengthDelta = 0): Uint8Array {
  let json = JSON.stringify(header) ?? 'null';
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const bytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + bytes.length + data.length);
  new DataView(out.buffer).setBigInt64(0, BigInt(bytes.length + lengthDelta), true);
  out.set(bytes, 8);
  out.set(data, 8 + bytes.length);
  return out;
}

export function tensorBytes(tensors: SeedTensor[]): Uint8Array {
  const total = tensors.reduce((n, t) => n + t.data.byteLength, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

export function npySeed(random: Random): Uint8Array {
  const shape = [1 + random.int(3), 1 + random.int(9), 1 + random.int(17)];
  const n = shape.reduce((a, b) => a * b, 1);
  const dtype = random.chance(0.5) ? 'f32' : 'f16';
  const data = dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
  return encodeNpy(tensor(shape, dtype, data));
}

const STORIES = fileURLToPath(new URL('../../../test/fixtures/stories260K/stories260K.gguf', import.meta.url));
let ggufSeed: Buffer | undefined;

/** The GGUF seed (undefined outside a checkout, where test fixtures are not installed). */
export function ggufSeedBytes(): Buffer | undefined {
  if (ggufSeed === undefined && existsSync(STORIES)) ggufSeed = readFileSync(STORIES);
  return ggufSeed;
}
