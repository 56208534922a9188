// The resident DSA layer (attention/layers/dsa-gpu.ts) against the CPU path of a model's DSA layer
// (model/caches/dsa-layer.ts selection + attendSelected on the CPU): prefill in chunks of several sizes,
// then 20+ decode steps, with GQA 4:2 and 8:2, head dims 64 and 40 (the tiles kernel), f32 and f16
// storage, int8 and float indexers, contexts long enough that top-k drops keys; outputs poisoned before
// every chunk; nothing read back or created by a decode step after the first. The int8 indexer's
// power-of-two scales make GPU and CPU rank identically on random data; the float indexer is checked on
// data on a 1/16 grid, where f32 and float64 dots agree exactly (elsewhere near-ties could rank apart).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DsaGpuLayer } from '../src/attention/layers/dsa-gpu.js';
import { attendSelected } from '../src/attention/dsa.js';
import { DsaLayer } from '../src/model/caches/dsa-layer.js';
import type { DecideVersion } from '../src/kernels/topk-decide-wgsl.js';
import { randomModel } from '../src/model/load/random-model.js';
import { LLAMA_3_2_1B_SHAPE } from '../src/model/load/random-model.js';
import { cpuDevice } from '../src/runtime/device.js';
import { asFloat32, randomNormal, tensor, toDType, type DType, type Tensor } from '../src/tensor.js';
import { ShapeError } from '../src/errors.js';
import { webgpuDevice } from './support.js';
import {
  assertClose,
  chunkBuffers,
  feedChunk,
  poison,
  readFloats,
  tokens,
  writeTensor,
} from './cca-dsa-layer-support.js';

const device = await webgpuDevice();
after(() => device?.destroy());

interface Case {
  heads: number;
  kvHeads: number;
  headDim: number;
  dtype: DType;
  precision: 'int8' | 'float';
  topk: number;
  sinks: number;
  local: number;
  pairs: number;
  chunks: number[];
  decode: number;
  decide?: DecideVersion;
}
const CASES: Case[] = [
  {
    heads: 4,
    kvHeads: 2,
    headDim: 64,
    dtype: 'f32',
    precision: 'int8',
    topk: 16,
    sinks: 4,
    local: 8,
    pairs: 4,
    chunks: [40, 100, 1, 64],
    decode: 22,
  },
  {
    heads: 8,
    kvHeads: 2,
    headDim: 64,
    dtype: 'f16',
    precision: 'int8',
    topk: 24,
    sinks: 2,
    local: 5,
    pairs: 3,
    chunks: [64, 7, 60],
    decode: 21,
    decide: 'serial',
  },
  {
    heads: 4,
    kvHeads: 2,
    headDim: 40,
    dtype: 'f32',
    precision: 'float',
    topk: 12,
    sinks: 0,
    local: 1,
    pairs: 4,
    chunks: [150, 37],
    decode: 20,
  },
  {
    heads: 8,
    kvHeads: 2,
    headDim: 64,
    dtype: 'f16',
    precision: 'float',
    topk: 33,
    sinks: 4,
    local: 16,
    pairs: 2,
    chunks: [3, 180],
    decode: 20,
    decide: 'serial',
  },
];

/** Values on a 1/16 grid (exact in f16 and in every f32 dot of a few channels). */
function gridNormal(shape: number[], seed: number, dtype: DType): Tensor {
  const x = asFloat32(randomNormal(shape, seed, 'f32'));
  return toDType(
    tensor(
      shape,
      'f32',
      x.map((v) => Math.round(v * 16) / 16),
    ),
    dtype,
  );
}

