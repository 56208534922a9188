// The tokenizer stored in a GGUF file's metadata. "llama" is SentencePiece with scores, encoded as
// llama.cpp's llm_tokenizer_spm does: spaces become "▁", a leading space is added, characters are
// merged pairwise by the highest-scoring vocabulary piece (ties: leftmost) and characters missing from
// the vocabulary fall back to <0xNN> byte tokens. "gpt2" (byte-level BPE) is in gguf-bpe.ts.
import { InputError, UnsupportedError } from '../../errors.js';
import type { GgufValue } from './gguf-reader.js';
import { ggufBpeTokenizer } from './gguf-bpe.js';
import type { Tokenizer } from '../types.js';

const SPACE = '\u2581'; // ▁
const enum TokenType {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

export function ggufTokenizer(meta: Map<string, GgufValue>, file: string): Tokenizer {
  const model = meta.get('tokenizer.ggml.model');
  if (model === undefined)
    throw new InputError(`${file}: no tokenizer in the metadata (tokenizer.ggml.model is missing)`);
  if (model !== 'llama' && model !== 'gpt2')
    throw new UnsupportedError(
      `${file}: tokenizer '${String(model)}' is not supported (supported: llama (SentencePiece), gpt2 (byte-level BPE))`,
    );
  const tokens = meta.get('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || tokens.length === 0 || tokens.some((t) => typeof t !== 'string')) {
    throw new InputError(`${file}: tokenizer.ggml.tokens is missing or not an array of strings`);
  }
  const scores = meta.get('tokenizer.ggml.scores') ?? [];
  const types = meta.get('tokenizer.ggml.token_type') ?? [];
  if (!Array.isArray(scores) || !Array.isArray(types))
    throw new InputError(`${file}: tokenizer scores or token types are not arrays`);
  if (model === 'gpt2') return ggufBpeTokenizer(meta, tokens as string[], types.map(Number), file);
  const id = (key: string): number | undefined => {
    const v = meta.get(key);
    return typeof v === 'number' && v >= 0 && v < tokens.length ? v : undefined;
  };
  const addPrefix = meta.get('tokenizer.ggml.add_space_prefix');
  return new SentencePieceTokenizer(tokens as string[], scores.map(Number), types.map(Number), {
    bosId: id('tokenizer.ggml.bos_token_id'),
    eosId: id('tokenizer.ggml.eos_token_id'),
    unknownId: id('tokenizer.ggml.unknown_token_id'),
    addSpacePrefix: addPrefix === undefined ? true : addPrefix === true,
  });
}

interface SpmOptions {
  bosId?: number;
  eosId?: number;
  unknownId?: number;
  addSpacePrefix: boolean;
}

export class SentencePieceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId?: number;
  readonly eosId?: number;
  private readonly ids = new Map<string, number>();
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly pieces: Uint8Array[];
  private readonly encoder = new TextEncoder();

  constructor(
    readonly tokens: string[],
    private readonly scores: number[],
    readonly types: number[],
    private readonly opts: SpmOptions,
  ) {
    this.vocabSize = tokens.length;
    this.bosId = opts.bosId;
    this.eosId = opts.eosId;
    tokens.forEach((t, i) => {
      if (!this.ids.has(t)) this.ids.set(t, i);
      const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
      if (byte && (types[i] === TokenType.Byte || types.length === 0)) this.byteIds[parseInt(byte[1], 16)] = i;
    });
    this.pieces = tokens.map((t, i) => this.pieceBytes(t, types[i] ?? TokenType.Normal));
  }

  private pieceBytes(text: string, type: number): Uint8Array {
    if (type === TokenType.Control || type === TokenType.Unused) return new Uint8Array(0);
    if (type === TokenType.Byte) {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
      if (m) return Uint8Array.of(parseInt(m[1], 16));
    }
    if (type === TokenType.Unknown) return this.encoder.encode('\u2585'); // llama.cpp shows <unk> as ▅
    return this.encoder.encode(text.replaceAll(SPACE, ' '));
  }

  encode(text: string): number[] {
    if (text === '') return [];
    const s = (this.opts.addSpacePrefix ? ' ' + text : text).replaceAll(' ', SPACE);
    // Symbols: a doubly linked list over code points, as llama.cpp's llm_symbol.
    const start: number[] = [];
    const len: number[] = [];
    for (let i = 0; i < s.length; ) {
      const n = s.codePointAt(i)! > 0xffff ? 2 : 1;
      start.push(i);
      len.push(n);
      i += n;
    }
    const count = start.length;
    const prev = Array.from({ length: count }, (_, i) => i - 1);
    const next = Array.from({ length: count }, (_, i) => (i + 1 < count ? i + 1 : -1));
    const heap = new BigramHeap();
    const merged = new Map<string, [string, string]>(); // piece -> its two halves, to resegment
    const tryAdd = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const piece = s.slice(start[left], start[left] + len[left] + len[right]);
      const id = this.ids.get(piece);
      if (id === undefined) return;
      heap.push({ left, right, score: this.scores[id] ?? 0, size: piece.length });
      merged.set(piece, [
        s.slice(start[left], start[left] + len[left]),
        s.slice(start[right], start[right] + len[right]),
      ]);
    };
    for (let i = 1; i < count; i++) tryAdd(i - 1, i);
    for (let b = heap.pop(); b; b = heap.pop()) {
      if (len[b.left] === 0 || len[b.right] === 0 || len[b.left] + len[b.right] !== b.size) continue; // stale
      len[b.left] += len[b.right];
      len[b.right] = 0;
      next[b.left] = next[b.right];
      if (next[b.right] >= 0) prev[next[b.right]] = b.left;
      tryAdd(prev[b.left], b.left);
      tryAdd(b.left, next[b.left]);
    }
    const out: number[] = [];
    const emit = (piece: string) => {
      const id = this.ids.get(piece);
      if (id !== undefined) return void out.push(id);
      const halves = merged.get(piece);
      if (halves) return void (emit(halves[0]), emit(halves[1]));
      for (const byte of this.encoder.encode(piece.replaceAll(SPACE, ' '))) {
        const b = this.byteIds[byte];
        if (b >= 0) out.push(b);
        else if (this.opts.unknownId !== undefined) out.push(this.opts.unknownId);
        else
          throw new InputError(
            `the tokenizer cannot encode byte 0x${byte.toString(16)} (no byte tokens, no unknown token)`,
          );
      }
    };
    for (let i = 0; i >= 0 && i < count; i = next[i]) if (len[i] > 0) emit(s.slice(start[i], start[i] + len[i]));
    return out;
  }

  tokenBytes(id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
      throw new InputError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    return this.pieces[id];
  }

  /** Text of the ids; the space added in front by encode() is removed, as SentencePiece does. */
  decode(ids: readonly number[]): string {
    const parts = ids.map((i) => this.tokenBytes(i));
    const bytes = concatBytes(parts);
    const text = new TextDecoder().decode(bytes);
    return this.opts.addSpacePrefix && text.startsWith(' ') ? text.slice(1) : text;
  }
}

interface Bigram {
  left: number;
  right: number;
  score: number;
  size: number;
}

/** Max-heap on score, ties to the leftmost pair (llama.cpp's llm_bigram_spm comparator). */
class BigramHeap {
  private items: Bigram[] = [];
  private before(a: Bigram, b: Bigram): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }
  push(x: Bigram): void {
    const h = this.items;
    h.push(x);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): Bigram | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l], h[m])) m = l;
        if (r < h.length && this.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
