// The per-token counters of a long context (issue 11: "no GPU allocation per token, tested by a counter"):
// stories260K on WebGPU with a prompt of 10K tokens, then decoding. A decoded token costs one host read
// (the logits) and creates no buffer, uniform or bind group, at 10K tokens of context as at 100: nothing that
// a step does grows with the cache (CCA pools cores and wraps its ring, DSA selects over 10K index keys, a
// window layer reads its ring in place). Only counters are asserted: speed is the benchmark's.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadGguf } from '../src/model/load/gguf.js';
import { GpuDecoder } from '../src/model/forward/decoder-gpu.js';
import type { LayerSchedule } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import type { GpuContext, GpuCounters } from '../src/runtime/webgpu.js';
import { FIXTURE_GGUF } from './model-support.js';
import { assertNoNaN, webgpuDevice } from './support.js';

const device = await webgpuDevice();
after(() => device?.destroy());
const model = loadGguf(FIXTURE_GGUF);
const LONG = 10_000;
const SHORT = 100;
const STEPS = 6;
const COUNTED = 4;
const argmax = (x: Float32Array) => x.reduce((best, v, i) => (v > x[best] ? i : best), 0);
const prompt = (n: number) => [1, ...Array.from({ length: n - 1 }, (_, t) => 2 + ((t * 131) % 500))];

/** What the last COUNTED of STEPS greedy decode steps after `n` prompt tokens did, per token. */
async function perToken(gpu: GpuContext, d: GpuDecoder, n: number): Promise<Record<keyof GpuCounters, number>> {
  d.reset();
  let logits = await d.forward(prompt(n));
  let before = { ...gpu.counters };
  for (let s = 0; s < STEPS; s++) {
    if (s === STEPS - COUNTED) before = { ...gpu.counters };
    logits = await d.forward([argmax(logits)]);
  }
  assertNoNaN('logits', logits);
  const now = gpu.counters;
  const keys = Object.keys(now) as (keyof GpuCounters)[];
  return Object.fromEntries(keys.map((k) => [k, (now[k] - before[k]) / COUNTED])) as Record<keyof GpuCounters, number>;
}

// Layers 0 and 3 CCA, layer 1 DSA, the others a small window: the resident layers meet the ring layers of
// kv-layer-gpu in one model, and lavapipe prefills 10K tokens in well under a minute (flash's or five DSA
// layers' quadratic prefill would not).
const LAYERS = ['cca:group=16,window=64', 'dsa:topk=64,sinks=4,local=32', 'window:left=64', 'cca:group=16,window=64'];
const schedule: LayerSchedule = {
  description: LAYERS.join(' / '),
  methodFor: (layer) => parseMethodSpec(LAYERS[layer] ?? 'window:left=64'),
};

describe(`decoding at ${LONG} tokens of context`, { skip: device ? false : 'no WebGPU adapter' }, () => {
  const gpu = device?.gpu as GpuContext;
  it(`${schedule.description}: 1 host read and nothing created per decoded token, as at ${SHORT} tokens`, async () => {
    const d = await GpuDecoder.create(gpu, model, schedule, { maxTokens: LONG + STEPS, chunk: 1024 });
    try {
      assert.match(d.plans[0], /^cca resident/);
      assert.match(d.plans[1], /^dsa resident/);
      // Submissions are work, not allocation: as many at 10K tokens as at 100 (runtime/submit-batch.ts).
      // Queue writes are work too, and vary with the step (a CCA group closing writes its pooling uniforms).
      const { submits: shortSubmits, writes: _sw, writesSkipped: _ss, ...short } = await perToken(gpu, d, SHORT);
      const { submits: longSubmits, writes: _lw, writesSkipped: _ls, ...long } = await perToken(gpu, d, LONG);
      assert.equal(longSubmits, shortSubmits, 'submissions per decoded token');
      const want = {
        hostReads: 1,
        hostReadBytes: (model.config.vocabSize + model.config.layers) * 4, // the logits, then a non-finite flag word per layer
        buffersCreated: 0,
        uniformsCreated: 0,
        bindGroupsCreated: 0,
      };
      assert.deepEqual(short, want, `at ${SHORT} tokens`);
      assert.deepEqual(long, want, `at ${LONG} tokens`);
      // What the layers hold: DSA every key (and its index key), CCA cores and a ring, the window a ring.
      const { kvHeads, headDim } = model.config;
      const row = 2 * kvHeads * headDim * 4;
      const n = LONG + STEPS;
      assert.ok(d.cacheBytes < row * (n + (3 * n) / 16 + 4 * 96) + n * 64, `cache bytes ${d.cacheBytes}`);
    } finally {
      d.destroy();
    }
  });
});
