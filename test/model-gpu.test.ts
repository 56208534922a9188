// The WebGPU decoder: its kernels against float64 (outputs poisoned with NaN first), the golden greedy
// output of stories260K with dense, flash and a window wider than the text, and the CPU decoder's
// logits for a chunked prompt under window, sinks, CCA and DSA layers (stories260K and random models of
// odd shapes with GQA 3 and 4: the CCA and DSA layers are the resident ones).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomNormal } from '../src/tensor.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { MATMUL_TILE, matmulParams, matmulTiledWgsl, matvecWgsl } from '../src/kernels/matmul-wgsl.js';
import { rmsNormParams, rmsNormWgsl } from '../src/kernels/rmsnorm-wgsl.js';
import { ROPE_THREADS, ropeParams, ropeWgsl } from '../src/kernels/rope-wgsl.js';
import { grid } from '../src/kernels/elementwise-wgsl.js';
import { matmulRef, rmsNormRef, ropeRef } from '../src/reference/decoder.js';
import { loadGguf } from '../src/model/load/gguf.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { GpuDecoder } from '../src/model/forward/decoder-gpu.js';
import { generate } from '../src/model/generation/generate.js';
import { uniformSchedule } from '../src/attention/sparse.js';
import { LLAMA_3_2_1B_SHAPE, randomModel } from '../src/model/load/random-model.js';
import { assertNoNaN, webgpuDevice } from './support.js';
import { FIXTURE_GGUF, expectedIds, expectedText } from './model-support.js';

const device = await webgpuDevice();
const model = loadGguf(FIXTURE_GGUF);
const rand = (n: number, seed: number) => randomNormal([n], seed).data as Float32Array;
const argmax = (x: Float32Array) => x.reduce((best, v, j) => (v > x[best] ? j : best), 0);
const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
};

/** Runs one kernel over fresh buffers; the output (last storage buffer) starts as NaN. */
async function runKernel(
  gpu: GpuContext,
  key: string,
  wgsl: () => string,
  inputs: Float32Array[],
  outFloats: number,
  params: ArrayBuffer,
  groups: [number, number],
): Promise<Float32Array> {
  const pipe = await gpu.pipeline(key, wgsl);
  const bufs = [
    ...(await Promise.all(inputs.map((x, i) => gpu.upload(x, `in ${i}`)))),
    await gpu.upload(new Float32Array(outFloats).fill(NaN), 'out'),
  ];
  const u = gpu.uniform(params);
  await gpu.run(key, (pass) => {
    pass.setPipeline(pipe);
    pass.setBindGroup(0, gpu.bind(pipe, [...bufs, u]));
    pass.dispatchWorkgroups(...groups);
  });
  const out = new Float32Array(await gpu.read(bufs[bufs.length - 1], outFloats * 4));
  bufs.forEach((b) => gpu.release(b));
  u.destroy();
  return out;
}

