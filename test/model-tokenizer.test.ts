// The GGUF SentencePiece tokenizer: known encodings of the fixture's text, byte fallback, round trips.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadGguf } from '../src/model/load/gguf.js';
import { promptTokens, TextStream } from '../src/model/generation/generate.js';
import { InputError } from '../src/errors.js';
import { FIXTURE_GGUF, expectedIds, expectedText } from './model-support.js';

const tok = loadGguf(FIXTURE_GGUF).tokenizer;

describe('GGUF SentencePiece tokenizer', () => {
  it('encodes the golden text into the golden ids', () => {
    const ids = expectedIds();
    // The ids file is BOS + 199 tokens; the text is those plus one more token (" she") and a newline.
    const text = tok.decode(ids.slice(1));
    assert.ok(expectedText().startsWith(text));
    assert.deepEqual(tok.encode('Once upon a time, there was a little girl named Lily.'), ids.slice(1, 16));
    assert.deepEqual(tok.encode(text), ids.slice(1));
  });

  it('adds the leading "▁" and maps spaces to it', () => {
    const [first] = tok.encode('Once');
    assert.equal(new TextDecoder().decode(tok.tokenBytes(first)), ' Once');
    assert.deepEqual(tok.encode(''), []);
  });

  it('falls back to byte tokens for characters outside the vocabulary', () => {
    const ids = tok.encode('日'); // UTF-8 e6 97 a5; <0xNN> is token 3 + NN in this vocabulary
    assert.deepEqual(ids.slice(1), [3 + 0xe6, 3 + 0x97, 3 + 0xa5]);
    const bytes = ids.flatMap((i) => [...tok.tokenBytes(i)]);
    assert.deepEqual(bytes, [0x20, 0xe6, 0x97, 0xa5]);
  });

  it('round-trips text with unicode, newlines and repeated spaces', () => {
    for (const s of [
      'Hello world',
      'a  b   c',
      'line one\nline two\n',
      'Ünïcödé 日本語 🦙!',
      ' leading and trailing ',
      'x'.repeat(300),
    ]) {
      assert.equal(tok.decode(tok.encode(s)), s, JSON.stringify(s));
    }
  });

  it('control tokens decode to nothing; streaming holds partial UTF-8 and drops the space after BOS', () => {
    assert.equal(tok.decode([1, 2]), '');
    const ids = tok.encode('日本 x');
    const stream = new TextStream(tok, 1);
    const text = ids.map((i) => stream.push(i)).join('') + stream.flush();
    assert.equal(text, '日本 x');
  });

  it('starts a prompt with BOS; an empty prompt is BOS alone; --no-bos on empty is an InputError', () => {
    assert.deepEqual(promptTokens(tok, ''), [1]);
    assert.equal(promptTokens(tok, 'Once')[0], 1);
    assert.throws(() => promptTokens(tok, '', false), InputError);
    assert.throws(() => tok.tokenBytes(512), InputError);
  });
});

describe('GGUF byte-level BPE tokenizer (gpt2)', async () => {
  const { ggufTokenizer } = await import('../src/model/load/gguf-tokenizer.js');
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const byteChars: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) byteChars.push(String.fromCodePoint(printable(b) ? b : next++));
  const merges = ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'o r', 'Ġw or', 'l d', 'Ġwor ld'];
  const tokens = [...byteChars, ...merges.map((m) => m.replace(' ', '')), '<|begin_of_text|>', '<|end_of_text|>'];
  const types = tokens.map((_, i) => (i >= tokens.length - 2 ? 3 : 1));
  for (const pre of ['llama-bpe', 'qwen2', 'default']) {
    it(`merges by rank and round-trips (pre ${pre})`, () => {
      const meta = new Map<string, import('../src/model/load/gguf-reader.js').GgufValue>([
        ['tokenizer.ggml.model', 'gpt2'],
        ['tokenizer.ggml.pre', pre],
        ['tokenizer.ggml.tokens', tokens],
        ['tokenizer.ggml.token_type', types],
        ['tokenizer.ggml.merges', merges],
        ['tokenizer.ggml.bos_token_id', tokens.length - 2],
        ['tokenizer.ggml.eos_token_id', tokens.length - 1],
      ]);
      const bpe = ggufTokenizer(meta, 'bpe.gguf');
      assert.equal(bpe.bosId, tokens.length - 2);
      assert.deepEqual(bpe.encode('hello world'), [tokens.indexOf('hello'), tokens.indexOf('Ġworld')]);
      assert.deepEqual(bpe.encode('日'), [0xe6, 0x97, 0xa5]);
      for (const s of ['hello world', 'Ünïcödé 日本語 🦙!\n  x', "it's 12345"])
        assert.equal(bpe.decode(bpe.encode(s)), s);
      assert.deepEqual([...bpe.tokenBytes(tokens.indexOf('Ġworld'))], [...Buffer.from(' world')]);
    });
  }
});
