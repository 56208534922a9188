// The WebGPU decoder's flash layers with the planner's tiled kernel (tc2 where the device has f16 subgroup
// matrices, the portable kernel on lavapipe), in f16 storage, at a head dim the tensor-core kernels take (64),
// over prompts longer than one 128-row tile, chunked so the cache is read in place (flash) and through a
// wrapped ring (window, sinks): the logits stay within 2x the error the portable kernel (f32 arithmetic over
// the same f16 storage) makes against the f32 CPU decoder, and the layer's plan names the kernel that ran.
// Block masks are built for the tiles of that kernel: a mask built for another kernel's tiles fails here.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { GpuDecoder } from '../src/model/forward/decoder-gpu.js';
import { uniformSchedule } from '../src/attention/sparse.js';
import { LLAMA_3_2_1B_SHAPE, randomModel } from '../src/model/load/random-model.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { assertNoNaN, webgpuDevice } from './support.js';

const device = await webgpuDevice();
const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
};

describe('WebGPU decoder, flash layers on the planner tiles (f16, head dim 64)', { skip: !device }, () => {
  const gpu = device?.gpu as GpuContext;
  const config = {
    ...LLAMA_3_2_1B_SHAPE,
    heads: 4,
    kvHeads: 2,
    headDim: 64,
    hiddenSize: 256,
    vocabSize: 97,
    intermediateSize: 96,
    layers: 2,
  };
  const m = randomModel({ ...config, ropeTheta: 10000 }, 11);
  const prompt = Array.from({ length: 301 }, (_, t) => (t * 29 + 5) % 97);
  const opts = { maxTokens: 310, chunk: 131 };
  const tensorCores = () => gpu.features.subgroupMatrixF16;

  for (const spec of ['flash', 'window:left=57', 'sinks:tokens=4,left=45']) {
    it(`prefill and 4 decode steps within 2x the portable kernel's f16 error (${spec})`, async () => {
      const cpu = new CpuDecoder(m, uniformSchedule(spec), opts);
      const sep = spec.includes(':') ? ',' : ':';
      const run = async (s: string) => {
        const g = await GpuDecoder.create(gpu, m, uniformSchedule(s), { ...opts, storage: 'f16' });
        try {
          const out = [await g.forward(prompt)];
          for (let i = 0; i < 4; i++) out.push(await g.forward([(i * 13 + 3) % 97]));
          return { out, plan: g.plans[0] };
        } finally {
          g.destroy();
        }
      };
      const expected = [await cpu.forward(prompt)];
      for (let i = 0; i < 4; i++) expected.push(await cpu.forward([(i * 13 + 3) % 97]));
      const [auto, naive] = [await run(spec), await run(`${spec}${sep}variant=portable`)];
      if (tensorCores()) assert.match(auto.plan, /prefill flash: tc2/, auto.plan);
      else assert.match(auto.plan, /prefill flash: portable/, auto.plan);
      for (let step = 0; step < expected.length; step++) {
        assertNoNaN(`logits at step ${step}`, auto.out[step]);
        const scale = Math.max(1, ...Array.from(expected[step], Math.abs));
        const [e, base] = [maxErr(expected[step], auto.out[step]), maxErr(expected[step], naive.out[step])];
        assert.ok(base < 4e-3 * scale, `portable f16 error ${base} of ${scale} at step ${step}`);
        assert.ok(e <= 2 * base + 1e-4 * scale, `step ${step}: error ${e}, portable's ${base} (scale ${scale})`);
      }
    });
  }

  it('runs a 2-token prompt and a decode step (activations smaller than one tensor-core output tile)', async () => {
    const tiny = { maxTokens: 3, chunk: 512 };
    const cpu = new CpuDecoder(m, uniformSchedule('flash'), tiny);
    const g = await GpuDecoder.create(gpu, m, uniformSchedule('flash'), { ...tiny, storage: 'f16' });
    try {
      for (const tokens of [[5, 7], [11]]) {
        const [want, got] = [await cpu.forward(tokens), await g.forward(tokens)];
        assertNoNaN('logits', got);
        const scale = Math.max(1, ...Array.from(want, Math.abs));
        assert.ok(maxErr(want, got) < 4e-3 * scale, `error ${maxErr(want, got)} of ${scale}`);
      }
    } finally {
      g.destroy();
    }
  });
});
