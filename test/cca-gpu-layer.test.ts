// The resident CCA layer (attention/layers/cca-gpu.ts) against the CPU truth (attention/cca-cache.ts):
// prefill in chunks of several sizes, then 20+ decode steps (split-KV decoding, one to eight splits), on odd
// shapes (group 2, 5 and 16, window 1, 33, 100 and 700, GQA 4:2, 8:2 and 4:1, head dims 64, 33 and 32, f32 and
// f16 storage) long enough that cores pool; outputs poisoned before every chunk; nothing read back or created
// by a decode step after the first.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CcaGpuLayer } from '../src/attention/layers/cca-gpu.js';
import { CcaKVCache } from '../src/attention/cca-cache.js';
import { CCA_DECODE_VERSIONS, ccaDecodeParams } from '../src/kernels/cca-decode-wgsl.js';
import { decodeSplitting } from '../src/attention/flash-decode.js';
import { cpuDevice } from '../src/runtime/device.js';
import { randomNormal, type DType } from '../src/tensor.js';
import { ShapeError } from '../src/errors.js';
import { webgpuDevice } from './support.js';
import { assertClose, chunkBuffers, feedChunk, readFloats } from './cca-dsa-layer-support.js';

const device = await webgpuDevice();
after(() => device?.destroy());

interface Case {
  heads: number;
  kvHeads: number;
  headDim: number;
  group: number;
  window: number;
  dtype: DType;
  chunks: number[];
  decodeSteps: number;
}
const CASES: Case[] = [
  { heads: 4, kvHeads: 2, headDim: 64, group: 16, window: 33, dtype: 'f32', chunks: [37, 100, 1, 64], decodeSteps: 22 },
  { heads: 8, kvHeads: 2, headDim: 64, group: 5, window: 1, dtype: 'f16', chunks: [64, 7, 60], decodeSteps: 21 },
  { heads: 4, kvHeads: 2, headDim: 33, group: 16, window: 100, dtype: 'f32', chunks: [150, 90], decodeSteps: 20 },
  { heads: 8, kvHeads: 2, headDim: 64, group: 5, window: 100, dtype: 'f16', chunks: [3, 130], decodeSteps: 20 },
  { heads: 4, kvHeads: 2, headDim: 33, group: 5, window: 33, dtype: 'f16', chunks: [70, 45], decodeSteps: 20 },
  // Decoding over ~950 keys: split-KV decoding runs several splits (v1 8 of 128, v4 4 of 256; GQA 4:1).
  { heads: 4, kvHeads: 1, headDim: 32, group: 2, window: 700, dtype: 'f16', chunks: [600, 600], decodeSteps: 20 },
];

describe('cca resident GPU layer', { skip: device ? false : 'no WebGPU device' }, () => {
  // Every case with the default decoding kernel (v4), every other one with v1 beside it.
  const runs = CASES.flatMap((c, i) =>
    CCA_DECODE_VERSIONS.filter((d) => d === 'decode-v4' || i % 2 === 0).map((d) => ({ c, d })),
  );
  for (const { c, d } of runs) {
    const name = `Hq ${c.heads}:${c.kvHeads} D ${c.headDim} g ${c.group} w ${c.window} ${c.dtype} chunks ${c.chunks} ${d}`;
    test(`${name} + ${c.decodeSteps} decode steps equal CcaKVCache`, async () => {
      const gpu = device!.gpu!;
      const total = c.chunks.reduce((a, b) => a + b, 0) + c.decodeSteps;
      const maxChunk = Math.max(...c.chunks);
      const layer = await CcaGpuLayer.create(gpu, { ...c, maxTokens: total, maxChunk, decode: d });
      assert.match(layer.plan, new RegExp(`split-KV \\(${d}\\)`));
      const cpu = new CcaKVCache({ ...c });
      const bufs = await chunkBuffers(gpu, c, maxChunk);
      const [q, k, v] = [
        randomNormal([c.heads, total, c.headDim], 11, c.dtype),
        randomNormal([c.kvHeads, total, c.headDim], 12, c.dtype),
        randomNormal([c.kvHeads, total, c.headDim], 13, c.dtype),
      ];
      const tol = c.dtype === 'f32' ? 1e-4 : 5e-3;
      const steps = [...c.chunks, ...Array.from({ length: c.decodeSteps }, () => 1)];
      let start = 0;
      try {
        for (const [i, T] of steps.entries()) {
          const hold = i > c.chunks.length ? `step ${i}` : undefined;
          const [qc, kc, vc] = await feedChunk(gpu, layer, bufs, [q, k, v], start, T, hold);
          const want = await cpu.forward(cpuDevice, qc, kc, vc);
          const got = await readFloats(gpu, bufs.out, c.heads * T * c.headDim);
          assertClose(got, want.o, tol, `${name} chunk ${i} (tokens ${start}..${start + T})`);
          start += T;
        }
        assert.equal(layer.cores, cpu.cores);
        const last = { position: start - 1, rowsPerHead: 1, ringRow0: 0, ringCapacity: 1, headsPerKv: 1, scale: 1 };
        const splits = ccaDecodeParams({ ...c, ...last }, decodeSplitting(d)).splits;
        if (c.window === 700) assert.equal(splits, d === 'decode-v1' ? 8 : 4, 'decoding ran several splits');
        assert.ok(layer.cores > 4, 'cores pooled');
        assert.equal(layer.cacheBytes, cpu.bytes);
        // reset: a second sequence gives the first one's outputs again.
        layer.reset();
        const T = c.chunks[0];
        const fresh = new CcaKVCache({ ...c });
        const [qc, kc, vc] = await feedChunk(gpu, layer, bufs, [q, k, v], 0, T, undefined);
        const want = await fresh.forward(cpuDevice, qc, kc, vc);
        assertClose(await readFloats(gpu, bufs.out, c.heads * T * c.headDim), want.o, tol, `${name} after reset`);
        await assert.rejects(layer.forward({ ...bufs, start: 0, tokens: 1 }), ShapeError);
      } finally {
        layer.destroy();
        for (const b of Object.values(bufs)) gpu.release(b);
      }
    });
  }
});
