// GGUF "gpt2" tokenizers (byte-level BPE: Llama 3, Qwen2, GPT-2): the vocabulary and merges of the
// metadata are rewritten as a tokenizer.json and run by @huggingface/tokenizers (HuggingFaceTokenizer),
// with the pre-tokenizer regex that llama.cpp uses for the file's `tokenizer.ggml.pre`.
import { InputError, UnsupportedError } from '../../errors.js';
import type { GgufValue } from './gguf-reader.js';
import { HuggingFaceTokenizer } from './hf-tokenizer.js';
import type { Tokenizer } from '../types.js';

/** llama.cpp's pre-tokenizer regexes (llama-vocab.cpp) by tokenizer.ggml.pre. */
const PRE_TOKENIZERS: Record<string, string> = {
  'llama-bpe':
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2:
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  gpt2: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
};
PRE_TOKENIZERS.default = PRE_TOKENIZERS.gpt2;
PRE_TOKENIZERS.smaug = PRE_TOKENIZERS['llama-bpe'];

const CONTROL = 3;
const USER_DEFINED = 4;

export function ggufBpeTokenizer(
  meta: Map<string, GgufValue>,
  tokens: string[],
  types: number[],
  file: string,
): Tokenizer {
  const pre = String(meta.get('tokenizer.ggml.pre') ?? 'default');
  const regex = PRE_TOKENIZERS[pre];
  if (!regex)
    throw new UnsupportedError(
      `${file}: BPE pre-tokenizer '${pre}' is not supported (supported: ${Object.keys(PRE_TOKENIZERS).join(', ')})`,
    );
  const merges = meta.get('tokenizer.ggml.merges');
  if (!Array.isArray(merges) || merges.some((m) => typeof m !== 'string'))
    throw new InputError(`${file}: tokenizer.ggml.merges is missing or not an array of strings`);
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i;
  });
  const added = tokens.flatMap((content, id) =>
    types[id] === CONTROL || types[id] === USER_DEFINED ? [addedTokenJson(id, content, types[id] === CONTROL)] : [],
  );
  const json = {
    version: '1.0',
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: bpeModelJson(vocab, merges as string[], pre === 'llama-bpe'),
  };
  const id = (key: string) => {
    const v = meta.get(key);
    return typeof v === 'number' && v >= 0 && v < tokens.length ? v : undefined;
  };
  return new HuggingFaceTokenizer(
    json,
    {},
    { bosTokenId: id('tokenizer.ggml.bos_token_id'), eosTokenId: id('tokenizer.ggml.eos_token_id') },
    file,
  );
}

/** The `model` of a tokenizer.json for a byte-level BPE (as transformers writes it; the fuzzer's seeds too). */
export function bpeModelJson(vocab: Record<string, number>, merges: string[], ignoreMerges: boolean) {
  return {
    type: 'BPE',
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: ignoreMerges,
    vocab,
    merges,
  };
}

/** An entry of a tokenizer.json's added_tokens, matched as written. */
export function addedTokenJson(id: number, content: string, special: boolean) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}
