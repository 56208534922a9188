// Remapped top-k positions on WebGPU (model/caches/remap-layer-gpu.ts): the resident layer against the float64
// reference of its position assignment (reference/positions-reference.ts: the top K far keys by q.k per query
// head, every query and key rotated explicitly, one softmax), over chunks split into several selection blocks
// and decoding, GQA with two KV heads, odd head dims and both RoPE layouts, outputs poisoned first; NaN in a
// key reaches exactly the rows that list it; then the WebGPU decoder against the CPU decoder (which selects and
// rotates per pair on the host), f32 and f16, and the typed refusal beside a window.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomNormal } from '../src/tensor.js';
import { SpecError } from '../src/errors.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { randomModel } from '../src/model/load/random-model.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { GpuDecoder } from '../src/model/forward/decoder-gpu.js';
import { uniformSchedule } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { GpuLayerScratch } from '../src/attention/layers/kv-layer-gpu.js';
import { RemapGpuLayer } from '../src/model/caches/remap-layer-gpu.js';
import type { PositionMethod } from '../src/model/positions/position-method.js';
import type { ModelConfig } from '../src/model/types.js';
import { assertNoNaN, webgpuDevice } from './support.js';
import { maxErr, positionsShape, referencePerKvHead } from './positions-support.js';
import { chunkBuffers, poison, readFloats, writeChunk } from './cca-dsa-layer-support.js';

const device = await webgpuDevice();

const shape = positionsShape;

/** The float64 reference per KV head (positions-support.ts). */
const reference = referencePerKvHead;

