// Positional methods on WebGPU (model/caches/positioned-layer-gpu.ts): the resident Self-Extend layer against the
// float64 reference of its position assignment (reference/positions-reference.ts: every query and key rotated
// explicitly, one softmax), outputs poisoned first; then the WebGPU decoder against the CPU decoder (whose
// positioned layer rotates per pair, a different algorithm) on random models with GQA, odd head dims and both
// RoPE layouts, alone and beside window and sinks masks, chunked prefill then decoding; and on passkey-2k,
// logits within tolerance and the same greedy ids. Refusals are typed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomNormal } from '../src/tensor.js';
import { SpecError } from '../src/errors.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { randomModel } from '../src/model/load/random-model.js';
import { loadModel } from '../src/model/load/load.js';
import { CpuDecoder, type Decoder } from '../src/model/forward/decoder-cpu.js';
import { GpuDecoder } from '../src/model/forward/decoder-gpu.js';
import { uniformSchedule } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { GpuLayerScratch } from '../src/attention/layers/kv-layer-gpu.js';
import { PositionedGpuLayer } from '../src/model/caches/positioned-layer-gpu.js';
import { ropeInverseFrequencies } from '../src/model/positions/rope.js';
import type { PositionMethod } from '../src/model/positions/position-method.js';
import { referencePositionedAttention } from '../src/reference/positions-reference.js';
import type { ModelConfig } from '../src/model/types.js';
import { assertNoNaN, webgpuDevice } from './support.js';
import { maxErr, positionsShape } from './positions-support.js';
import { chunkBuffers, poison, readFloats, tokens, writeChunk } from './cca-dsa-layer-support.js';

const device = await webgpuDevice();
const PASSKEY_DIR = fileURLToPath(new URL('../../test/fixtures/passkey-2k/', import.meta.url));
const argmax = (x: Float32Array) => x.reduce((best, v, i) => (v > x[best] ? i : best), 0);

const shape = positionsShape;

