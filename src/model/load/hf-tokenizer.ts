// Hugging Face tokenizer.json through @huggingface/tokenizers (tokenizers.js: pure JS, no dependencies, the
// tokenizers of transformers.js), wrapped in our Tokenizer. Encoding adds no special tokens: the generator
// decides about BOS, as llama.cpp does. tokenBytes undoes the vocabulary's byte encoding per token
// (GPT-2 byte-level: one printable character per byte; SentencePiece style: '▁' for space and <0xXX>
// byte-fallback pieces), so that streaming can print exact bytes.
import { existsSync } from 'node:fs';
import { readBounded } from '../../io/bounded-read.js';
import { limit } from '../../io/limits.js';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { InputError } from '../../errors.js';
import type { Tokenizer } from '../types.js';

type Json = Record<string, unknown>;

function readJson(path: string): Json {
  let json: unknown;
  const text = readBounded(path, limit('JSON_BYTES'), 'tokenizer file', 'LONGCTX_MAX_JSON_BYTES').toString('utf8');
  try {
    json = JSON.parse(text);
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

/** Largest token id a tokenizer.json may use (4M; the largest real vocabularies are about 256K). */
export const MAX_TOKEN_ID = 1 << 22;

/** The parts of tokenizer.json that tokenizers.js trusts: vocab pieces and ids, added tokens. */
function checkTokenizerJson(json: Json, source: string): void {
  const model = json.model as Json | undefined;
  if (typeof model !== 'object' || model === null || typeof model.vocab !== 'object' || model.vocab === null)
    throw new InputError(`${source}: no model.vocab; not a tokenizer.json`);
  const bad = (why: string): InputError => new InputError(`${source}: ${why}`);
  const ids = new Map<number, string>();
  const claim = (id: unknown, piece: string, where: string): void => {
    // An added token may repeat its vocab entry (same id, same text); two texts on one id may not.
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0 || id >= MAX_TOKEN_ID)
      throw bad(`${where} '${piece}' has id ${JSON.stringify(id)}, not an integer from 0 to ${MAX_TOKEN_ID - 1}`);
    const prior = ids.get(id);
    if (prior !== undefined && prior !== piece)
      throw bad(`${where}: id ${id} is given to both '${prior}' and '${piece}'`);
    ids.set(id, piece);
  };
  if (Array.isArray(model.vocab)) {
    // Unigram: [piece, score] pairs, the id is the position.
    (model.vocab as unknown[]).forEach((entry, i) => {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'number')
        throw bad(`model.vocab[${i}] is not a [piece, score] pair`);
      claim(i, entry[0], 'model.vocab');
    });
  } else {
    for (const [piece, id] of Object.entries(model.vocab as Json)) claim(id, piece, 'model.vocab piece');
  }
  const added = json.added_tokens;
  if (added === undefined || added === null) return;
  if (!Array.isArray(added)) throw bad('added_tokens is not a list');
  for (const [i, t] of added.entries()) {
    if (typeof t !== 'object' || t === null || typeof (t as Json).content !== 'string')
      throw bad(`added_tokens[${i}] has no content string`);
    const { id, content } = t as { id: unknown; content: string };
    claim(id, content, 'added token');
  }
  // Ids beyond the pieces leave holes; a few are normal (padding), a vocabulary that is mostly holes is not.
  let maxId = -1;
  for (const id of ids.keys()) maxId = Math.max(maxId, id);
  if (maxId >= 2 * ids.size + 1024)
    throw bad(`token ids run to ${maxId} but only ${ids.size} tokens exist (an id past the vocabulary?)`);
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
    checkTokenizerJson(tokenizerJson, source);
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
      if (typeof piece !== 'string') continue; // a hole in the ids: tokenBytes refuses it by name
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
