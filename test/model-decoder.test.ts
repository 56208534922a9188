// The CPU decoder: its pieces against float64 references, the golden greedy output of stories260K with
// dense, flash and a window wider than the text, chunked prefill against one token at a time, and the
// ring KV cache of window/sinks methods against the dense cache.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomNormal } from '../src/tensor.js';
import { matmulRowsCpu } from '../src/kernels/matmul-cpu.js';
import { rmsNormCpu } from '../src/kernels/rmsnorm-cpu.js';
import { ropeCpu } from '../src/kernels/rope-cpu.js';
import { swigluCpu } from '../src/kernels/elementwise-cpu.js';
import { matmulRef, rmsNormRef, ropeRef, swigluRef } from '../src/reference/decoder.js';
import { WeightMatrix } from '../src/weights/weight-matrix.js';
import { ropeInverseFrequencies } from '../src/model/positions/rope.js';
import { loadGguf } from '../src/model/load/gguf.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { DenseKVCache } from '../src/model/caches/kv-cache.js';
import { RingLayout } from '../src/attention/layers/ring-layout.js';
import { generate } from '../src/model/generation/generate.js';
import { uniformSchedule, hybridSchedule, scheduleFromSpec } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import type { ModelConfig, WeightDType } from '../src/model/types.js';
import { encodeTensor } from './gguf-builder.js';
import { FIXTURE_GGUF, expectedIds, expectedText } from './model-support.js';

const rand = (n: number, seed: number) => randomNormal([n], seed).data as Float32Array;
const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
};
const model = loadGguf(FIXTURE_GGUF);

describe('decoder pieces against float64', () => {
  for (const [dtype, type] of [
    ['f32', 0],
    ['f16', 1],
    ['bf16', 30],
    ['q8_0', 8],
  ] as const) {
    it(`matmul with ${dtype} weight rows (odd sizes, bias)`, () => {
      const [T, rows, cols] = [7, 97, 160];
      const w = new WeightMatrix({
        name: 'w',
        shape: [rows, cols],
        dtype: dtype as WeightDType,
        bytes: encodeTensor(rand(rows * cols, 1), type),
      });
      const exact = w.toFloat32(); // the values the encoding holds
      const x = rand(T * cols, 2);
      const bias = rand(rows, 3);
      const y = new Float32Array(T * rows);
      matmulRowsCpu(x, T, w, y, bias);
      const err = maxErr(y, matmulRef(x, T, exact, rows, cols, bias));
      assert.ok(err < 1e-4, `${dtype}: ${err}`);
    });
  }

  it('RMSNorm', () => {
    const [T, n] = [5, 1023];
    const x = rand(T * n, 4);
    const w = rand(n, 5);
    const out = new Float32Array(T * n);
    rmsNormCpu(x, T, n, w, 1e-5, out);
    assert.ok(maxErr(out, rmsNormRef(x, T, n, w, 1e-5)) < 1e-5);
  });

  for (const layout of ['interleaved', 'half'] as const) {
    for (const D of [64, 128]) {
      it(`RoPE ${layout}, head dim ${D}, positions up to 100K`, () => {
        const [T, heads] = [3, 5];
        const cfg = { headDim: D, ropeTheta: 500000, rope: { kind: 'none' } } as ModelConfig;
        for (const first of [0, 97, 100000]) {
          const x = rand(T * heads * D, first + D);
          const got = Float32Array.from(x);
          ropeCpu(got, T, heads, D, first, ropeInverseFrequencies(cfg), layout);
          assert.ok(maxErr(got, ropeRef(x, T, heads, D, first, 500000, layout)) < 2e-5, `first ${first}`);
        }
      });
    }
  }

  it('RoPE layouts differ (a test of the layout can fail)', () => {
    const cfg = { headDim: 8, ropeTheta: 10000, rope: { kind: 'none' } } as ModelConfig;
    const x = rand(8, 6);
    const a = Float32Array.from(x);
    ropeCpu(a, 1, 1, 8, 5, ropeInverseFrequencies(cfg), 'interleaved');
    assert.ok(maxErr(a, ropeRef(x, 1, 1, 8, 5, 10000, 'half')) > 1e-2);
  });

  it('SwiGLU', () => {
    const g = rand(1023, 7);
    const u = rand(1023, 8);
    const ref = swigluRef(g, u);
    swigluCpu(g, u, 1023);
    assert.ok(maxErr(g, ref) < 1e-6);
  });
});

