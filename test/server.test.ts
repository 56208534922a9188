// The OpenAI-compatible server against the real `openai` client on 127.0.0.1 (ephemeral ports), with
// stories260K on the CPU: completions and chat (JSON and streamed), abort mid-stream (the server stops
// generating), context and max_tokens limits (400), a full queue (429), a wrong key (401), and 20
// concurrent clients each getting exactly the text a lone request gets.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { loadModel, type Model } from '../src/index.js';
import { createServer, type OpenAiServer } from '../src/server/server.js';
import { FIXTURE_GGUF } from './model-support.js';

const TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
const NAMES = ['Lily', 'Tom', 'Ben', 'Sue', 'Max', 'Amy', 'Tim', 'Sam', 'Mia', 'Zoe'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('OpenAI-compatible server', () => {
  let model: Model;
  let server: OpenAiServer;
  let client: OpenAI;
  const servers: OpenAiServer[] = [];
  const start = async (o: Parameters<typeof createServer>[1]) => {
    const s = await createServer(model, { contextSize: 256, ...o });
    servers.push(s);
    return { s, url: await s.listen(0, '127.0.0.1') };
  };
  const clientFor = (url: string, apiKey = 'none') =>
    new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
  /** What a lone library call answers, for comparison. */
  const alone = async (prompt: string, maxTokens: number) => {
    const s = await model.createSession({ contextSize: 256 });
    try {
      return await s.generate(prompt, { maxTokens, replace: true }).text();
    } finally {
      s.dispose();
    }
  };

  before(async () => {
    model = await loadModel(FIXTURE_GGUF, { device: 'cpu', chatTemplate: TEMPLATE });
    const { s, url } = await start({ queue: 32 });
    server = s;
    client = clientFor(url);
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.close(1000)));
    model.dispose();
  });

  it('lists the model and answers a completion as the library does', async () => {
    const models = await client.models.list();
    assert.deepEqual(
      models.data.map((m) => m.id),
      ['stories260K'],
    );
    const r = await client.completions.create({
      model: 'stories260K',
      prompt: 'Once upon a time',
      max_tokens: 12,
      temperature: 0,
    });
    assert.equal(r.choices[0].text, await alone('Once upon a time', 12));
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage?.completion_tokens, 12);
    assert.equal(r.usage?.prompt_tokens, model.tokenizer.encode('Once upon a time').length + 1);
    const stopped = await client.completions.create({
      model: 'stories260K',
      prompt: 'Once upon a time',
      max_tokens: 40,
      temperature: 0,
      stop: ['.'],
    });
    assert.equal(stopped.choices[0].finish_reason, 'stop');
    assert.ok(!stopped.choices[0].text.includes('.'));
  });

  it('chat through the template, JSON and streamed alike', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me a story about Lily.' }];
    const r = await client.chat.completions.create({ model: 'stories260K', messages, max_tokens: 10, temperature: 0 });
    const s = await model.createSession({ contextSize: 256 });
    const expected = await s.chat(messages, { maxTokens: 10 }).text();
    s.dispose();
    assert.equal(r.choices[0].message.content, expected);
    assert.equal(r.choices[0].message.role, 'assistant');
    const stream = await client.chat.completions.create({
      model: 'stories260K',
      messages,
      max_tokens: 10,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, expected);
    assert.equal(finish, 'length');
    assert.equal(usage?.completion_tokens, 10);
  });

  it('streams: chunks arrive while the server is still generating', async () => {
    const before = server.session.generatedTokens;
    const stream = await client.completions.create({
      model: 'stories260K',
      prompt: 'Once',
      max_tokens: 150,
      temperature: 0,
      stream: true,
    });
    let first: number | undefined;
    let chunks = 0;
    let text = '';
    for await (const c of stream) {
      first ??= server.session.generatedTokens - before;
      chunks++;
      text += c.choices[0].text;
    }
    assert.ok(first !== undefined && first < 150, `the first chunk came after ${first} of 150 tokens`);
    assert.ok(chunks > 20);
    assert.equal(text, await alone('Once', 150));
  });

  it('a client that goes away mid-stream stops the generation', async () => {
    const before = server.session.generatedTokens;
    const cancelled = server.stats.cancelled;
    const ac = new AbortController();
    const stream = await client.completions.create(
      { model: 'stories260K', prompt: 'Once', max_tokens: 250, temperature: 0, stream: true },
      { signal: ac.signal },
    );
    let n = 0;
    try {
      for await (const _ of stream) if (++n === 3) ac.abort();
    } catch {
      // The client may end the loop quietly or with an abort error: either way it went away.
    }
    assert.equal(n, 3);
    await until('the server to see the disconnect', () => server.stats.cancelled === cancelled + 1);
    const atCancel = server.session.generatedTokens;
    await sleep(300);
    assert.equal(server.session.generatedTokens, atCancel, 'nothing is generated after the disconnect');
    assert.ok(atCancel - before < 250, `${atCancel - before} of 250 tokens were generated`);
    // The session serves the next request as if nothing happened.
    const r = await client.completions.create({ model: 'stories260K', prompt: 'Once', max_tokens: 5, temperature: 0 });
    assert.equal(r.choices[0].text, await alone('Once', 5));
  });

  it('refuses a prompt beyond the context and bad max_tokens with 400s in OpenAI shape', async () => {
    const long = 'Once upon a time, there was a little girl named Lily. '.repeat(30);
    await assert.rejects(
      client.completions.create({ model: 'stories260K', prompt: long, max_tokens: 4 }),
      (e: Error) =>
        e instanceof OpenAI.BadRequestError &&
        e.code === 'context_length_exceeded' &&
        /maximum context length is 256/.test(e.message),
    );
    await assert.rejects(
      client.completions.create({ model: 'stories260K', prompt: 'Once', max_tokens: 1000 }),
      (e: Error) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded',
    );
    await assert.rejects(
      client.completions.create({ model: 'stories260K', prompt: 'Once', max_tokens: -3 }),
      (e: Error) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens',
    );
    await assert.rejects(
      client.completions.create({ model: 'gpt-4', prompt: 'Once', max_tokens: 3 }),
      (e: Error) => e instanceof OpenAI.NotFoundError && /stories260K/.test(e.message),
    );
  });

  it('answers 429 when the queue is full, and serves what waited', async () => {
    const { s, url } = await start({ queue: 1 });
    const c = clientFor(url);
    const ac = new AbortController();
    const long = await c.completions.create(
      { model: 'stories260K', prompt: 'Once', max_tokens: 250, temperature: 0, stream: true },
      { signal: ac.signal },
    );
    const reader = long[Symbol.asyncIterator]();
    await reader.next(); // running
    const waiting = c.completions.create({ model: 'stories260K', prompt: 'Once', max_tokens: 3, temperature: 0 });
    await until('the second request to queue', () => s.stats.requests === 2);
    await assert.rejects(
      c.completions.create({ model: 'stories260K', prompt: 'Once', max_tokens: 3 }),
      (e: Error) => e instanceof OpenAI.RateLimitError && e.status === 429 && /queue of 1/.test(e.message),
    );
    assert.equal(s.stats.rejected, 1);
    ac.abort();
    await reader.return?.();
    assert.equal((await waiting).choices[0].text, await alone('Once', 3));
  });

  it('requires the bearer key when one is set', async () => {
    const { url } = await start({ apiKey: 'right key' });
    await assert.rejects(
      clientFor(url, 'wrong key').models.list(),
      (e: Error) => e instanceof OpenAI.AuthenticationError,
    );
    await assert.rejects(
      clientFor(url, 'wrong key').completions.create({ model: 'stories260K', prompt: 'Once', max_tokens: 2 }),
      (e: Error) => e instanceof OpenAI.AuthenticationError && e.status === 401,
    );
    const ok = await clientFor(url, 'right key').completions.create({
      model: 'stories260K',
      prompt: 'Once',
      max_tokens: 2,
    });
    assert.equal(ok.usage?.completion_tokens, 2);
    assert.equal((await fetch(`${url}/health`)).status, 200, 'health needs no key');
  });

  it('20 concurrent clients each get their own answer, nothing lost or mixed', async () => {
    const prompts = Array.from(
      { length: 20 },
      (_, i) => `Once upon a time, ${NAMES[i % 10]} ${i < 10 ? 'saw' : 'had'} a`,
    );
    const expected: string[] = [];
    for (const p of prompts) expected.push(await alone(p, 6));
    const got = await Promise.all(
      prompts.map(async (prompt, i) => {
        if (i % 2 === 0) {
          const r = await client.completions.create({ model: 'stories260K', prompt, max_tokens: 6, temperature: 0 });
          return r.choices[0].text;
        }
        let text = '';
        const stream = await client.completions.create({
          model: 'stories260K',
          prompt,
          max_tokens: 6,
          temperature: 0,
          stream: true,
        });
        for await (const c of stream) text += c.choices[0].text;
        return text;
      }),
    );
    assert.deepEqual(got, expected);
    assert.equal(new Set(expected).size > 1, true, 'the prompts lead to different texts');
  });
});

describe('longctx serve', () => {
  it('listens on an ephemeral loopback port, serves the openai client, and stops cleanly on SIGTERM', async () => {
    const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
    const child = spawn(
      process.execPath,
      [main, 'serve', '--model', FIXTURE_GGUF, '--port', '0', '--context', '128', '--backend', 'cpu', '--api-key', 'k'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await until(
        'the URL line',
        () => /listening on (http:\/\/127\.0\.0\.1:\d+)/.test(err) || child.exitCode !== null,
        30_000,
      );
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err)?.[1];
      assert.ok(url, err);
      const r = await clientFor2(url, 'k').completions.create({
        model: 'stories260K',
        prompt: 'Once',
        max_tokens: 4,
        temperature: 0,
      });
      assert.equal(r.usage?.completion_tokens, 4);
    } finally {
      child.kill('SIGTERM');
    }
    const code = await Promise.race([exited, sleep(10_000).then(() => 'timeout')]);
    assert.equal(code, 0, err);
    assert.match(err, /SIGTERM: shutting down/);
  });
});

function clientFor2(url: string, apiKey: string): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 30_000 });
}
