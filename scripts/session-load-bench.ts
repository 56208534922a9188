// Times loadSession of a multi-GiB session without the prefill that would make one (hours on a 2-core CPU): a
// random model with the 1B shape's attention (16 layers, 8 kv heads x 64) and tiny matrices saves a 6-token
// session, whose per-layer arrays are then grown to `--tokens` rows of filler bytes and written as a real file.
// Loading it restores every layer from the file (restoredFrom 'caches'), so the read and restore times are those
// of a 1B session of that length: 32 KiB a token in f16, 1 GiB at 32K tokens.
//   node dist/scripts/session-load-bench.js [--backend cpu|webgpu] [--storage f16] [--tokens 32768]
//        [--attention flash|dsa] [--reps 3] [--file PATH]
// Prints the file's layers read alone (twice), then each load's seconds and its timings.
import { randomFillSync } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelFromWeights } from '../src/api/model.js';
import { loadSession } from '../src/api/load-session.js';
import { decodeSessionFile, decodeSessionLayout, planSessionFile } from '../src/api/session-file.js';
import { MAX_BUFFER, withSessionFile, writeSessionStream } from '../src/api/session-stream.js';
import { prefetchCaches } from '../src/api/session-prefetch.js';
import type { LayerCacheState, SavedArray } from '../src/attention/layer.js';
import { byteTokenizer } from '../src/cli/random-text-model.js';
import { LLAMA_3_2_1B_SHAPE, randomModel } from '../src/model/load/random-model.js';

const arg = (name: string, d: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : d;
};
const device = arg('backend', 'cpu') as 'cpu' | 'webgpu';
const storage = arg('storage', 'f16') as 'f16' | 'f32';
const n = Number(arg('tokens', '32768'));
const attention = arg('attention', 'flash');
const reps = Number(arg('reps', '3'));
const file = arg('file', join(tmpdir(), `longctx-load-bench-${process.pid}.session`));

const shape = { ...LLAMA_3_2_1B_SHAPE, vocabSize: 512, hiddenSize: 64, intermediateSize: 128, heads: 8 };
const model = await modelFromWeights(
  { ...randomModel(shape, 1), tokenizer: byteTokenizer(shape.vocabSize) },
  { device, storage },
);
const contextSize = n + 64;
const s = await model.createSession({ contextSize, attention });
await s.prefill('abcde');
const small = decodeSessionFile(await s.save(), 'small');
s.dispose();
if (!small.saved) throw new Error(`${attention} on ${device} saves no caches`);
const SMALL = small.header.tokenCount; // BOS and 5: a dimension of this size is the token axis

// Filler bytes: one random MiB repeated (the load neither reads nor checks the values).
const MiB = new Uint8Array(1 << 20);
randomFillSync(MiB);
const grow = (a: SavedArray): SavedArray => {
  const dims = a.shape.map((d) => (d === SMALL ? n : d));
  const count = dims.reduce((x, y) => x * y, 1);
  const data =
    a.dtype === 'f32' ? new Float32Array(count) : a.dtype === 'f16' ? new Uint16Array(count) : new Int8Array(count);
  const bytes = new Uint8Array(data.buffer);
  for (let at = 0; at < bytes.length; at += MiB.length) bytes.set(MiB.subarray(0, bytes.length - at), at);
  return { dtype: a.dtype, shape: dims, data };
};
const layers: LayerCacheState[] = small.saved.caches.layers.map((l) => ({
  ...l,
  tokens: n,
  arrays: Object.fromEntries(Object.entries(l.arrays).map(([k, a]) => [k, grow(a)])),
}));
const { caches: _c, version: _v, ...header } = small.header;
const ids = new Array<number>(n).fill(97);
const saved = { caches: { position: n, promptTokens: n, layers }, logits: small.saved.logits };
const bytes = writeSessionStream(file, planSessionFile({ ...header, tokenCount: n }, ids, saved));
layers.length = 0; // the arrays are garbage from here: the loads hold their own

process.stdout.write(`${device} ${storage} ${attention}, ${n} tokens, file ${(bytes / 2 ** 30).toFixed(3)} GiB\n`);
try {
  // The new session alone (its caches allocated), which the restore's seconds include.
  const t1 = performance.now();
  (await model.createSession({ contextSize, attention })).dispose();
  process.stdout.write(`createSession alone ${((performance.now() - t1) / 1000).toFixed(3)} s\n`);
  // The layers read alone, as loadSession reads them but with nothing restored between them.
  for (let r = 0; r < 2; r++) {
    const t2 = performance.now();
    await withSessionFile(file, {}, async (source, fd) => {
      const layout = decodeSessionLayout(source, file);
      if (!layout.caches) throw new Error('no caches');
      const p = prefetchCaches(fd, { ...layout, caches: layout.caches }, file, MAX_BUFFER);
      p.start();
      for (const l of p.caches.layers) if (typeof l === 'function') await l();
      await p.settled();
    });
    const read = (performance.now() - t2) / 1000;
    process.stdout.write(`read alone ${read.toFixed(3)} s, ${(bytes / 2 ** 30 / read).toFixed(2)} GiB/s\n`);
  }
  for (let r = 0; r < reps; r++) {
    const timings: { readSeconds?: number; restoreSeconds?: number } = {};
    const t0 = performance.now();
    const b = await loadSession(model, file, { timings });
    const load = (performance.now() - t0) / 1000;
    const from = b.restoredFrom;
    b.dispose();
    const f = (x?: number) => (x ?? Number.NaN).toFixed(3);
    process.stdout.write(
      `load ${f(load)} s (read ${f(timings.readSeconds)}, restore ${f(timings.restoreSeconds)}) from ${from}, ` +
        `${(bytes / 2 ** 30 / load).toFixed(2)} GiB/s\n`,
    );
  }
} finally {
  rmSync(file, { force: true });
  model.dispose();
}
