// Saved caches of the CCA and DSA layers (attention/layers/cca-cache-state.ts, dsa-cache-state.ts): a decoder
// restored from another's caches, after a prompt that wrapped CCA's ring and left a group unfinished, generates
// the same ids with the same logits, bit for bit, on the CPU and on WebGPU (f32 and f16 storage); a CCA state
// saved on WebGPU restores on the CPU and back (DSA's too, but for int8 index keys on the CPU, which keeps f32
// ones: it replays); a state of the wrong shape, meta or spec is a ShapeError or a false (the session
// replays), and leaves the decoder empty; loadSession on WebGPU restores from the caches.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InputError, ShapeError } from '../src/errors.js';
import { loadModel, loadSession } from '../src/index.js';
import { decodeSessionFile } from '../src/api/session-file.js';
import { scheduleFromSpec } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { cpuDevice, type Device } from '../src/runtime/device.js';
import { createDecoder } from '../src/model/forward/create-decoder.js';
import type { DecoderOptions, SavedCaches } from '../src/model/forward/decoder-cpu.js';
import { ggufModel, loadGguf } from '../src/model/load/gguf.js';
import { maxAbsDiff } from '../src/reference/attention.js';
import { FIXTURE_GGUF } from './model-support.js';
import { webgpuDevice } from './support.js';
import { withTrainedIndexer } from './trained-indexer-support.js';

const model = loadGguf(FIXTURE_GGUF);
const gpu = await webgpuDevice();
after(() => gpu?.destroy());

const WINDOW = 8;
const CCA = `cca:group=4,window=${WINDOW}`;
const METHODS = [CCA, 'dsa:topk=6,local=4,sinks=2', 'dsa:topk=6,local=4,sinks=2,indexer=float'];
// 2 * window + 37 = 53 tokens: the ring (w + g - 1 = 11 rows) has wrapped four times and 53 = 13 * 4 + 1
// leaves a group of one token unfinished; DSA's middle keys (53 - 2 - 4) are more than its top-k.
const PROMPT = [1, ...Array.from({ length: 2 * WINDOW + 36 }, (_, i) => 100 + ((i * 37) % 300))];
const STEPS = 6;

async function decoder(device: Device, method: string, o: Partial<DecoderOptions> = {}) {
  return createDecoder(device, model, scheduleFromSpec(parseMethodSpec(method)), { maxTokens: 80, chunk: 16, ...o });
}

const argmax = (x: Float32Array) => x.reduce((best, v, i) => (v > x[best] ? i : best), 0);

/** Greedy ids and each step's logits after `first` (the logits of the prompt's last token). */
async function greedy(d: Awaited<ReturnType<typeof decoder>>, first: Float32Array) {
  const ids: number[] = [];
  const logits: Float32Array[] = [];
  let next = first;
  for (let i = 0; i < STEPS; i++) {
    ids.push(argmax(next));
    next = await d.forward([ids[i]]);
    logits.push(next);
  }
  return { ids, logits };
}

const targets: Array<[string, Device | null, 'f32' | 'f16']> = [
  ['cpu', cpuDevice, 'f32'],
  ['webgpu f32', gpu, 'f32'],
  ['webgpu f16', gpu?.gpu?.features.f16 ? gpu : null, 'f16'],
];

for (const [name, device, storage] of targets)
  describe(`saved CCA and DSA caches on ${name}`, { skip: device ? false : `no ${name} device` }, () => {
    for (const method of METHODS)
      it(`${method}: generating after the restore equals generating after the prefill, ids and logits`, async () => {
        const a = await decoder(device!, method, { storage });
        const b = await decoder(device!, method, { storage });
        try {
          const first = await a.forward(PROMPT);
          const saved = await a.saveCaches!();
          assert.ok(saved, 'every layer saves its cache');
          assert.equal(saved.position, PROMPT.length);
          if (method === CCA) {
            const m = saved.layers[0].meta;
            assert.deepEqual([m.cores, m.ringFirst], [13, PROMPT.length - (WINDOW + 3)]);
            assert.deepEqual(saved.layers[0].arrays.ringK.shape.slice(1), [WINDOW + 3, model.config.headDim]);
          }
          assert.equal(await b.restoreCaches!(saved), true);
          assert.equal(b.position, PROMPT.length);
          const [want, got] = [await greedy(a, first), await greedy(b, first)];
          assert.deepEqual(got.ids, want.ids);
          want.logits.forEach((l, i) => {
            assert.ok(l.every(Number.isFinite));
            assert.deepEqual(got.logits[i], l, `step ${i}`);
          });
        } finally {
          a.destroy();
          b.destroy();
        }
      });
  });

/** The saved state with layer 1's state edited. */
function forge(saved: SavedCaches, edit: (l: SavedCaches['layers'][number]) => SavedCaches['layers'][number]) {
  return { ...saved, layers: saved.layers.map((l, i) => (i === 1 ? edit(l) : l)) };
}

