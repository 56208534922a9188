// A session file's layers read while the layer before restores (api/session-prefetch.ts): the fixture's 5 layers
// take turns in two sets of buffers (layer 2 is read into layer 0's), and a decoder restored that way generates the
// same ids with the same logits, bit for bit, as the one that saved, for flash, CCA and DSA on the CPU and WebGPU;
// so no layer keeps a state's array past its restore. An array over the buffer limit is an InputError before
// anything is read; loadSession from the file fills in both timings.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { loadModel, loadSession } from '../src/index.js';
import { decodeSessionLayout, planSessionFile } from '../src/api/session-file.js';
import { prefetchCaches } from '../src/api/session-prefetch.js';
import { MAX_BUFFER, withSessionFile, writeSessionStream } from '../src/api/session-stream.js';
import type { LayerCacheState } from '../src/attention/layer.js';
import { scheduleFromSpec } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { cpuDevice, type Device } from '../src/runtime/device.js';
import { createDecoder } from '../src/model/forward/create-decoder.js';
import { loadGguf } from '../src/model/load/gguf.js';
import { FIXTURE_GGUF } from './model-support.js';
import { webgpuDevice } from './support.js';

const model = loadGguf(FIXTURE_GGUF);
const gpu = await webgpuDevice();
const dir = mkdtempSync(join(tmpdir(), 'longctx-prefetch-'));
after(() => {
  gpu?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const METHODS = ['flash', 'cca:group=4,window=8', 'dsa:topk=6,local=4,sinks=2'];
const PROMPT = [1, ...Array.from({ length: 52 }, (_, i) => 100 + ((i * 37) % 300))];
const argmax = (x: Float32Array) => x.reduce((best, v, i) => (v > x[best] ? i : best), 0);
const HEADER = {
  format: 'longctx-session' as const,
  model: { fingerprint: 'f', source: 's', architecture: 'llama', layers: 5, vocabSize: model.config.vocabSize },
  positions: { rope: { kind: 'none' as const }, ropeTheta: 1e4, ropeLayout: 'interleaved' as const },
  contextSize: 80,
};

async function decoder(device: Device, method: string, storage: 'f32' | 'f16') {
  return createDecoder(device, model, scheduleFromSpec(parseMethodSpec(method)), { maxTokens: 80, chunk: 16, storage });
}

async function greedy(d: Awaited<ReturnType<typeof decoder>>, first: Float32Array) {
  const ids: number[] = [];
  const logits: Float32Array[] = [];
  let next = first;
  for (let i = 0; i < 5; i++) {
    ids.push(argmax(next));
    next = await d.forward([ids[i]]);
    logits.push(next);
  }
  return { ids, logits };
}

/** Restores `into` from `file` layer by layer; the states it was handed, in order. */
async function restoreFrom(file: string, into: Awaited<ReturnType<typeof decoder>>) {
  const seen: LayerCacheState[] = [];
  const ok = await withSessionFile(file, {}, async (source, fd) => {
    const layout = decodeSessionLayout(source, file);
    assert.ok(layout.caches);
    const p = prefetchCaches(fd, { ...layout, caches: layout.caches }, file, MAX_BUFFER);
    p.start();
    const layers = p.caches.layers.map((l) => async () => {
      const s = typeof l === 'function' ? await l() : l;
      seen.push(s);
      return s;
    });
    try {
      return await into.restoreCaches!({ ...p.caches, layers });
    } finally {
      await p.settled();
    }
  });
  return { ok, seen };
}

const targets: Array<[string, Device | null, 'f32' | 'f16']> = [
  ['cpu', cpuDevice, 'f32'],
  ['webgpu f16', gpu?.gpu?.features.f16 ? gpu : null, 'f16'],
];

for (const [name, device, storage] of targets)
  describe(`a session file read while restoring, on ${name}`, { skip: device ? false : `no ${name} device` }, () => {
    for (const method of METHODS)
      it(`${method}: the restored decoder generates as the saved one, bit for bit, its buffers reused`, async () => {
        const a = await decoder(device!, method, storage);
        const b = await decoder(device!, method, storage);
        const file = join(dir, `${name}-${method}.session`.replace(/[^\w.-]/g, '_'));
        try {
          const first = await a.forward(PROMPT);
          const caches = await a.saveCaches!();
          assert.ok(caches);
          const header = { ...HEADER, attention: method, tokenCount: PROMPT.length };
          writeSessionStream(file, planSessionFile(header, PROMPT, { caches, logits: first }));
          const { ok, seen } = await restoreFrom(file, b);
          assert.equal(ok, true);
          assert.equal(seen.length, 5);
          // Layer 2 was read into layer 0's buffers once layer 0 had restored (and 3 into 1's).
          const key = Object.keys(seen[0].arrays)[0];
          assert.equal(seen[2].arrays[key].data.buffer, seen[0].arrays[key].data.buffer);
          assert.notEqual(seen[1].arrays[key].data.buffer, seen[0].arrays[key].data.buffer);
          const [want, got] = [await greedy(a, first), await greedy(b, first)];
          assert.deepEqual(got.ids, want.ids);
          want.logits.forEach((l, i) => assert.deepEqual(got.logits[i], l, `step ${i}`));
        } finally {
          a.destroy();
          b.destroy();
        }
      });
  });

describe('a session file read while restoring: limits and timings', () => {
  it('an array over the buffer limit is an InputError before any read', async () => {
    const a = await decoder(cpuDevice, 'flash', 'f32');
    const file = join(dir, 'limit.session');
    const first = await a.forward(PROMPT);
    const caches = await a.saveCaches!();
    assert.ok(caches);
    const header = { ...HEADER, attention: 'flash', tokenCount: PROMPT.length };
    writeSessionStream(file, planSessionFile(header, PROMPT, { caches, logits: first }));
    const bytes = caches.layers[0].arrays.k.data.byteLength;
    withSessionFile(file, {}, (source, fd) => {
      const layout = decodeSessionLayout(source, file);
      assert.ok(layout.caches);
      assert.throws(
        () => prefetchCaches(fd, { ...layout, caches: layout.caches! }, file, bytes - 1),
        (e: Error) => e instanceof InputError && /more than one buffer/.test(e.message),
      );
    });
  });

  it('loadSession from a file restores from its caches and fills in both timings', async () => {
    const m = await loadModel(FIXTURE_GGUF, { device: 'cpu' });
    try {
      const s = await m.createSession({ contextSize: 96, attention: 'flash' });
      await s.prefill('Once upon a time there was a little dog who liked to run in the park.');
      const file = join(dir, 'api.session');
      await s.save(file);
      const want = await s.generate(' The', { maxTokens: 4, stopAtEos: false }).complete();
      s.dispose();
      const timings: { readSeconds?: number; restoreSeconds?: number } = {};
      const b = await loadSession(m, file, { timings });
      assert.equal(b.restoredFrom, 'caches');
      assert.ok(timings.readSeconds! >= 0 && timings.restoreSeconds! >= 0, JSON.stringify(timings));
      const got = await b.generate(' The', { maxTokens: 4, stopAtEos: false }).complete();
      assert.deepEqual(got.ids, want.ids);
      b.dispose();
    } finally {
      m.dispose();
    }
  });
});
