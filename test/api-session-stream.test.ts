// Session files are written and read array by array, never as one buffer of the whole file (a 1B model's f16
// cache at 128K tokens is 4 GiB, past what one Node typed array holds): with the largest buffer capped at
// 1 MiB, a 3 MiB session round-trips bit for bit, its file equals the in-memory encoding (the format is
// unchanged), an array over the cap is one InputError, and a truncated or foreign file keeps its typed error.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { encodeSessionFile, planSessionFile, type SavedContext } from '../src/api/session-file.js';
import { readSessionStream, sessionDeclaredBytes, writeSessionStream } from '../src/api/session-stream.js';
import type { LayerCacheState } from '../src/attention/layer.js';

const dir = mkdtempSync(join(tmpdir(), 'longctx-stream-'));
const MiB = 1 << 20;
const TOKENS = 100;

const header = {
  format: 'longctx-session' as const,
  model: { fingerprint: 'f'.repeat(64), source: 'synthetic', architecture: 'llama', layers: 3, vocabSize: 1000 },
  attention: 'flash',
  positions: { rope: { kind: 'none' as const }, ropeTheta: 10000, ropeLayout: 'half' as const },
  contextSize: 4096,
  tokenCount: TOKENS,
};

/** Three layers of f16 k and v, 512 KiB each: 3 MiB of arrays, none over 1 MiB. */
function context(elements = 256 * 1024): { ids: number[]; saved: SavedContext } {
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0);
  const arr = () => ({
    dtype: 'f16' as const,
    shape: [2, elements / 128, 64],
    data: Uint16Array.from({ length: elements }, next),
  });
  const layers: LayerCacheState[] = [0, 1, 2].map(() => ({
    spec: 'flash',
    tokens: TOKENS,
    meta: { sinks: 0, first: 0 },
    arrays: { k: arr(), v: arr() },
  }));
  const logits = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
  return {
    ids: Array.from({ length: TOKENS }, (_, i) => (i * 37) % 1000),
    saved: { caches: { position: TOKENS, layers }, logits },
  };
}

describe('streamed session files', () => {
  it('round-trips a 3 MiB session with no buffer over 1 MiB, the file equal to the in-memory encoding', () => {
    const { ids, saved } = context();
    const file = join(dir, 'big.session');
    const plan = planSessionFile(header, ids, saved);
    assert.ok(plan.total > 3 * MiB);
    const written = writeSessionStream(file, plan, { maxBuffer: MiB });
    assert.equal(written, plan.total);
    assert.equal(statSync(file).size, plan.total);
    assert.deepEqual(new Uint8Array(readFileSync(file)), encodeSessionFile(header, ids, saved));
    const back = readSessionStream(file, { maxBuffer: MiB });
    assert.deepEqual(back.ids, ids);
    assert.equal(back.header.tokenCount, TOKENS);
    assert.deepEqual(back.saved?.logits, saved.logits);
    back.saved?.caches.layers.forEach((l, i) => {
      for (const key of ['k', 'v']) {
        assert.deepEqual(l.arrays[key].shape, saved.caches.layers[i].arrays[key].shape);
        assert.deepEqual(l.arrays[key].data, saved.caches.layers[i].arrays[key].data);
      }
    });
  });

  it('refuses an array larger than one buffer, a truncated file and a foreign one with InputError', () => {
    const { ids, saved } = context();
    const file = join(dir, 'cap.session');
    writeSessionStream(file, planSessionFile(header, ids, saved));
    assert.throws(
      () => readSessionStream(file, { maxBuffer: 256 * 1024 }),
      (e) => e instanceof InputError && /more than one buffer/.test(e.message),
    );
    truncateSync(file, statSync(file).size - 100);
    assert.throws(
      () => readSessionStream(file),
      (e) => e instanceof InputError && /runs past the end/.test(e.message),
    );
    const other = join(dir, 'other.session');
    writeFileSync(other, 'not a session at all, just text');
    assert.throws(
      () => readSessionStream(other),
      (e) => e instanceof InputError && /not a longctx session/.test(e.message),
    );
    assert.throws(
      () => readSessionStream(join(dir, 'missing.session')),
      (e) => e instanceof InputError && /no such file/.test(e.message),
    );
  });

  it('reads a session from a pipe as far as its head declares; /dev/zero stops at once, not at the cap', async () => {
    const { ids, saved } = context(4096);
    const file = join(dir, 'piped.session');
    const total = writeSessionStream(file, planSessionFile(header, ids, saved));
    const bytes = readFileSync(file);
    assert.equal(sessionDeclaredBytes(bytes), total, 'the head declares what the writer wrote');
    assert.equal(sessionDeclaredBytes(bytes.subarray(0, 40)), undefined, 'the header JSON is not all there');
    assert.equal(sessionDeclaredBytes(Buffer.alloc(1 << 20)), -1);
    assert.equal(sessionDeclaredBytes(Buffer.from('LCTX')), undefined, 'a magic cut short');
    // Before, a device was read to min(LONGCTX_MAX_SESSION_BYTES, host memory): 90% of the RAM of zeros.
    const t0 = performance.now();
    assert.throws(
      () => readSessionStream('/dev/zero'),
      (e) => e instanceof InputError && /not a longctx session/.test(e.message),
    );
    assert.ok(performance.now() - t0 < 2_000);
    // Through a FIFO (a writer process on the other end): the same session, then with bytes past its end.
    const fromFifo = async (content: string, name: string) => {
      const fifo = join(dir, name);
      assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
      const writer = spawn('sh', ['-c', `cat ${content} > ${fifo}`], { stdio: 'ignore' });
      const done = new Promise((resolve) => writer.on('close', resolve));
      try {
        return readSessionStream(fifo);
      } finally {
        await Promise.race([done, new Promise((r) => setTimeout(r, 5_000))]);
        writer.kill('SIGKILL');
      }
    };
    const back = await fromFifo(file, 'fifo1');
    assert.deepEqual(back.ids, ids);
    assert.deepEqual(back.saved?.logits, saved.logits);
    assert.deepEqual(back.saved?.caches.layers[2].arrays.v.data, saved.caches.layers[2].arrays.v.data);
    writeFileSync(join(dir, 'junk'), 'junk past the end');
    await assert.rejects(
      fromFifo(`${file} ${join(dir, 'junk')}`, 'fifo2'),
      (e) => e instanceof InputError && /more bytes than its header declares/.test(e.message),
    );
  });
});
