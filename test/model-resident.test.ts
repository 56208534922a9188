// The WebGPU decoder against its CPU twin, method by method, through the layer objects: greedy ids
// identical with f32 storage on prompts long enough for windows to wrap, cores to pool and top-k to drop
// keys; and, for every method whose layer is resident, one host read per decoded token and nothing created
// on the device per decoded token (GpuContext.counters over 50 tokens, past the switch to split-KV decoding).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadGguf } from '../src/model/load/gguf.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { GpuDecoder } from '../src/model/forward/decoder-gpu.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { scheduleFromSpec } from '../src/attention/sparse.js';
import type { Decoder } from '../src/model/forward/decoder-cpu.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { DECODE_SPLIT_MIN_KEYS } from '../src/attention/planner.js';
import { DeviceError } from '../src/errors.js';
import { BATCH_MAX_PASSES } from '../src/runtime/submit-batch.js';
import { FIXTURE_GGUF, expectedIds } from './model-support.js';
import { webgpuDevice } from './support.js';

const device = await webgpuDevice();
after(() => device?.destroy());
const model = loadGguf(FIXTURE_GGUF);
const prompt = expectedIds().slice(0, 60);
const argmax = (x: Float32Array) => x.reduce((best, v, i) => (v > x[best] ? i : best), 0);

/** Greedy ids after the prompt (fed in chunks by the decoder), `steps` tokens. */
async function greedy(d: Decoder, steps: number, each?: (step: number) => void): Promise<number[]> {
  let logits = await d.forward(prompt);
  const ids: number[] = [];
  for (let s = 0; s < steps; s++) {
    each?.(s);
    ids.push(argmax(logits));
    logits = await d.forward([ids[ids.length - 1]]);
  }
  return ids;
}

describe(
  'WebGPU decoder equals the CPU decoder, method by method',
  { skip: device ? false : 'no WebGPU adapter' },
  () => {
    const gpu = device?.gpu as GpuContext;
    const schedule = (s: string) => scheduleFromSpec(parseMethodSpec(s));

    for (const spec of [
      'window:left=16',
      'sinks:tokens=4,left=12',
      'hybrid:every=2,window=8',
      'star:block=16,anchor=8,query=5',
      'cca:group=4,window=8',
      'dsa:topk=8,sinks=2,local=8',
    ]) {
      it(`${spec}: greedy ids identical (f32, chunks of 13, 40 decoded tokens)`, async () => {
        const opts = { maxTokens: 101, chunk: 13 };
        const cpu = await greedy(new CpuDecoder(model, schedule(spec), opts), 40);
        const g = await GpuDecoder.create(gpu, model, schedule(spec), opts);
        try {
          assert.deepEqual(await greedy(g, 40), cpu);
        } finally {
          g.destroy();
        }
      });
    }

    it('a validation error inside one checked forward is still reported, as a DeviceError', async () => {
      await assert.rejects(
        gpu.checked('forward pass', async () => {
          // MAP_READ may only pair with COPY_DST: an invalid buffer, reported at the scope's end.
          gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
          await gpu.run('nothing', () => {});
        }),
        DeviceError,
      );
      assert.equal(await gpu.checked('fine', async () => 7), 7);
    });

    // Resident methods: past the first decoded tokens, a token costs one read (the logits) and no creation.
    // flash runs long enough that its counted last 50 tokens run split-KV decoding (CI time keeps the others short).
    for (const spec of [
      'flash',
      'dense',
      'window:left=16',
      'sinks:tokens=4,left=12',
      'hybrid:every=2,window=8',
      'star:block=16',
      'cca:group=4,window=8',
      'dsa:topk=8,sinks=2,local=8',
    ]) {
      const steps = spec === 'flash' ? DECODE_SPLIT_MIN_KEYS + 60 - prompt.length : 60;
      it(`${spec}: 1 host read, 1 submission and 0 buffers, uniforms, bind groups per decoded token (${steps} tokens)`, async () => {
        const g = await GpuDecoder.create(gpu, model, schedule(spec), {
          maxTokens: prompt.length + steps + 1,
          chunk: 32,
        });
        let before = { ...gpu.counters };
        try {
          await greedy(g, steps, (s) => {
            if (s === steps - 50) before = { ...gpu.counters };
          });
          const after = gpu.counters;
          assert.equal(after.hostReads - before.hostReads, 50, 'one read per token');
          // The logits and, after them, one non-finite flag word per layer (docs/HARDENING.md).
          assert.equal(
            after.hostReadBytes - before.hostReadBytes,
            50 * (model.config.vocabSize + model.config.layers) * 4,
          );
          assert.equal(after.buffersCreated - before.buffersCreated, 0, 'buffers');
          assert.equal(after.uniformsCreated - before.uniformsCreated, 0, 'uniforms');
          assert.equal(after.bindGroupsCreated - before.bindGroupsCreated, 0, 'bind groups');
          // A decoded token's passes (two per layer, the logits', its copy) go in submissions of BATCH_MAX_PASSES; DSA's
          // selection clears a state the layers share inside the batch (a clear counts as a pass), not by a queue
          // write that would submit the earlier layers' passes first.
          const submits = (after.submits - before.submits) / 50;
          const passes = (spec.startsWith('dsa') ? 3 : 2) * model.config.layers + 2;
          assert.equal(submits, Math.ceil(passes / BATCH_MAX_PASSES), 'submits per token');
          // Most uniforms hold the shapes of the token before: their rewrites are skipped (GpuContext.write).
          const [writes, skipped] = [after.writes - before.writes, after.writesSkipped - before.writesSkipped];
          assert.ok(skipped > 0 && writes < skipped, `${writes / 50} writes and ${skipped / 50} skipped per token`);
          if (spec === 'flash') assert.match(g.plans[0], /decode flash: split-kv-decode/);
        } finally {
          g.destroy();
        }
      });
    }
  },
);