describe('positional methods on WebGPU', { skip: device ? false : 'no WebGPU adapter' }, () => {
  const gpu = device?.gpu as GpuContext;

  it('Self-Extend and dual-chunk layers: equal the float64 reference over chunks and decoding (GQA 3, D 10, 16)', async () => {
    for (const [D, layout, m] of [
      [16, 'half', { kind: 'self-extend', window: 7, group: 3 }],
      [10, 'interleaved', { kind: 'self-extend', window: 7, group: 3 }],
      [16, 'interleaved', { kind: 'chunked', chunk: 10, local: 3 }],
      [10, 'half', { kind: 'chunked', chunk: 8, local: 5 }],
    ] as const) {
      const c = shape({ heads: 3, kvHeads: 1, headDim: D, ropeLayout: layout });
      const N = 53;
      const dims = { heads: 3, kvHeads: 1, headDim: D, maxTokens: N, chunk: 13, dtype: 'f32' as const };
      const scratch = await GpuLayerScratch.create(gpu, dims);
      const weights = randomModel(c, 3).weights.layers[0];
      const layer = await PositionedGpuLayer.create(
        gpu,
        { index: 0, method: parseMethodSpec('flash'), dims, config: c, weights, positions: m },
        scratch,
      );
      const q = randomNormal([3, N, D], 11);
      const k = randomNormal([1, N, D], 12);
      const v = randomNormal([1, N, D], 13);
      const bufs = await chunkBuffers(gpu, dims, dims.chunk);
      const invFreq = ropeInverseFrequencies(c);
      let start = 0;
      for (const T of [13, 1, 9, 13, 1, 1, 12, 1]) {
        if (start + T > N) break;
        writeChunk(gpu, bufs, { q, k, v }, start, start + T);
        poison(gpu, bufs.out, 3 * dims.chunk * D);
        await layer.forward({ ...bufs, start, tokens: T });
        const got = await readFloats(gpu, bufs.out, 3 * T * D);
        assertNoNaN(`D ${D} chunk at ${start}`, got);
        const want = referencePositionedAttention(
          {
            q: tokens(q, start, start + T).data,
            k: k.data.subarray(0, (start + T) * D),
            v: v.data.subarray(0, (start + T) * D),
            ...{ heads: 3, T, D, start, invFreq, attentionFactor: 1, layout },
          },
          m,
        );
        assert.ok(maxErr(got, want.o) < 2e-5, `${m.kind} D ${D} at ${start}+${T}: ${maxErr(got, want.o)}`);
        start += T;
      }
      const rotations = m.kind === 'self-extend' ? 2 : 1;
      assert.equal(layer.cacheBytes, (rotations + 1) * start * D * 4, 'the key rotations and the values');
      layer.destroy();
      scratch.destroy();
      Object.values(bufs).forEach((b) => gpu.release(b));
    }
  });

  /** Prefill in chunks then decode: the GPU decoder's logits against the CPU decoder's at every step. */
  async function compareDecoders(
    c: ModelConfig,
    method: string,
    positions: PositionMethod,
    storage: 'f32' | 'f16',
    tol: number,
  ): Promise<void> {
    const model = randomModel(c, 5);
    const ids = Array.from({ length: 35 }, (_, i) => (i * 37 + 11) % c.vocabSize);
    const opts = { maxTokens: 48, chunk: 9, positions };
    const cpu = new CpuDecoder(model, uniformSchedule(method), opts);
    const gpuDec = await GpuDecoder.create(gpu, model, uniformSchedule(method), { ...opts, storage });
    try {
      const steps = [ids.slice(0, 30), ...ids.slice(30).map((id) => [id])];
      for (const [i, step] of steps.entries()) {
        const [a, b] = [await cpu.forward(step), await gpuDec.forward(step)];
        assertNoNaN('gpu logits', b);
        assert.ok(maxErr(a, b) < tol, `${method} ${storage} step ${i}: ${maxErr(a, b)}`);
      }
      assert.match(gpuDec.plans[0], new RegExp(`${positions.kind}.*${positions.kind === 'chunked' ? 1 : 2} rotation`));
    } finally {
      gpuDec.destroy();
    }
  }

  for (const [label, c] of [
    ['GQA 3, D 16, half', shape({})],
    ['GQA 5, D 10, interleaved', shape({ heads: 5, kvHeads: 1, headDim: 10, ropeLayout: 'interleaved' })],
  ] as const)
    it(`decoder: WebGPU logits equal the CPU decoder's under Self-Extend and dual-chunk (${label})`, async () => {
      const se: PositionMethod = { kind: 'self-extend', window: 6, group: 4 };
      await compareDecoders(c, 'flash', se, 'f32', 1e-3);
      await compareDecoders(c, 'window:left=17', se, 'f32', 1e-3);
      await compareDecoders(c, 'sinks:tokens=3,left=12', se, 'f32', 1e-3);
      await compareDecoders(c, 'flash', { kind: 'chunked', chunk: 7, local: 2 }, 'f32', 1e-3);
      await compareDecoders(c, 'window:left=15', { kind: 'chunked', chunk: 6, local: 3 }, 'f32', 1e-3);
    });

  it('decoder: f16 storage stays close to the CPU decoder', { skip: !gpu?.features.f16 && 'no shader-f16' }, () =>
    compareDecoders(shape({}), 'flash', { kind: 'self-extend', window: 6, group: 4 }, 'f16', 5e-2),
  );

  it('passkey-2k: logits and greedy ids equal the CPU decoder under Self-Extend', async () => {
    const model = loadModel(PASSKEY_DIR);
    const prompt: string = JSON.parse(readFileSync(`${PASSKEY_DIR}cases-2k.jsonl`, 'utf8').split('\n')[0]).prompt;
    const ids = model.tokenizer.encode(prompt).slice(-300);
    const positions: PositionMethod = { kind: 'self-extend', window: 96, group: 4 };
    const opts = { maxTokens: 320, chunk: 128, positions };
    const flash = uniformSchedule('flash');
    const cpu = new CpuDecoder(model, flash, opts);
    const gpuDec = await GpuDecoder.create(gpu, model, flash, opts);
    try {
      const [a, b] = [await cpu.forward(ids), await gpuDec.forward(ids)];
      assert.ok(maxErr(a, b) < 2e-3, `prompt logits ${maxErr(a, b)}`);
      const run = async (d: Decoder) => {
        const out = [argmax(d === cpu ? a : b)];
        for (let i = 0; i < 4; i++) out.push(argmax(await d.forward([out[out.length - 1]])));
        return out;
      };
      assert.deepEqual(await run(gpuDec), await run(cpu));
      assert.equal(gpuDec.cacheBytes, 6 * 3 * 2 * (ids.length + 4) * 32 * 4);
    } finally {
      gpuDec.destroy();
    }
  });

  it('refuses what has no WebGPU positional layer, typed', async () => {
    const model = randomModel(shape({}), 1);
    const make = (method: string, positions: PositionMethod) =>
      GpuDecoder.create(gpu, model, uniformSchedule(method), { maxTokens: 16, positions });
    await assert.rejects(make('cca:group=4,window=8', { kind: 'self-extend', window: 8, group: 2 }), SpecError);
    await assert.rejects(make('flash', { kind: 'self-extend', window: 64, group: 2 }), SpecError);
    // An empty grouped part (no query W past the start yet) is skipped, not run over no keys.
    const short = await make('flash', { kind: 'self-extend', window: 8, group: 2 });
    try {
      assertNoNaN('short logits', await short.forward([1, 2, 3]));
    } finally {
      short.destroy();
    }
  });
});