describe('stories260K on the CPU', () => {
  // Every method that equals exact attention at 200 tokens (a window, sinks, a Star block wider than the run).
  for (const spec of [
    'dense',
    'flash',
    'window:left=4096',
    'sinks:tokens=4,left=4096',
    'hybrid:every=2,window=4096',
    'star:block=256',
    'ring',
  ]) {
    it(`greedy from BOS reproduces the golden ids and text (${spec})`, async () => {
      const ids = expectedIds();
      const decoder = new CpuDecoder(model, scheduleFromSpec(parseMethodSpec(spec)), { maxTokens: 201 });
      let streamed = '';
      const r = await generate(decoder, model.tokenizer, [1], {
        maxTokens: 200,
        temperature: 0,
        onText: (s) => (streamed += s),
      });
      assert.deepEqual([1, ...r.ids.slice(0, 199)], ids);
      // llama2.c prints the 200th token too, then a newline.
      assert.equal(r.text + '\n', expectedText());
      assert.equal(streamed, r.text);
    });
  }

  it('chunked prefill equals one token at a time', async () => {
    const prompt = expectedIds().slice(0, 90);
    const whole = new CpuDecoder(model, uniformSchedule('flash'), { maxTokens: 90, chunk: 13 });
    const single = new CpuDecoder(model, uniformSchedule('flash'), { maxTokens: 90, chunk: 1 });
    const a = await whole.forward(prompt);
    let b: Float32Array = new Float32Array();
    for (const id of prompt) b = await single.forward([id]);
    assert.ok(maxErr(a, b) < 1e-4, `${maxErr(a, b)}`);
  });

  for (const spec of ['window:left=16', 'sinks:tokens=4,left=12']) {
    it(`the ring KV cache gives the dense cache's logits (${spec}, chunks of 7, then decoding)`, async () => {
      const prompt = expectedIds().slice(0, 60);
      const ring = new CpuDecoder(model, uniformSchedule(spec), { maxTokens: 80, chunk: 7 });
      const dense = new CpuDecoder(model, uniformSchedule(spec), { maxTokens: 80, chunk: 60, ringCaches: false });
      const flash = new CpuDecoder(model, uniformSchedule('flash'), { maxTokens: 80 });
      const [a, b, f] = [await ring.forward(prompt), await dense.forward(prompt), await flash.forward(prompt)];
      assert.ok(maxErr(a, b) < 1e-4, `prefill: ${maxErr(a, b)}`);
      assert.ok(maxErr(a, f) > 1e-3, 'the window changes the logits (the test can fail)');
      for (const id of [5, 77, 300, 12]) assert.ok(maxErr(await ring.forward([id]), await dense.forward([id])) < 1e-4);
    });
  }

  it('CCA layers through their compressed cache: chunked prefill equals one token at a time', async () => {
    const spec = 'cca:group=4,window=8';
    const prompt = expectedIds().slice(0, 50);
    const chunked = new CpuDecoder(model, uniformSchedule(spec), { maxTokens: 50, chunk: 7 });
    const single = new CpuDecoder(model, uniformSchedule(spec), { maxTokens: 50, chunk: 1 });
    const flash = new CpuDecoder(model, uniformSchedule('flash'), { maxTokens: 50 });
    const a = await chunked.forward(prompt);
    let b: Float32Array = new Float32Array();
    for (const id of prompt) b = await single.forward([id]);
    assert.ok(maxErr(a, b) < 1e-4, `${maxErr(a, b)}`);
    assert.ok(maxErr(a, await flash.forward(prompt)) > 1e-3, 'CCA changes the logits');
    assert.ok(chunked.cacheBytes < flash.cacheBytes);
  });

  it('a hybrid schedule runs a method per layer', async () => {
    const d = new CpuDecoder(model, hybridSchedule(2, 8), { maxTokens: 40 });
    const r = await generate(d, model.tokenizer, [1], { maxTokens: 39, temperature: 0 });
    assert.equal(r.ids.length, 39);
  });

  it('sampling with a seed repeats; top-p 1e-9 is greedy', async () => {
    const run = async (opts: { temperature: number; topP?: number; seed?: number }) =>
      (
        await generate(new CpuDecoder(model, uniformSchedule('flash'), { maxTokens: 31 }), model.tokenizer, [1], {
          maxTokens: 30,
          ...opts,
        })
      ).ids;
    assert.deepEqual(await run({ temperature: 1, seed: 7 }), await run({ temperature: 1, seed: 7 }));
    assert.notDeepEqual(await run({ temperature: 1, seed: 7 }), await run({ temperature: 1, seed: 8 }));
    assert.deepEqual(await run({ temperature: 0.8, topP: 1e-9, seed: 3 }), expectedIds().slice(1, 31));
  });

  it('caches are preallocated and bounded', () => {
    const dense = new DenseKVCache(2, 8, 100);
    const ring = new RingLayout(4, 17);
    assert.equal(dense.bytes, 2 * 2 * 100 * 8 * 4);
    assert.equal(ring.slots, 21);
    // Positions 0-3 are sinks; 4.. cycle through rows 4..20; of a 40-token chunk only the sinks and the last 17 stay.
    assert.deepEqual(
      [0, 3, 4, 20, 21, 22, 38].map((p) => ring.slot(p)),
      [0, 3, 4, 20, 4, 5, 4],
    );
    assert.deepEqual(ring.survivors(0, 40), [
      [0, 4],
      [23, 40],
    ]);
    assert.deepEqual(ring.runs(20, 26), [
      { slot: 20, rows: 1 },
      { slot: 4, rows: 5 },
    ]);
    assert.throws(() => dense.append(new Float32Array(2 * 101 * 8), new Float32Array(2 * 101 * 8), 101));
  });
});