describe('remapped top-k positions on WebGPU', { skip: device ? false : 'no WebGPU adapter' }, () => {
  const gpu = device?.gpu as GpuContext;

  async function layerFor(c: ModelConfig, m: PositionMethod, N: number, chunk: number, scoreBytes: number) {
    const dims = { heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, maxTokens: N, chunk, dtype: 'f32' as const };
    const scratch = await GpuLayerScratch.create(gpu, dims);
    const weights = randomModel(c, 3).weights.layers[0];
    const setup = { index: 0, method: parseMethodSpec('flash'), dims, config: c, weights, positions: m };
    const layer = await RemapGpuLayer.create(gpu, setup, scratch, scoreBytes);
    const bufs = await chunkBuffers(gpu, dims, chunk);
    const done = () => {
      layer.destroy();
      scratch.destroy();
      Object.values(bufs).forEach((b) => gpu.release(b));
    };
    return { layer, bufs, dims, done };
  }

  it('equals the float64 reference over chunks in several blocks and decoding (GQA 3, 2 KV heads, D 10-128)', async () => {
    for (const [D, layout, window, topk, seed] of [
      [16, 'half', 7, 5, 1],
      [10, 'interleaved', 5, 9, 2],
      [16, 'interleaved', 1, 3, 3],
      [64, 'interleaved', 6, 7, 4],
      [128, 'half', 9, 4, 5],
    ] as const) {
      const c = shape({ headDim: D, ropeLayout: layout });
      const m: PositionMethod = { kind: 'remap', window, topk };
      const N = 61;
      // A score budget of 3 tokens' rows at the longest context: a 13-token chunk runs in 5 blocks.
      const rowBytes = c.heads * (N - window) * 4;
      const { layer, bufs, dims, done } = await layerFor(c, m, N, 13, 3 * rowBytes);
      assert.match(layer.plan, /per block of 3 tokens/);
      const q = randomNormal([c.heads, N, D], 10 + seed);
      const k = randomNormal([c.kvHeads, N, D], 20 + seed);
      const v = randomNormal([c.kvHeads, N, D], 30 + seed);
      let start = 0;
      try {
        for (const T of [13, 1, 9, 13, 1, 1, 12, 1, 1]) {
          if (start + T > N) break;
          writeChunk(gpu, bufs, { q, k, v }, start, start + T);
          poison(gpu, bufs.out, c.heads * dims.chunk * D);
          await layer.forward({ ...bufs, start, tokens: T });
          const got = await readFloats(gpu, bufs.out, c.heads * T * D);
          assertNoNaN(`D ${D} chunk at ${start}`, got);
          const want = reference(q, k, v, start, T, c, m);
          const err = maxErr(got, want.o);
          assert.ok(err < 2e-5, `remap W ${window} K ${topk} D ${D} ${layout} at ${start}+${T}: ${err}`);
          start += T;
        }
        assert.equal(layer.cacheBytes, 2 * c.kvHeads * start * D * 4, 'unrotated keys and values, once');
      } finally {
        done();
      }
    }
  });

  it('a NaN key makes exactly the rows that list it NaN', async () => {
    const c = shape({ heads: 3, kvHeads: 1, headDim: 16 });
    const m: PositionMethod = { kind: 'remap', window: 4, topk: 3 };
    const N = 23;
    const { layer, bufs, done } = await layerFor(c, m, N, N, 1 << 20);
    try {
      const q = randomNormal([3, N, 16], 41);
      const k = randomNormal([1, N, 16], 42);
      const v = randomNormal([1, N, 16], 43);
      k.data[5 * 16 + 3] = Number.NaN; // key 5: a NaN score ranks first, so every query that sees it far lists it
      writeChunk(gpu, bufs, { q, k, v }, 0, N);
      poison(gpu, bufs.out, 3 * N * 16);
      await layer.forward({ ...bufs, start: 0, tokens: N });
      const got = await readFloats(gpu, bufs.out, 3 * N * 16);
      for (let h = 0; h < 3; h++)
        for (let t = 0; t < N; t++) {
          const row = got.subarray((h * N + t) * 16, (h * N + t + 1) * 16);
          // Query t sees key 5 in its window (t - 5 < 4) or among its far keys (t - 4 >= 5), so from t = 5 on.
          assert.equal(row.some(Number.isNaN), t >= 5, `head ${h} token ${t}`);
        }
    } finally {
      done();
    }
  });

  async function compareDecoders(c: ModelConfig, positions: PositionMethod, storage: 'f32' | 'f16', tol: number) {
    const model = randomModel(c, 5);
    const ids = Array.from({ length: 35 }, (_, i) => (i * 37 + 11) % c.vocabSize);
    const opts = { maxTokens: 48, chunk: 9, positions };
    const flash = uniformSchedule('flash');
    const cpu = new CpuDecoder(model, flash, opts);
    const gpuDec = await GpuDecoder.create(gpu, model, flash, { ...opts, storage });
    try {
      const steps = [ids.slice(0, 30), ...ids.slice(30).map((id) => [id])];
      for (const [i, step] of steps.entries()) {
        const [a, b] = [await cpu.forward(step), await gpuDec.forward(step)];
        assertNoNaN('gpu logits', b);
        assert.ok(maxErr(a, b) < tol, `remap ${storage} step ${i}: ${maxErr(a, b)}`);
      }
      assert.match(gpuDec.plans[0], /remap:window=\d+,topk=\d+ on WebGPU: keys cached unrotated/);
    } finally {
      gpuDec.destroy();
    }
  }

  it("decoder: WebGPU logits equal the CPU decoder's (GQA 3, D 16; GQA 5, D 10 interleaved)", async () => {
    await compareDecoders(shape({}), { kind: 'remap', window: 6, topk: 5 }, 'f32', 1e-3);
    const odd = shape({ heads: 5, kvHeads: 1, headDim: 10, ropeLayout: 'interleaved' });
    await compareDecoders(odd, { kind: 'remap', window: 4, topk: 11 }, 'f32', 1e-3);
  });

  it('decoder: f16 storage stays close to the CPU decoder', { skip: !gpu?.features.f16 && 'no shader-f16' }, () =>
    compareDecoders(shape({}), { kind: 'remap', window: 6, topk: 5 }, 'f16', 5e-2),
  );

  it('refuses remap beside a window mask, typed', async () => {
    const model = randomModel(shape({}), 1);
    const make = (method: string) =>
      GpuDecoder.create(gpu, model, uniformSchedule(method), {
        maxTokens: 16,
        positions: { kind: 'remap', window: 8, topk: 4 },
      });
    await assert.rejects(make('window:left=8'), SpecError);
  });
});