describe('decoder on WebGPU', { skip: device ? false : 'no WebGPU adapter' }, () => {
  const gpu = device?.gpu as GpuContext;

  for (const T of [1, 7, 33, 70]) {
    it(`matmul kernel (${T === 1 ? 'matrix-vector' : 'tiled'}), T ${T}, 97 x 161 with bias`, async () => {
      const [rows, cols] = [97, 161];
      const [x, w, b] = [rand(T * cols, T), rand(rows * cols, 2), rand(rows, 3)];
      const groups: [number, number] =
        T === 1 ? [rows, 1] : [Math.ceil(rows / MATMUL_TILE), Math.ceil(T / MATMUL_TILE)];
      const y = await runKernel(
        gpu,
        T === 1 ? 'model-matvec' : 'model-matmul',
        T === 1 ? matvecWgsl : matmulTiledWgsl,
        [x, w, b],
        T * rows,
        matmulParams(T, rows, cols, true),
        groups,
      );
      assertNoNaN('y', y);
      assert.ok(maxErr(y, matmulRef(x, T, w, rows, cols, b)) < 1e-4);
    });
  }

  // 1023 and 97 leave lanes of the one unrolled step idle; 4099 takes a second step (1024 a step).
  for (const [T, n] of [
    [5, 1023],
    [3, 4099],
    [2, 97],
  ])
    it(`RMSNorm kernel, ${T} rows of ${n}`, async () => {
      const [x, w] = [rand(T * n, 4), rand(n, 5)];
      const out = await runKernel(gpu, 'model-rmsnorm', rmsNormWgsl, [x, w], T * n, rmsNormParams(T, n, 1e-5), [T, 1]);
      assertNoNaN('out', out);
      assert.ok(maxErr(out, rmsNormRef(x, T, n, w, 1e-5)) < 1e-5);
    });

  for (const layout of ['interleaved', 'half'] as const) {
    it(`RoPE kernel, ${layout}, head dim 64, into head-major rows`, async () => {
      const [T, heads, D, first] = [3, 5, 64, 4097];
      const x = rand(T * heads * D, 9);
      const half = D / 2;
      const table = new Float32Array(2 * T * half);
      for (let t = 0; t < T; t++)
        for (let i = 0; i < half; i++) {
          const a = (first + t) * Math.pow(10000, (-2 * i) / D);
          table[t * half + i] = Math.cos(a);
          table[(T + t) * half + i] = Math.sin(a);
        }
      const out = await runKernel(
        gpu,
        'model-rope',
        ropeWgsl,
        [x, table],
        heads * T * D,
        ropeParams({
          tokens: T,
          heads,
          headDim: D,
          stride: T,
          offset: 0,
          rotate: true,
          interleaved: layout === 'interleaved',
        }),
        grid((T * heads * D) / 2, ROPE_THREADS),
      );
      assertNoNaN('out', out);
      const ref = ropeRef(x, T, heads, D, first, 10000, layout);
      const tokenMajor = new Float32Array(out.length);
      for (let h = 0; h < heads; h++)
        for (let t = 0; t < T; t++)
          tokenMajor.set(out.subarray((h * T + t) * D, (h * T + t + 1) * D), (t * heads + h) * D);
      assert.ok(maxErr(tokenMajor, ref) < 2e-5);
    });
  }

  for (const spec of ['dense', 'flash', 'window:left=4096', 'sinks:tokens=4,left=4096', 'star:block=256', 'ring']) {
    it(`stories260K greedy from BOS reproduces the golden ids and text (${spec})`, async () => {
      const decoder = await GpuDecoder.create(gpu, model, uniformSchedule(spec), { maxTokens: 201 });
      try {
        const r = await generate(decoder, model.tokenizer, [1], { maxTokens: 200, temperature: 0 });
        assert.deepEqual([1, ...r.ids.slice(0, 199)], expectedIds());
        assert.equal(r.text + '\n', expectedText());
      } finally {
        decoder.destroy();
      }
    });
  }

  for (const spec of ['window:left=16', 'sinks:tokens=4,left=12', 'cca:group=4,window=8']) {
    it(`chunked prompt logits equal the CPU decoder's (${spec}, chunks of 13)`, async () => {
      const prompt = expectedIds().slice(0, 60);
      const cpu = new CpuDecoder(model, uniformSchedule(spec), { maxTokens: 67 });
      const g = await GpuDecoder.create(gpu, model, uniformSchedule(spec), { maxTokens: 67, chunk: 13 });
      try {
        const [a, b] = [await cpu.forward(prompt), await g.forward(prompt)];
        assertNoNaN('logits', b);
        assert.ok(maxErr(a, b) < 1e-3, `prefill ${maxErr(a, b)}`);
        for (const id of [42, 7, 300, 5, 99]) {
          const [c, d] = [await cpu.forward([id]), await g.forward([id])];
          assert.ok(maxErr(c, d) < 1e-3, `decode ${maxErr(c, d)}`);
        }
        // The GPU keeps only the ring (sinks + window + 1 rows per head), not all 67 positions.
        assert.ok(g.cacheBytes <= cpu.cacheBytes && g.cacheBytes < 2 * 5 * 4 * 67 * 8 * 4, `${g.cacheBytes}`);
        if (spec.startsWith('cca')) assert.match(g.plans[0], /^cca resident/);
      } finally {
        g.destroy();
      }
    });
  }

  // Random models of odd shapes (GQA 3 and 4, head dims 24 and 40, 97-token prompts in chunks of 17 with a
  // last partial chunk of 12): prefill logits and 12 decode steps equal the CPU decoder's; greedy ids identical.
  const shapes = [
    { heads: 6, kvHeads: 2, headDim: 24, hiddenSize: 72 },
    { heads: 8, kvHeads: 2, headDim: 40, hiddenSize: 88 },
  ];
  const methods = ['cca:group=5,window=11', 'dsa:topk=9,sinks=3,local=7', 'dsa:topk=9,sinks=3,local=7,indexer=float'];
  for (const [i, shape] of shapes.entries())
    for (const spec of methods) {
      const name = `${spec}, GQA ${shape.heads}:${shape.kvHeads}, head dim ${shape.headDim}`;
      it(`random model: WebGPU logits and greedy ids equal the CPU decoder's (${name})`, async () => {
        const config = { ...LLAMA_3_2_1B_SHAPE, ...shape, vocabSize: 101, intermediateSize: 56, layers: 2 };
        const m = randomModel({ ...config, ropeTheta: 10000 }, 3 + i);
        const prompt = Array.from({ length: 97 }, (_, t) => (t * 37 + 11) % 101);
        const opts = { maxTokens: 110, chunk: 17 };
        const cpu = new CpuDecoder(m, uniformSchedule(spec), opts);
        const g = await GpuDecoder.create(gpu, m, uniformSchedule(spec), opts);
        try {
          assert.match(g.plans[0], new RegExp(`^${spec.slice(0, 3)} resident`));
          let [a, b] = [await cpu.forward(prompt), await g.forward(prompt)];
          const scale = Math.max(1, ...Array.from(a, Math.abs));
          for (let step = 0; ; step++) {
            assertNoNaN('logits', b);
            assert.ok(maxErr(a, b) < 1e-4 * scale, `step ${step}: ${maxErr(a, b)} of ${scale}`);
            const [ca, gb] = [argmax(a), argmax(b)];
            assert.equal(gb, ca, `greedy id at step ${step}`);
            if (step === 12) break;
            [a, b] = [await cpu.forward([ca]), await g.forward([gb])];
          }
        } finally {
          g.destroy();
        }
      });
    }

  for (const spec of [
    'flash',
    'sinks:tokens=4,left=12',
    'cca:group=4,window=8',
    'dsa:topk=256',
    'dsa:topk=8,sinks=2,local=8',
  ]) {
    it(`f16 storage (weights, Q, KV cache) stays within f16 error of the f32 CPU decoder (${spec})`, async () => {
      const prompt = expectedIds().slice(0, 60);
      const cpu = new CpuDecoder(model, uniformSchedule(spec), { maxTokens: 64 });
      const g = await GpuDecoder.create(gpu, model, uniformSchedule(spec), {
        maxTokens: 64,
        chunk: 13,
        storage: 'f16',
      });
      try {
        const [a, b] = [await cpu.forward(prompt), await g.forward(prompt)];
        assertNoNaN('logits', b);
        const scale = Math.max(...Array.from(a, Math.abs));
        const err = maxErr(a, b);
        // f16 keeps 11 significant bits: a relative error of a few 2^-11 after 5 layers; above 1e-5 shows f16 ran.
        assert.ok(err < 4e-3 * scale && err > 1e-5, `error ${err} of max logit ${scale}`);
      } finally {
        g.destroy();
      }
    });
  }
});