describe('saved CCA and DSA caches, across backends and forged', () => {
  it(
    'a CCA state saved on WebGPU (f32, f16) restores on the CPU, and a CPU one on WebGPU',
    { skip: !gpu },
    async () => {
      type Storage = 'f32' | 'f16';
      const cases: Array<[Device, Storage, Device, Storage]> = [
        [gpu!, 'f32', cpuDevice, 'f32'],
        [cpuDevice, 'f32', gpu!, 'f32'],
      ];
      if (gpu?.gpu?.features.f16) cases.push([gpu, 'f16', cpuDevice, 'f32'], [cpuDevice, 'f32', gpu, 'f16']);
      for (const [from, fromStorage, to, toStorage] of cases) {
        const name = `${from.backend} ${fromStorage} -> ${to.backend} ${toStorage}`;
        const a = await decoder(from, CCA, { storage: fromStorage });
        const firstA = await a.forward(PROMPT);
        const saved = (await a.saveCaches!())!;
        // The reference prefills on the backend that restores; the saving decoder's own continuation differs
        // from it by the two backends' (and dtypes') rounding: restoring may cost no more than twice that.
        const ref = await decoder(to, CCA, { storage: toStorage });
        const first = await ref.forward(PROMPT);
        const b = await decoder(to, CCA, { storage: toStorage });
        assert.equal(await b.restoreCaches!(saved), true, name);
        const [want, got, own] = [await greedy(ref, first), await greedy(b, first), await greedy(a, firstA)];
        assert.deepEqual(got.ids, want.ids, name);
        assert.deepEqual(own.ids, want.ids, `${name}: the backends agree on the ids`);
        want.logits.forEach((l, i) => {
          const [d, apart] = [maxAbsDiff(got.logits[i], l), maxAbsDiff(own.logits[i], l)];
          assert.ok(d <= 2 * apart + 1e-5, `${name}, step ${i}: ${d} (the backends differ by ${apart})`);
        });
        for (const x of [a, ref, b]) x.destroy();
      }
    },
  );

  for (const [device, method] of [cpuDevice, gpu].flatMap((d) => METHODS.map((m) => [d, m] as const)))
    it(
      `${method} on ${device?.backend}: a state of another shape, meta or spec is a ShapeError or false`,
      {
        skip: device ? false : 'no webgpu device',
      },
      async () => {
        const a = await decoder(device!, method);
        await a.forward(PROMPT);
        const saved = (await a.saveCaches!())!;
        a.destroy();
        const b = await decoder(device!, method);
        const names = Object.keys(saved.layers[1].arrays);
        for (const key of names) {
          const shortened = forge(saved, (l) => {
            const x = l.arrays[key];
            const shape = [...x.shape];
            shape[shape.length - 2] -= 1;
            return {
              ...l,
              arrays: { ...l.arrays, [key]: { ...x, shape, data: x.data.subarray(0, x.data.length / 2) } },
            };
          });
          await assert.rejects(b.restoreCaches!(shortened), (e: Error) => e instanceof ShapeError, key);
          assert.equal(b.position, 0);
          const missing = forge(saved, (l) => ({
            ...l,
            arrays: Object.fromEntries(names.filter((n) => n !== key).map((n) => [n, l.arrays[n]])),
          }));
          await assert.rejects(b.restoreCaches!(missing), (e: Error) => e instanceof ShapeError, `${key} missing`);
        }
        for (const key of Object.keys(saved.layers[1].meta)) {
          const meta = forge(saved, (l) => ({ ...l, meta: { ...l.meta, [key]: l.meta[key] + 1 } }));
          const outcome = await b.restoreCaches!(meta).catch((e: Error) => e);
          assert.ok(outcome === false || outcome instanceof ShapeError, `meta ${key}: ${outcome}`);
          assert.equal(b.position, 0);
        }
        const other = forge(saved, (l) => ({ ...l, spec: `${l.spec},x=1` }));
        assert.equal(await b.restoreCaches!(other), false);
        const fewer = forge(saved, (l) => ({ ...l, tokens: l.tokens - 1 }));
        assert.equal(await b.restoreCaches!(fewer), false, 'a layer of another token count');
        assert.equal(b.position, 0);
        // Still whole: the forgeries left it able to restore the true state, and to answer as it would have.
        assert.equal(await b.restoreCaches!(saved), true);
        const ref = await decoder(device!, method);
        await ref.forward(PROMPT);
        assert.deepEqual(await b.forward([9]), await ref.forward([9]));
        ref.destroy();
        b.destroy();
      },
    );
});

const DOC = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog.';
const INT8 = METHODS[1];
const FLOAT = METHODS[2];

