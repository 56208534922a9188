// One upload of a model's weights per device (model/forward/gpu-weights-shared.ts): a second session of the same
// model allocates its caches and activations but not the weights again; sessions made after the first is disposed
// reuse the model's upload; two live sessions decode the same ids as one alone; disposing the model frees it all.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../src/index.js';
import { FIXTURE_GGUF } from './model-support.js';
import { webgpuDevice } from './support.js';

const probe = await webgpuDevice();
after(() => probe?.destroy());
const PROMPT = 'Once upon a time, there was a little girl named Lily.';

describe('shared GPU weights', { skip: probe ? false : 'no WebGPU device' }, () => {
  it('sessions borrow one upload; ids are unchanged; the model frees it', async () => {
    const model = await loadModel(FIXTURE_GGUF, { device: 'webgpu' });
    const gpu = model.device.gpu!;
    const before = gpu.allocatedBytes;
    const opts = { contextSize: 128, attention: 'flash', chunk: 16 };
    const a = await model.createSession(opts);
    const one = gpu.allocatedBytes - before;
    const weightBytes = (a as unknown as { decoder: { weightBytes: number } }).decoder.weightBytes;
    assert.ok(
      weightBytes > 0 && one > weightBytes,
      `a session holds the weights (${weightBytes} B) and more (${one} B)`,
    );
    const b = await model.createSession(opts);
    const two = gpu.allocatedBytes - before;
    assert.equal(two - one, one - weightBytes, 'the second session allocates all but the weights');
    const alone = (await a.generate(PROMPT, { maxTokens: 8, temperature: 0 }).complete()).ids;
    const [x, y] = await Promise.all([
      b.generate(PROMPT, { maxTokens: 8, temperature: 0 }).complete(),
      (async () => {
        a.reset();
        return a.generate(PROMPT, { maxTokens: 8, temperature: 0 }).complete();
      })(),
    ]);
    assert.deepEqual(x.ids, alone);
    assert.deepEqual(y.ids, alone);
    a.dispose();
    b.dispose();
    assert.equal(gpu.allocatedBytes - before, weightBytes, 'the model keeps its weights after its sessions');
    const c = await model.createSession(opts);
    assert.equal(gpu.allocatedBytes - before, one, 'a later session reuses the upload');
    c.dispose();
    model.dispose();
  });
});
