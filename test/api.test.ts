// The library API: loadModel (path, bytes, Blob, progress, abort) -> createSession -> generate / prefill /
// chat, against stories260K's golden greedy ids (llama2.c's) on the CPU and WebGPU; stop strings, aborts,
// context limits, the plan's refusal, chat templates from GGUF metadata and tokenizer_config.json, disposal.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ChatTemplateError,
  ContextOverflowError,
  ContextTooLargeError,
  DisposedError,
  loadModel,
  modelFromWeights,
  NoChatTemplateError,
  plan,
  type Model,
} from '../src/index.js';
import { parseGguf } from '../src/model/load/gguf-reader.js';
import { buildGguf, metaValue } from './gguf-builder.js';
import { writeTinyModel } from './hf-fixture.js';
import { FIXTURE_GGUF, expectedIds, expectedText, fixtureBytes } from './model-support.js';
import { webgpuDevice } from './support.js';

const gpu = await webgpuDevice();
const golden = expectedIds();
const SIMPLE_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

async function collect(g: AsyncIterable<string>): Promise<string[]> {
  const pieces: string[] = [];
  for await (const p of g) pieces.push(p);
  return pieces;
}

describe('library API', () => {
  const models: Model[] = [];
  after(() => models.forEach((m) => m.dispose()));
  const cpuModel = async (o: Parameters<typeof loadModel>[1] = {}) => {
    const m = await loadModel(FIXTURE_GGUF, { device: 'cpu', ...o });
    models.push(m);
    return m;
  };

  for (const backend of ['cpu', 'webgpu'] as const) {
    it(
      `generates llama2.c's greedy ids and text from BOS (${backend})`,
      { skip: backend === 'webgpu' && !gpu },
      async () => {
        const model = await loadModel(FIXTURE_GGUF, { device: backend === 'cpu' ? 'cpu' : gpu! });
        models.push(model);
        const session = await model.createSession({ contextSize: 201 });
        const g = session.generate('', { maxTokens: 200 });
        const pieces = await collect(g);
        assert.ok(pieces.length > 50, 'text arrives in pieces');
        assert.deepEqual(g.result!.ids.slice(0, 199), golden.slice(1));
        // llama2.c prints the 200th token too, then a newline.
        assert.equal(pieces.join('') + '\n', expectedText());
        assert.equal(g.result!.finishReason, 'length');
        assert.equal(session.tokenCount, 200, 'BOS and every generated token but the last are in the context');
        assert.ok(session.cacheBytes > 0);
        session.dispose();
      },
    );
  }

  it('prefill then generate continues the same greedy sequence; progress counts the prompt', async () => {
    const model = await cpuModel();
    const session = await model.createSession({ contextSize: 128, chunk: 4 });
    const prompt = 'Once upon a time, there was a little girl named Lily.';
    const ids = session.encode(prompt);
    assert.deepEqual(ids, golden.slice(0, ids.length), 'the prompt tokenises as the golden text begins');
    const seen: number[] = [];
    const r = await session.prefill(prompt, { onProgress: (p) => seen.push(p.tokens) });
    assert.equal(r.tokens, ids.length);
    assert.deepEqual(
      seen,
      [...seen].sort((a, b) => a - b),
    );
    assert.equal(seen.length, Math.ceil(ids.length / 4));
    assert.equal(seen.at(-1), ids.length);
    const g = session.generate('', { maxTokens: 20 });
    await g.complete();
    assert.deepEqual(g.result!.ids, golden.slice(ids.length, ids.length + 20));
  });

  it('replace: a prompt that begins with the context reuses it and gives the same text', async () => {
    const model = await cpuModel();
    const session = await model.createSession({ contextSize: 128 });
    const doc = 'Once upon a time, there was a little girl named Lily.';
    const first = session.generate(doc, { maxTokens: 8, replace: true });
    const text1 = await first.text();
    assert.equal(first.result!.cachedTokens, 0);
    // The second call sees the context as a prefix of its prompt only if nothing was generated past it.
    session.reset();
    await session.prefill(doc);
    const second = session.generate(doc, { maxTokens: 8, replace: true });
    assert.equal(await second.text(), text1);
    assert.equal(second.result!.cachedTokens, session.encode(doc, true).length);
    const other = session.generate('Lily', { maxTokens: 4, replace: true });
    await other.complete();
    assert.equal(other.result!.cachedTokens, 0, 'a prompt that does not begin with the context starts over');
  });

  it('stops at a stop string (not included) and holds back text that could begin one', async () => {
    const model = await cpuModel();
    const session = await model.createSession({ contextSize: 200 });
    const g = session.generate('', { maxTokens: 100, stop: ['girl named', 'zzz'] });
    const pieces = await collect(g);
    const whole = expectedText();
    assert.equal(pieces.join(''), whole.slice(0, whole.indexOf('girl named')));
    assert.equal(g.result!.finishReason, 'stop');
    assert.ok(
      pieces.every((p) => !p.includes('girl')),
      'no piece shows the start of the stop string',
    );
  });

  it('an abort signal stops generation between tokens', async () => {
    const model = await cpuModel();
    const session = await model.createSession({ contextSize: 200 });
    const ac = new AbortController();
    let n = 0;
    await assert.rejects(async () => {
      for await (const _ of session.generate('', { maxTokens: 190, signal: ac.signal })) if (++n === 3) ac.abort();
    }, /abort/i);
    assert.ok(session.generatedTokens < 10, `stopped after ${session.generatedTokens} tokens`);
    // Breaking off a loop stops it too, and the session is free again.
    for await (const _ of session.generate('', { maxTokens: 50, replace: true })) break;
    const again = session.generate('', { maxTokens: 5, replace: true });
    assert.deepEqual((await again.complete()).ids, golden.slice(1, 6));
  });

  it('refuses prompts and maxTokens beyond the context with typed errors', async () => {
    const model = await cpuModel();
    const session = await model.createSession({ contextSize: 16 });
    const long = 'Once upon a time, there was a little girl named Lily. She loved to play outside.';
    assert.throws(
      () => session.generate(long, { maxTokens: 1 }),
      (e: Error) => e instanceof ContextOverflowError && e.contextSize === 16 && /context holds 16/.test(e.message),
    );
    assert.throws(() => session.generate('Once', { maxTokens: 40 }), ContextOverflowError);
    await assert.rejects(session.prefill(long), ContextOverflowError);
    assert.equal(session.tokenCount, 0, 'nothing was fed');
  });

  it('plan says what a context costs; a context over the budget is refused with methods that fit', async () => {
    const model = await cpuModel({ memoryBytes: 64 * 2 ** 20 });
    const small = model.plan({ contextSize: 2048 });
    assert.ok(small.fits && small.kvCacheBytes === 5 * 2048 * 2 * 4 * 8 * 4, `KV ${small.kvCacheBytes}`);
    await assert.rejects(
      model.createSession({ contextSize: 1 << 20 }),
      (e: Error) =>
        e instanceof ContextTooLargeError &&
        e.requestedBytes > 64 * 2 ** 20 &&
        e.fits.includes('window:left=4096') &&
        !e.fits.includes('flash') &&
        /methods that fit/.test(e.message),
    );
    const before = await plan(FIXTURE_GGUF, { contextSize: 4096, attention: 'window:left=256', memoryBytes: 2 ** 30 });
    assert.ok(before.fits && before.groups[0].cachedRows === 257);
  });

  it('loads from a Uint8Array, an ArrayBuffer and a Blob, with progress; a pre-aborted signal rejects', async () => {
    const bytes = new Uint8Array(fixtureBytes());
    for (const source of [bytes, bytes.slice().buffer, new Blob([bytes])]) {
      const progress: number[] = [];
      const m = await loadModel(source, { device: 'cpu', onProgress: (p) => progress.push(p.loadedBytes) });
      models.push(m);
      assert.equal(progress.at(-1), bytes.length);
      const s = await m.createSession({ contextSize: 8 });
      assert.deepEqual((await s.generate('', { maxTokens: 7 }).complete()).ids, golden.slice(1, 8));
    }
    await assert.rejects(loadModel(FIXTURE_GGUF, { device: 'cpu', signal: AbortSignal.abort() }), /abort/i);
  });

  it('chat: no template is a typed error; GGUF tokenizer.chat_template is rendered with BOS as a token', async () => {
    const plain = await cpuModel();
    const s0 = await plain.createSession({ contextSize: 64 });
    assert.throws(() => s0.chat([{ role: 'user', content: 'hi' }]), NoChatTemplateError);

    const g = parseGguf(fixtureBytes(), 'fixture');
    const meta = [...g.metadata].map(([k, v]) => [k, metaValue(v)] as [string, ReturnType<typeof metaValue>]);
    meta.push(['tokenizer.chat_template', { type: 'string', value: SIMPLE_TEMPLATE }]);
    const src = fixtureBytes();
    const tensors = g.tensors.map((t) => ({
      name: t.name,
      dims: t.dims,
      type: t.type,
      data: src.subarray(t.offset, t.offset + t.byteLength),
    }));
    const m = await loadModel(buildGguf(meta, tensors), { device: 'cpu' });
    models.push(m);
    const s = await m.createSession({ contextSize: 128 });
    const messages = [{ role: 'user', content: 'Tell me a story.' }];
    assert.equal(s.renderChat(messages), '<s>user: Tell me a story.\nassistant:');
    const ids = s.chatTokens(messages);
    assert.equal(ids[0], m.tokenizer.bosId);
    assert.deepEqual(ids.slice(1), m.tokenizer.encode('user: Tell me a story.\nassistant:'));
    const reply = s.chat(messages, { maxTokens: 12 });
    const text = await reply.text();
    const direct = await s.generate('user: Tell me a story.\nassistant:', { maxTokens: 12, replace: true }).text();
    assert.equal(text, direct);
    assert.equal(reply.result!.promptTokens, ids.length);
    assert.throws(() => s.chat([]), ChatTemplateError);
    const bad = await loadModel(FIXTURE_GGUF, { device: 'cpu', chatTemplate: '{{ raise_exception("no") }}' });
    models.push(bad);
    assert.throws(() => bad.chatTemplate().render(messages), /failed to render: .*no/);
  });

  it("chat: a Hugging Face directory's tokenizer_config.json template", async () => {
    const { dir } = writeTinyModel();
    const cfg = join(dir, 'tokenizer_config.json');
    const json = JSON.parse(readFileSync(cfg, 'utf8'));
    writeFileSync(cfg, JSON.stringify({ ...json, chat_template: [{ name: 'default', template: SIMPLE_TEMPLATE }] }));
    const m = await loadModel(dir, { device: 'cpu' });
    models.push(m);
    const s = await m.createSession({ contextSize: 64 });
    const ids = s.chatTokens([{ role: 'user', content: 'hello world' }]);
    assert.equal(ids[0], 256, '<s> became the BOS id, not its characters');
    assert.ok(!ids.slice(1).includes(256));
    const r = await s.chat([{ role: 'user', content: 'hello world' }], { maxTokens: 3 }).complete();
    assert.ok(r.completionTokens <= 3);
  });

  it('modelFromWeights: weights already in memory serve sessions like a loaded file', async () => {
    const { ggufModel } = await import('../src/model/load/gguf.js');
    const m = await modelFromWeights(ggufModel(fixtureBytes(), 'in memory'), { device: 'cpu' });
    models.push(m);
    assert.equal(m.source, 'in memory');
    const s = await m.createSession({ contextSize: 16 });
    assert.deepEqual((await s.generate('', { maxTokens: 15 }).complete()).ids, golden.slice(1, 16));
    assert.throws(() => s.chat([{ role: 'user', content: 'hi' }]), NoChatTemplateError);
  });

  it('dispose: Symbol.dispose and Symbol.asyncDispose end sessions; the model disposes its sessions', async () => {
    const model = await loadModel(FIXTURE_GGUF, { device: 'cpu' });
    const a = await model.createSession({ contextSize: 8 });
    a[Symbol.dispose]();
    assert.throws(() => a.generate(''), DisposedError);
    const b = await model.createSession({ contextSize: 8 });
    await model[Symbol.asyncDispose]();
    assert.ok(b.isDisposed);
    await assert.rejects(model.createSession(), DisposedError);
  });
});
