// The NaN policy in the decoders (docs/HARDENING.md): a layer whose output (the residual stream) turns
// non-finite stops the forward with a NonFiniteError naming it. The CPU checks each layer on the host; WebGPU
// raises a per-layer flag on the GPU that comes back with the logits, so decoding keeps one host read per
// token. The poisoned weights hold a NaN (the loader refuses them; the decoders are given them directly), since
// WGSL leaves an overflow indeterminate: lavapipe keeps a sum of 3e38 weights at 3e38 where the CPU gets -Inf.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { uniformSchedule } from '../src/attention/sparse.js';
import { NonFiniteError } from '../src/errors.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { GpuDecoder } from '../src/model/forward/decoder-gpu.js';
import { loadGguf } from '../src/model/load/gguf.js';
import type { LoadedModel } from '../src/model/types.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import type { WeightTensor } from '../src/weights/weight-tensor.js';
import { webgpuDevice } from './support.js';
import { FIXTURE_GGUF } from './model-support.js';

const device = await webgpuDevice();
after(() => device?.destroy());
const clean = loadGguf(FIXTURE_GGUF);

/** A copy of the f32 tensor t with `rows` (or all) of its rows set to `value`. */
function filled(t: WeightTensor, value: number, rows?: number[]): WeightTensor {
  const data = new Float32Array(new Uint8Array(t.bytes).buffer); // a copy: the file's Buffer.slice() would share it
  const width = t.shape[t.shape.length - 1];
  for (const r of rows ?? Array.from({ length: t.shape[0] }, (_, i) => i)) data.fill(value, r * width, (r + 1) * width);
  return { ...t, bytes: new Uint8Array(data.buffer) };
}

/** Row 0 of layer `layer`'s down projection is NaN: that layer's output is the first non-finite one. */
function poisonLayer(layer: number): LoadedModel {
  const layers = clean.weights.layers.map((l, i) =>
    i === layer ? { ...l, wDown: filled(l.wDown, Number.NaN, [0]) } : l,
  );
  return { ...clean, weights: { ...clean.weights, layers } };
}

/** Token BAD_TOKEN's embedding row is NaN: only prompts holding that token go non-finite, from layer 0 on (the
 * output projection is tied to the embedding, so that token's logit is not compared). */
const BAD_TOKEN = 7;
const poisonToken = (): LoadedModel => ({
  ...clean,
  weights: { ...clean.weights, tokenEmbedding: filled(clean.weights.tokenEmbedding, Number.NaN, [BAD_TOKEN]) },
});

const spec = 'flash';
const opts = { maxTokens: 32 };
const prompt = [1, 50, 60, 70, 80, 90];

async function firstBadLayer(forward: () => Promise<Float32Array>): Promise<string> {
  try {
    await forward();
  } catch (e) {
    assert.ok(e instanceof NonFiniteError, `a NonFiniteError, got ${(e as Error).stack}`);
    assert.match(e.message, /^the output of layer \d+ turned non-finite .*at positions from \d+/);
    return e.where;
  }
  return 'none';
}

describe('a layer that turns non-finite is named (CPU, and WebGPU through the flags read with the logits)', () => {
  // Layers 1 and 3 are checked inside the next layer's attention norm on WebGPU, the last (4) by its own kernel.
  for (const layer of [1, 3, 4]) {
    test(`cpu: NaN in the down projection of layer ${layer}`, async () => {
      const cpu = new CpuDecoder(poisonLayer(layer), uniformSchedule(spec), opts);
      assert.equal(await firstBadLayer(() => cpu.forward(prompt)), `layer ${layer}`);
    });
    test(
      `webgpu: NaN in the down projection of layer ${layer}`,
      { skip: device ? false : 'no WebGPU adapter' },
      async () => {
        const gpu = device!.gpu as GpuContext;
        const g = await GpuDecoder.create(gpu, poisonLayer(layer), uniformSchedule(spec), opts);
        try {
          const reads = gpu.counters.hostReads;
          assert.equal(await firstBadLayer(() => g.forward(prompt)), `layer ${layer}`);
          assert.equal(gpu.counters.hostReads - reads, 1, 'the flags came with the one read of the logits');
        } finally {
          g.destroy();
        }
      },
    );
  }

  test(
    'webgpu: the flags clear between forwards; a clean run keeps one read per token',
    { skip: device ? false : 'no WebGPU adapter' },
    async () => {
      const gpu = device!.gpu as GpuContext;
      const poisoned = poisonToken();
      const cpu = new CpuDecoder(poisoned, uniformSchedule(spec), opts);
      const cpuLayer = await firstBadLayer(() => cpu.forward([1, BAD_TOKEN]));
      assert.equal(cpuLayer, 'layer 0');
      const g = await GpuDecoder.create(gpu, poisoned, uniformSchedule(spec), opts);
      const reference = new CpuDecoder(clean, uniformSchedule(spec), opts);
      try {
        assert.equal(await firstBadLayer(() => g.forward([1, BAD_TOKEN])), cpuLayer, 'the same layer as the CPU');
        g.reset();
        const reads = gpu.counters.hostReads;
        let logits = await g.forward(prompt);
        let want = await reference.forward(prompt);
        for (let step = 0; step < 4; step++) {
          assert.equal(logits.length, clean.config.vocabSize);
          let err = 0;
          for (let i = 0; i < want.length; i++) if (i !== BAD_TOKEN) err = Math.max(err, Math.abs(logits[i] - want[i]));
          assert.ok(err < 1e-3, `step ${step}: logits off the CPU decoder's by ${err}`);
          [logits, want] = [await g.forward([60 + step]), await reference.forward([60 + step])];
        }
        assert.equal(gpu.counters.hostReads - reads, 5, 'one host read per forward');
      } finally {
        g.destroy();
      }
    },
  );
});