describe('saved CCA and DSA session files', () => {
  it('a truncated file is an InputError before anything is allocated; a whole one restores from the caches', async () => {
    const cpu = await loadModel(FIXTURE_GGUF, { device: 'cpu' });
    try {
      for (const attention of METHODS) {
        const a = await cpu.createSession({ contextSize: 96, attention, chunk: 16 });
        await a.prefill(DOC);
        const bytes = await a.save();
        a.dispose();
        await assert.rejects(
          loadSession(cpu, bytes.subarray(0, bytes.length - 16)),
          (e: Error) => e instanceof InputError && /runs past the end of the file/.test(e.message),
          attention,
        );
        const b = await loadSession(cpu, bytes);
        assert.equal(b.restoredFrom, 'caches', attention);
        b.dispose();
      }
    } finally {
      cpu.dispose();
    }
  });
});

describe('saved CCA and DSA sessions on WebGPU', { skip: gpu ? false : 'no webgpu device' }, async () => {
  const cpu = await loadModel(FIXTURE_GGUF, { device: 'cpu' });
  after(() => cpu.dispose());
  for (const storage of ['f32', 'f16'] as const)
    it(
      `${storage} storage: loadSession restores from the caches and generates what the prefill did`,
      {
        skip: storage === 'f16' && !gpu?.gpu?.features.f16 ? 'no shader-f16' : false,
      },
      async () => {
        const m = await loadModel(FIXTURE_GGUF, { device: gpu!, storage });
        try {
          for (const attention of METHODS) {
            const a = await m.createSession({ contextSize: 96, attention, chunk: 16 });
            await a.prefill(DOC);
            const bytes = await a.save();
            const expected = await a.generate(' Then', { maxTokens: 10 }).complete();
            a.dispose();
            const arrays = decodeSessionFile(bytes, 'saved').header.caches!.layers[0].arrays;
            if (attention === INT8) assert.equal(arrays.indexKeys.dtype, 'i8', 'int8 index keys are saved as i8');
            const b = await loadSession(m, bytes);
            assert.equal(b.restoredFrom, 'caches', attention);
            assert.deepEqual((await b.generate(' Then', { maxTokens: 10 }).complete()).ids, expected.ids, attention);
            b.dispose();
          }
        } finally {
          m.dispose();
        }
      },
    );

  it('DSA across backends: index keys go either way (f32 quantised on the host, int8 times its scale)', async () => {
    const m = await loadModel(FIXTURE_GGUF, { device: gpu! });
    try {
      for (const [attention, from, to, want] of [
        [INT8, m, cpu, 'caches'],
        [INT8, cpu, m, 'caches'],
        [FLOAT, m, cpu, 'caches'],
        [FLOAT, cpu, m, 'caches'],
      ] as const) {
        const a = await from.createSession({ contextSize: 96, attention, chunk: 16 });
        await a.prefill(DOC);
        const bytes = await a.save();
        a.dispose();
        const ref = await to.createSession({ contextSize: 96, attention, chunk: 16 });
        await ref.prefill(DOC);
        const expected = await ref.generate(' Then', { maxTokens: 10 }).complete();
        ref.dispose();
        const b = await loadSession(to, bytes);
        const name = `${attention} ${from.device.backend} -> ${to.device.backend}`;
        assert.equal(b.restoredFrom, want, name);
        assert.deepEqual((await b.generate(' Then', { maxTokens: 10 }).complete()).ids, expected.ids, name);
        b.dispose();
      }
    } finally {
      m.dispose();
    }
  });
});

describe('saved DSA caches of a trained indexer (resident on WebGPU, on the host on the CPU)', () => {
  const trained = ggufModel(withTrainedIndexer(), 'stories260K+indexer');
  const method = METHODS[1];
  const make = (device: Device) =>
    createDecoder(device, trained, scheduleFromSpec(parseMethodSpec(method)), { maxTokens: 80, chunk: 16 });
  const pairs: Array<[Device | null, Device | null]> = [
    [cpuDevice, cpuDevice],
    [gpu, gpu],
    [gpu, cpuDevice],
    [cpuDevice, gpu],
  ];
  for (const [from, to] of pairs)
    it(
      `${from?.backend} -> ${to?.backend}: generating after the restore equals generating after the prefill`,
      {
        skip: from && to ? false : 'no webgpu device',
      },
      async () => {
        const a = await make(from!);
        await a.forward(PROMPT);
        const saved = await a.saveCaches!();
        assert.ok(saved, 'a trained indexer layer saves its cache');
        a.destroy();
        const ref = await make(to!);
        const first = await ref.forward(PROMPT);
        const b = await make(to!);
        assert.equal(await b.restoreCaches!(saved), true);
        const [want, got] = [await greedy(ref, first), await greedy(b, first)];
        assert.deepEqual(got.ids, want.ids);
        want.logits.forEach((l, i) => {
          if (from === to) assert.deepEqual(got.logits[i], l, `step ${i}`);
          else assert.ok(maxAbsDiff(got.logits[i], l) < 1e-4, `step ${i}: ${maxAbsDiff(got.logits[i], l)}`);
        });
        // A trained indexer's keys are no training-free one's.
        const plain = await decoder(to!, method);
        assert.equal(await plain.restoreCaches!(saved), false);
        plain.destroy();
        ref.destroy();
        b.destroy();
      },
    );
});
