// Saved sessions: for every attention method the decoders run, generating after loadSession equals generating
// after the prefill it saved, from the saved caches (CCA's cores and ring and DSA's index keys included; a
// version 1 file, tokens only, by replay); a file from another model, method, RoPE or format version is a
// SessionMismatchError, and a damaged file an InputError, before anything is allocated.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError, loadModel, loadSession, SessionMismatchError } from '../src/index.js';
import { reencodeGguf } from './gguf-builder.js';
import { FIXTURE_GGUF, fixtureBytes } from './model-support.js';

const dir = mkdtempSync(join(tmpdir(), 'longctx-session-'));
const DOC = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.';
/** Every layer of each of these hands its cache over. */
const METHODS = [
  'flash',
  'dense',
  'window:left=16',
  'sinks:tokens=4,left=16',
  'cca:group=4,window=16',
  'dsa:topk=16,local=8,sinks=2',
  'hybrid:every=2,window=16',
  'star:block=16',
];

describe('saved sessions', async () => {
  const model = await loadModel(FIXTURE_GGUF, { device: 'cpu' });
  after(() => model.dispose());

  for (const attention of METHODS) {
    it(`generate after loadSession equals generate after prefill (${attention})`, async () => {
      const a = await model.createSession({ contextSize: 96, attention, chunk: 16 });
      await a.prefill(DOC);
      const file = join(dir, `${attention.replace(/[^a-z0-9]/g, '_')}.session`);
      const size = await a.save(file);
      const bytes = await a.save();
      assert.equal(size, bytes.length);
      assert.deepEqual(new Uint8Array(readFileSync(file)), bytes);
      const expected = await a.generate(' Then', { maxTokens: 12 }).complete();
      a.dispose();
      const b = await loadSession(model, file);
      assert.equal(b.attention, attention);
      assert.equal(b.restoredFrom, 'caches');
      assert.equal(b.tokenCount, model.tokenizer.encode(DOC).length + 1);
      const got = await b.generate(' Then', { maxTokens: 12 }).complete();
      assert.deepEqual(got.ids, expected.ids);
      b.dispose();
    });
  }

  it('refuses a file of another model, method, RoPE, version or size with typed errors', async () => {
    const a = await model.createSession({ contextSize: 64, attention: 'flash' });
    await a.prefill(DOC);
    const bytes = await a.save();
    a.dispose();
    const q8 = await loadModel(
      reencodeGguf(fixtureBytes(), () => 8),
      { device: 'cpu' },
    );
    try {
      await assert.rejects(
        loadSession(q8, bytes),
        (e: Error) => e instanceof SessionMismatchError && /model/.test(e.message),
      );
    } finally {
      q8.dispose();
    }
    await assert.rejects(
      loadSession(model, bytes, { attention: 'window:left=8' }),
      (e: Error) => e instanceof SessionMismatchError && /attention/.test(e.message),
    );
    await assert.rejects(
      loadSession(model, bytes, { rope: 'linear:factor=2' }),
      (e: Error) => e instanceof SessionMismatchError && /positions/.test(e.message),
    );
    await assert.rejects(
      loadSession(model, bytes, { contextSize: 8 }),
      (e: Error) => e instanceof SessionMismatchError && /more than/.test(e.message),
    );
    const newer = bytes.slice();
    newer[8] = 3;
    await assert.rejects(
      loadSession(model, newer),
      (e: Error) => e instanceof SessionMismatchError && /version 3/.test(e.message),
    );
    // Cut inside the saved arrays (the header and the ids are whole).
    await assert.rejects(
      loadSession(model, bytes.subarray(0, bytes.length - 64)),
      (e: Error) => e instanceof InputError && /runs past the end of the file \(.*truncated/.test(e.message),
    );
    const notOne = bytes.slice();
    notOne[0] = 0x58;
    await assert.rejects(
      loadSession(model, notOne),
      (e: Error) => e instanceof InputError && /not a longctx session/.test(e.message),
    );
    await assert.rejects(
      loadSession(model, bytes.subarray(0, bytes.length - 4)),
      (e: Error) => e instanceof InputError && /truncated/.test(e.message),
    );
    await assert.rejects(loadSession(model, join(dir, 'missing.session')), (e: Error) => e instanceof InputError);
    // A forged header (the ids and arrays after it kept, 8-aligned as before): a layer that is not a cache, an
    // array past the end or of another size, a header without its model.
    // biome-ignore lint/suspicious/noExplicitAny: a forged header is any JSON
    const forge = (edit: (h: Record<string, any>) => void) => {
      const align8 = (n: number) => Math.ceil(n / 8) * 8;
      const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + length)));
      edit(header);
      const json = new TextEncoder().encode(JSON.stringify(header));
      const rest = bytes.subarray(align8(16 + length));
      const out = new Uint8Array(align8(16 + json.length) + rest.length);
      out.set(bytes.subarray(0, 12));
      new DataView(out.buffer).setUint32(12, json.length, true);
      out.set(json, 16);
      out.set(rest, align8(16 + json.length));
      return out;
    };
    assert.equal(
      (
        await loadSession(
          model,
          forge(() => {}),
        )
      ).restoredFrom,
      'caches',
      'the forger keeps a file whole',
    );
    await assert.rejects(
      loadSession(
        model,
        forge((h) => (h.caches.layers[0] = 7)),
      ),
      (e: Error) => e instanceof InputError && /layer 0's saved cache has no spec/.test(e.message),
    );
    await assert.rejects(
      loadSession(
        model,
        forge((h) => (h.caches.layers[1].arrays.k.offset = 8 * 2 ** 40)),
      ),
      (e: Error) => e instanceof InputError && /runs past the end/.test(e.message),
    );
    await assert.rejects(
      loadSession(
        model,
        forge((h) => (h.caches.layers[1].arrays.k.shape = [1, 1])),
      ),
      (e: Error) => e instanceof InputError && /declares \d+ bytes for \[1,1\]/.test(e.message),
    );
    await assert.rejects(
      loadSession(
        model,
        forge((h) => delete h.model),
      ),
      (e: Error) => e instanceof InputError && /lacks the model/.test(e.message),
    );
    assert.equal((await loadSession(model, bytes)).tokenCount, model.tokenizer.encode(DOC).length + 1);
  });

  it('a version 1 file (tokens only) loads by replaying them; a short run restores into a long one', async () => {
    const a = await model.createSession({ contextSize: 64, attention: 'window:left=8' });
    await a.prefill('Once upon a time');
    const bytes = await a.save();
    const expected = await a.generate(' there', { maxTokens: 12 }).complete();
    a.dispose();
    const v1 = bytes.slice();
    v1[8] = 1;
    const b = await loadSession(model, v1);
    assert.equal(b.restoredFrom, 'replay');
    assert.deepEqual((await b.generate(' there', { maxTokens: 12 }).complete()).ids, expected.ids);
    b.dispose();
    const long = await loadSession(model, bytes, { contextSize: 256 });
    assert.equal(long.restoredFrom, 'caches');
    assert.deepEqual((await long.generate(' there', { maxTokens: 12 }).complete()).ids, expected.ids);
    long.dispose();
  });
});
