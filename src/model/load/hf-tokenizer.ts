// Hugging Face tokenizer.json through @huggingface/tokenizers (tokenizers.js: pure JS, no dependencies, the
// tokenizers of transformers.js), wrapped in our Tokenizer. Encoding adds no special tokens: the generator
// decides about BOS, as llama.cpp does. tokenBytes undoes the vocabulary's byte encoding per token
// (GPT-2 byte-level: one printable character per byte; SentencePiece style: '▁' for space and <0xXX>
// byte-fallback pieces), so that streaming can print exact bytes.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { InputError } from '../../errors.js';
import type { Tokenizer } from '../types.js';

type Json = Record<string, unknown>;

function readJson(path: string): Json {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new InputError(`cannot read ${path} as JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new InputError(`${path}: expected a JSON object`);
  return json as Json;
}

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards. Inverted here. */
function byteLevelDecoder(): Map<string, number> {
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map = new Map<string, number>();
  let next = 256;
  for (let b = 0; b < 256; b++) map.set(String.fromCodePoint(printable(b) ? b : next++), b);
  return map;
}

function mentions(node: unknown, type: string): boolean {
  if (typeof node !== 'object' || node === null) return false;
  const n = node as Json;
  if (n.type === type) return true;
  for (const key of ['decoders', 'pretokenizers', 'normalizers']) {
    if (Array.isArray(n[key]) && (n[key] as unknown[]).some((c) => mentions(c, type))) return true;
  }
  return false;
}

export interface HfTokenizerFallbacks {
  /** From config.json, when tokenizer_config.json does not name them. */
  bosTokenId?: number;
  eosTokenId?: number;
}

export class HuggingFaceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId?: number;
  readonly eosId?: number;
  private readonly hf: HfTokenizer;
  private readonly pieces: (Uint8Array | undefined)[];
  private readonly encoder = new TextEncoder();

  constructor(
    tokenizerJson: Json,
    tokenizerConfig: Json = {},
    fallbacks: HfTokenizerFallbacks = {},
    readonly source = 'tokenizer.json',
  ) {
    const model = tokenizerJson.model as Json | undefined;
    if (typeof model !== 'object' || model === null || typeof model.vocab !== 'object' || model.vocab === null) {
      throw new InputError(`${source}: no model.vocab; not a tokenizer.json`);
    }
    try {
      this.hf = new HfTokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new InputError(`${source}: ${(e as Error).message}`);
    }
    const vocab = this.hf.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    // Bytes of every piece, computed once: added tokens are literal text, the rest are byte-encoded.
    const added = this.hf.get_added_tokens_decoder();
    const byteLevel =
      mentions(tokenizerJson.decoder, 'ByteLevel') || mentions(tokenizerJson.pre_tokenizer, 'ByteLevel');
    const unbyte = byteLevel ? byteLevelDecoder() : undefined;
    this.pieces = new Array(this.vocabSize);
    for (const [piece, id] of vocab) {
      const special = added.get(id);
      this.pieces[id] = special
        ? this.encoder.encode(special.content)
        : unbyte
          ? this.byteLevelBytes(piece, unbyte)
          : this.sentencePieceBytes(piece);
    }

    this.bosId = this.specialId(tokenizerConfig.bos_token) ?? fallbacks.bosTokenId;
    this.eosId = this.specialId(tokenizerConfig.eos_token) ?? fallbacks.eosTokenId;
  }

  static fromDirectory(dir: string, fallbacks: HfTokenizerFallbacks = {}): HuggingFaceTokenizer {
    const path = join(dir, 'tokenizer.json');
    if (!existsSync(path)) throw new InputError(`${dir}: no tokenizer.json`);
    const configPath = join(dir, 'tokenizer_config.json');
    return new HuggingFaceTokenizer(
      readJson(path),
      existsSync(configPath) ? readJson(configPath) : {},
      fallbacks,
      path,
    );
  }

  encode(text: string): number[] {
    return this.hf.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[]): string {
    return this.hf.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  tokenBytes(id: number): Uint8Array {
    const bytes = Number.isInteger(id) ? this.pieces[id] : undefined;
    if (!bytes) throw new InputError(`${this.source}: token id ${id} is not in the vocabulary of ${this.vocabSize}`);
    return bytes;
  }

  private specialId(token: unknown): number | undefined {
    const content =
      typeof token === 'string'
        ? token
        : typeof token === 'object' && token !== null
          ? (token as Json).content
          : undefined;
    return typeof content === 'string' ? this.hf.token_to_id(content) : undefined;
  }

  private byteLevelBytes(piece: string, unbyte: Map<string, number>): Uint8Array {
    const out: number[] = [];
    for (const ch of piece) {
      const b = unbyte.get(ch);
      if (b === undefined) return this.encoder.encode(piece); // not byte-encoded: keep the text
      out.push(b);
    }
    return Uint8Array.from(out);
  }

  private sentencePieceBytes(piece: string): Uint8Array {
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
    if (byte) return Uint8Array.of(parseInt(byte[1], 16));
    return this.encoder.encode(piece.replaceAll('\u2581', ' '));
  }
}
