// Saved caches of the plain-KV layers (attention/layers/kv-cache-state.ts through the decoder's saveCaches and
// restoreCaches): a decoder restored from another's caches gives bit-identical next logits, on the CPU and on
// WebGPU (f32 and f16 storage), for every plain-KV method, including rings that have wrapped; a state restores
// into a run of another size (dense -> ring layout) and across backends; a layer that needs rows the state lacks
// says so (the session then replays), and a state of the wrong shape is a ShapeError that leaves the decoder empty.
// The positioned layers (CPU, and remap on WebGPU) save their unrotated keys the same way, across backends too.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ShapeError } from '../src/errors.js';
import { scheduleFromSpec } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { parsePositionSpec } from '../src/model/positions/position-method.js';
import { cpuDevice, type Device } from '../src/runtime/device.js';
import { createDecoder } from '../src/model/forward/create-decoder.js';
import type { DecoderOptions } from '../src/model/forward/decoder-cpu.js';
import { loadGguf } from '../src/model/load/gguf.js';
import { maxAbsDiff } from '../src/reference/attention.js';
import { FIXTURE_GGUF } from './model-support.js';
import { webgpuDevice } from './support.js';

const model = loadGguf(FIXTURE_GGUF);
const gpu = await webgpuDevice();
after(() => gpu?.destroy());

const METHODS = ['flash', 'dense', 'window:left=5', 'sinks:tokens=2,left=5', 'star:block=8', 'hybrid:every=2,window=4'];
// 23 token ids: they wrap every ring above (window 5 keeps 6 rows).
const PROMPT = [1, ...Array.from({ length: 22 }, (_, i) => 100 + ((i * 37) % 300))];

async function decoder(device: Device, method: string, o: Partial<DecoderOptions> = {}) {
  return createDecoder(device, model, scheduleFromSpec(parseMethodSpec(method)), { maxTokens: 64, chunk: 7, ...o });
}

const targets: Array<[string, Device | null, 'f32' | 'f16']> = [
  ['cpu', cpuDevice, 'f32'],
  ['webgpu f32', gpu, 'f32'],
  ['webgpu f16', gpu?.gpu?.features.f16 ? gpu : null, 'f16'],
];

for (const [name, device, storage] of targets)
  describe(`saved KV caches on ${name}`, { skip: device ? false : `no ${name} device` }, () => {
    for (const method of METHODS)
      it(`${method}: the restored decoder's next logits equal the original's, bit for bit`, async () => {
        const a = await decoder(device!, method, { storage });
        const b = await decoder(device!, method, { storage });
        try {
          await a.forward(PROMPT);
          const saved = await a.saveCaches!();
          assert.ok(saved, 'every layer of a plain-KV method saves its cache');
          assert.equal(saved.position, PROMPT.length);
          assert.equal(await b.restoreCaches!(saved), true);
          assert.equal(b.position, PROMPT.length);
          for (const next of [7, 300, 42]) {
            const [la, lb] = [await a.forward([next]), await b.forward([next])];
            assert.ok(la.every(Number.isFinite));
            assert.deepEqual(lb, la);
          }
        } finally {
          a.destroy();
          b.destroy();
        }
      });
  });

describe('saved KV caches across runs', () => {
  it('a dense window cache (a short run) restores into the ring of a long run, and across backends', async () => {
    const short = await decoder(cpuDevice, 'window:left=5', { maxTokens: 6 });
    await short.forward(PROMPT.slice(0, 6));
    const saved = (await short.saveCaches!())!;
    short.destroy();
    const reference = await decoder(cpuDevice, 'window:left=5');
    await reference.forward(PROMPT.slice(0, 6));
    const want = await reference.forward([9]);
    reference.destroy();
    for (const device of [cpuDevice, gpu].filter((d): d is Device => d !== null)) {
      const long = await decoder(device, 'window:left=5');
      assert.equal(await long.restoreCaches!(saved), true);
      const got = await long.forward([9]);
      assert.ok(maxAbsDiff(got, want) < 1e-4, `${device.name}: ${maxAbsDiff(got, want)}`);
      long.destroy();
    }
  });

  it('a wrapped ring does not restore into a layer that keeps every row; a wrong shape is a ShapeError', async () => {
    const a = await decoder(cpuDevice, 'window:left=5');
    await a.forward(PROMPT);
    const saved = (await a.saveCaches!())!;
    a.destroy();
    const keepAll = await decoder(cpuDevice, 'window:left=5', { ringCaches: false });
    assert.equal(await keepAll.restoreCaches!(saved), false);
    assert.equal(keepAll.position, 0);
    keepAll.destroy();
    const b = await decoder(cpuDevice, 'window:left=5');
    const k = saved.layers[1].arrays.k;
    const broken = { ...saved.layers[1], arrays: { ...saved.layers[1].arrays, k: { ...k, shape: [k.shape[0], 3] } } };
    const forged = { ...saved, layers: saved.layers.map((l, i) => (i === 1 ? broken : l)) };
    await assert.rejects(b.restoreCaches!(forged), (e: Error) => e instanceof ShapeError && /needs k/.test(e.message));
    assert.equal(b.position, 0);
    b.destroy();
  });
});

describe('saved positioned caches (keys kept unrotated)', () => {
  const positioned = (device: Device, positions: string) =>
    decoder(device, 'flash', { positions: parsePositionSpec(positions) });
  const cases: Array<[string, Device | null, Device | null]> = [
    ['remap:window=6,topk=4', cpuDevice, cpuDevice],
    ['self-extend:window=6,group=3', cpuDevice, cpuDevice],
    ['remap:window=6,topk=4', gpu, gpu],
    ['remap:window=6,topk=4', gpu, cpuDevice],
    ['remap:window=6,topk=4', cpuDevice, gpu],
  ];
  for (const [positions, from, to] of cases)
    it(
      `${positions}: ${from?.backend} -> ${to?.backend}: the restored decoder's next logits equal a prefill's`,
      {
        skip: from && to ? false : 'no webgpu device',
      },
      async () => {
        const a = await positioned(from!, positions);
        await a.forward(PROMPT);
        const saved = (await a.saveCaches!())!;
        assert.ok(saved, 'a positioned layer saves its cache');
        a.destroy();
        const ref = await positioned(to!, positions);
        await ref.forward(PROMPT);
        const b = await positioned(to!, positions);
        assert.equal(await b.restoreCaches!(saved), true);
        for (const next of [7, 300]) {
          const [want, got] = [await ref.forward([next]), await b.forward([next])];
          if (from === to) assert.deepEqual(got, want);
          else assert.ok(maxAbsDiff(got, want) < 1e-4, `${maxAbsDiff(got, want)}`);
        }
        // Unrotated keys do not restore into a plain layer (its keys are rotated), nor under other positions.
        for (const other of [await decoder(to!, 'flash'), await positioned(to!, 'remap:window=6,topk=3')]) {
          assert.equal(await other.restoreCaches!(saved), false);
          other.destroy();
        }
        ref.destroy();
        b.destroy();
      },
    );
});
