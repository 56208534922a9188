// Star and Ring layers in the model runner (one process): Star's visible sets come from one block mask
// fixed by the prompt (tested against the Star reference in sparse.test.ts); here the runner must apply
// it the same way whatever the chunking, on CPU and WebGPU, and decoding must see everything.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadGguf } from '../src/model/load/gguf.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { GpuDecoder } from '../src/model/forward/decoder-gpu.js';
import { uniformSchedule } from '../src/attention/sparse.js';
import { UnsupportedError, ShapeError } from '../src/errors.js';
import { FIXTURE_GGUF, expectedIds } from './model-support.js';
import { webgpuDevice } from './support.js';

const device = await webgpuDevice();
after(() => device?.destroy());
const model = loadGguf(FIXTURE_GGUF);
const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
};
const prompt = expectedIds().slice(0, 61);
const STAR = 'star:block=16,anchor=8,query=5';

describe('star and ring layers in the model runner', () => {
  it('star: chunked prefill equals one pass, decoding sees all, and the blocks change the logits', async () => {
    const chunked = new CpuDecoder(model, uniformSchedule(STAR), { maxTokens: 70, chunk: 7 });
    const whole = new CpuDecoder(model, uniformSchedule(STAR), { maxTokens: 70, chunk: 61 });
    const flash = new CpuDecoder(model, uniformSchedule('flash'), { maxTokens: 70 });
    const [a, b, f] = [await chunked.forward(prompt), await whole.forward(prompt), await flash.forward(prompt)];
    assert.ok(maxErr(a, b) < 1e-4, `prefill ${maxErr(a, b)}`);
    assert.ok(maxErr(a, f) > 1e-3, 'Star differs from causal attention (the test can fail)');
    for (const id of [5, 77, 300]) assert.ok(maxErr(await chunked.forward([id]), await whole.forward([id])) < 1e-4);
  });

  it('star with one block over the whole prompt is causal attention; ring is exact', async () => {
    const flash = new CpuDecoder(model, uniformSchedule('flash'), { maxTokens: 70 });
    const f = await flash.forward(prompt);
    for (const spec of ['star:block=64', 'ring']) {
      const d = new CpuDecoder(model, uniformSchedule(spec), { maxTokens: 70, chunk: 9 });
      assert.ok(maxErr(await d.forward(prompt), f) < 1e-4, spec);
    }
  });

  it('errors: hosts > 1 in a model, query longer than the prompt', async () => {
    assert.throws(
      () => new CpuDecoder(model, uniformSchedule('star:block=16,hosts=2'), { maxTokens: 70 }),
      UnsupportedError,
    );
    assert.throws(() => new CpuDecoder(model, uniformSchedule('ring:hosts=4'), { maxTokens: 70 }), UnsupportedError);
    const d = new CpuDecoder(model, uniformSchedule('star:block=16,query=9'), { maxTokens: 70 });
    await assert.rejects(d.forward(prompt.slice(0, 5)), ShapeError);
  });

  it('WebGPU runs star layers like the CPU', { skip: device ? false : 'no WebGPU adapter' }, async () => {
    const g = await GpuDecoder.create(device!.gpu!, model, uniformSchedule(STAR), { maxTokens: 70, chunk: 13 });
    try {
      const cpu = new CpuDecoder(model, uniformSchedule(STAR), { maxTokens: 70, chunk: 7 });
      const [a, b] = [await g.forward(prompt), await cpu.forward(prompt)];
      assert.ok(maxErr(a, b) < 1e-3, `prefill ${maxErr(a, b)}`);
      for (const id of [5, 77]) assert.ok(maxErr(await g.forward([id]), await cpu.forward([id])) < 1e-3);
    } finally {
      g.destroy();
    }
  });
});