describe('dsa resident GPU layer', { skip: device ? false : 'no WebGPU device' }, () => {
  for (const c of CASES) {
    const shape = `Hq ${c.heads}:${c.kvHeads} D ${c.headDim} ${c.dtype} ${c.precision} topk ${c.topk} S ${c.sinks} W ${c.local}`;
    const name = `${shape} chunks ${c.chunks} decide ${c.decide ?? 'default'}`;
    test(`${name} + ${c.decode} decode steps equal the CPU DSA layer`, async () => {
      const gpu = device!.gpu!;
      const total = c.chunks.reduce((a, b) => a + b, 0) + c.decode;
      const maxChunk = Math.max(...c.chunks);
      const config = { ...LLAMA_3_2_1B_SHAPE, vocabSize: 8, hiddenSize: 24, intermediateSize: 8, layers: 1 };
      Object.assign(config, { heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim });
      const weights = randomModel(config, 5).weights.layers[0];
      const cpu = new DsaLayer(weights, config, { ...c }, total);
      // Blocks of 50 tokens: prefill chunks run several selection blocks.
      const layer = await DsaGpuLayer.create(gpu, {
        ...c,
        maxTokens: total,
        maxChunk,
        indexer: cpu.indexer,
        scoreBudgetBytes: 50 * total * 4,
      });
      const bufs = await chunkBuffers(gpu, c, maxChunk);
      const make = c.precision === 'float' ? gridNormal : randomNormal;
      const [q, k, v] = [
        make([c.heads, total, c.headDim], 21, c.dtype),
        make([c.kvHeads, total, c.headDim], 22, c.dtype),
        randomNormal([c.kvHeads, total, c.headDim], 23, c.dtype),
      ];
      const tol = c.dtype === 'f32' ? 1e-4 : 5e-3;
      const steps = [...c.chunks, ...Array.from({ length: c.decode }, () => 1)];
      let start = 0;
      try {
        for (const [i, T] of steps.entries()) {
          const hold = i > c.chunks.length ? `step ${i}` : undefined;
          const [qc, kc] = await feedChunk(gpu, layer, bufs, [q, k, v], start, T, hold);
          cpu.append(asFloat32(kc), T);
          const lists = await cpu.select(cpuDevice, asFloat32(qc), T);
          const n = start + T;
          const want = await attendSelected(cpuDevice, qc, tokens(k, 0, n), tokens(v, 0, n), lists, { causal: true });
          const got = await readFloats(gpu, bufs.out, c.heads * T * c.headDim);
          assertClose(got, want.o, tol, `${name} chunk ${i} (tokens ${start}..${n})`);
          start = n;
        }
        assert.ok(start - c.sinks - c.local > 4 * c.topk, 'top-k drops most middle keys');
        assert.equal(
          layer.cacheBytes,
          start * (2 * c.kvHeads * c.headDim * (c.dtype === 'f16' ? 2 : 4)) +
            start * (c.precision === 'int8' ? 2 * Math.ceil((2 * c.pairs) / 4) * 4 + 4 : 2 * 2 * c.pairs * 4),
        );
        layer.reset();
        await assert.rejects(layer.forward({ ...bufs, start: 5, tokens: 1 }), ShapeError);
      } finally {
        layer.destroy();
        for (const b of Object.values(bufs)) gpu.release(b);
      }
    });
  }

  test('two layers of one device share the selection scratch; interleaved chunks stay each its own', async () => {
    const gpu = device!.gpu!;
    const c = { ...CASES[0], chunks: [90, 50], decode: 3 };
    const total = 143;
    const config = { ...LLAMA_3_2_1B_SHAPE, vocabSize: 8, hiddenSize: 24, intermediateSize: 8, layers: 2 };
    Object.assign(config, { heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim });
    const model = randomModel(config, 7).weights.layers;
    const runs = await Promise.all(
      [0, 1].map(async (l) => {
        const cpu = new DsaLayer(model[l], config, { ...c }, total);
        const opts = { ...c, maxTokens: total, maxChunk: 90, indexer: cpu.indexer, scoreBudgetBytes: 40 * total * 4 };
        const data = [30, 31, 32].map((seed) => randomNormal([seed === 30 ? 4 : 2, total, 64], seed + 10 * l, 'f32'));
        return { cpu, gpu: await DsaGpuLayer.create(gpu, opts), data, bufs: await chunkBuffers(gpu, c, 90) };
      }),
    );
    try {
      let start = 0;
      for (const T of [90, 50, 1, 1, 1]) {
        for (const r of runs) {
          const [qc, kc, vc] = r.data.map((t) => tokens(t, start, start + T));
          writeTensor(gpu, r.bufs.q, qc);
          writeTensor(gpu, r.bufs.k, kc);
          writeTensor(gpu, r.bufs.v, vc);
          poison(gpu, r.bufs.out, 4 * T * 64);
        }
        // Both layers' submits in flight together (their blocks interleave on the queue).
        await Promise.all(runs.map((r) => r.gpu.forward({ ...r.bufs, start, tokens: T })));
        for (const [l, r] of runs.entries()) {
          const [qc, kc] = r.data.map((t) => tokens(t, start, start + T));
          r.cpu.append(asFloat32(kc), T);
          const lists = await r.cpu.select(cpuDevice, asFloat32(qc), T);
          const n = start + T;
          const [, k, v] = r.data;
          const want = await attendSelected(cpuDevice, qc, tokens(k, 0, n), tokens(v, 0, n), lists, { causal: true });
          assertClose(await readFloats(gpu, r.bufs.out, 4 * T * 64), want.o, 1e-4, `layer ${l} tokens ${start}..${n}`);
        }
        start += T;
      }
    } finally {
      for (const r of runs) {
        r.gpu.destroy();
        for (const b of Object.values(r.bufs)) gpu.release(b);
      }
    }
  });
});
