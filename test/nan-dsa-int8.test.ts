// The NaN policy (docs/HARDENING.md) through DSA's int8 indexer, the default. Its quantiser scales each index
// vector by max |x|: a NaN there made int8Scale return 0 on the CPU (a zero vector, every score 0: the NaN key
// silently dropped by the top-k) and, on WebGPU, fed WGSL's undefined NaN-to-integer conversion. Now a vector
// holding a NaN or an infinity gets a NaN scale (kernels/dsa-indexer-cpu.ts quantizeInt8, and the GPU
// projection in kernels/dsa-indexer-project-wgsl.ts), so its scores are NaN, the top-k ranks them first and
// the rows that select the bad key turn NaN, as with indexer=float. Checked on the one-shot selection
// (dsaSelect, both backends) and on the resident WebGPU layer (attention/layers/dsa-gpu.ts) against the CPU
// path of a model's DSA layer (model/caches/dsa-layer.ts + attendSelected), both indexers.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { attendSelected, dsaSelect } from '../src/attention/dsa.js';
import { DsaGpuLayer } from '../src/attention/layers/dsa-gpu.js';
import { quantizeInt8 } from '../src/kernels/dsa-indexer-cpu.js';
import { DsaLayer } from '../src/model/caches/dsa-layer.js';
import { LLAMA_3_2_1B_SHAPE, randomModel } from '../src/model/load/random-model.js';
import { cpuDevice } from '../src/runtime/device.js';
import { asFloat32, randomNormal, type Tensor } from '../src/tensor.js';
import { backends, webgpuDevice } from './support.js';
import { chunkBuffers, readFloats, tokens, writeTensor } from './cca-dsa-layer-support.js';

const devices = await backends();
const gpuDevice = await webgpuDevice();
after(async () => gpuDevice?.destroy());

/** NaN over [from, to) of a tensor's data (f16: a quiet NaN's bits). */
const nanFill = (t: Tensor, from: number, to: number): void => {
  if (t.data instanceof Float32Array) t.data.fill(Number.NaN, from, to);
  else t.data.fill(0x7e00, from, to);
};

const plant = (t: Tensor, at: number, x: number): Tensor => {
  (t.data as Float32Array)[at] = x;
  return t;
};

describe('int8 quantiser: a non-finite vector gets a NaN scale, never a silent zero vector', () => {
  test('NaN, +Inf and -Inf in one channel; finite vectors unchanged', () => {
    const dim = 8;
    const data = Float32Array.from({ length: 4 * dim }, (_, i) => Math.sin(i + 1));
    const clean = quantizeInt8(data, 4, dim);
    [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY].forEach((x, i) => (data[(i + 1) * dim + 3] = x));
    const got = quantizeInt8(data, 4, dim);
    assert.equal(got.scales[0], clean.scales[0]);
    assert.deepEqual(got.values.subarray(0, dim), clean.values.subarray(0, dim));
    for (let i = 1; i < 4; i++) {
      assert.ok(Number.isNaN(got.scales[i]), `vector ${i}: scale ${got.scales[i]}`);
      assert.deepEqual(Array.from(got.values.subarray(i * dim, (i + 1) * dim)), new Array(dim).fill(0));
    }
  });
});

describe('dsaSelect (int8 and float): a NaN or Inf index key is selected by every token that can see it', () => {
  const [N, HI, DI, TOPK, BAD] = [47, 2, 32, 6, 20];
  for (const [backend, device] of devices)
    for (const precision of ['int8', 'float'] as const)
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
        // float: +Inf times a query channel of either sign is +-Inf, and -Inf through the ReLU is 0; only int8
        // (any non-finite vector scores NaN) and NaN under float promise the selection.
        if (precision === 'float' && !Number.isNaN(bad)) continue;
        test(`${backend} ${precision}: ${bad} in index key ${BAD}`, { skip: device === null }, async () => {
          const index = {
            q: randomNormal([HI, N, DI], 94),
            k: plant(randomNormal([N, DI], 95), BAD * DI + 4, bad),
            w: randomNormal([N, HI], 96),
          };
          const got = await dsaSelect(device!, index, { queries: N, keys: N, causal: true, topk: TOPK }, precision);
          for (let t = BAD; t < N; t++) {
            const row = Array.from(got.indices.subarray(t * got.width, t * got.width + got.count(t)));
            assert.ok(row.includes(BAD), `token ${t} selected ${row}, not the bad key ${BAD}`);
          }
        });
      }
});

describe('resident DSA layer on WebGPU: NaN rows as the CPU layer, int8 and float indexers', () => {
  const [HQ, HKV, D] = [4, 2, 64];
  const G = HQ / HKV;
  const [PREFILL, TOTAL, BAD] = [60, 70, 20];
  const cases = [
    {
      name: `NaN in key ${BAD} (KV head 1): every later row of heads 2, 3 (local window or top-k)`,
      plant: (_q: Tensor, k: Tensor) => nanFill(k, (1 * TOTAL + BAD) * D, (1 * TOTAL + BAD + 1) * D),
      want: (h: number, t: number) => h >= G && t >= BAD,
    },
    {
      name: 'NaN in the query of decoded token 65 (head 0): its row; the tied selection of its other heads agrees',
      plant: (q: Tensor) => nanFill(q, (0 * TOTAL + 65) * D, (0 * TOTAL + 66) * D),
      want: (h: number, t: number) => h === 0 && t === 65,
    },
  ];
  const variants = [
    { precision: 'int8', dtype: 'f32' },
    { precision: 'float', dtype: 'f32' },
    { precision: 'int8', dtype: 'f16' },
  ] as const;
  for (const { precision, dtype } of variants)
    for (const c of cases) {
      test(`${precision} ${dtype}: ${c.name}`, { skip: gpuDevice ? false : 'no WebGPU' }, async () => {
        const gpu = gpuDevice!.gpu!;
        const p = { heads: HQ, kvHeads: HKV, headDim: D, dtype, precision };
        const params = { topk: 8, sinks: 2, local: 4, pairs: 4, precision };
        const config = { ...LLAMA_3_2_1B_SHAPE, vocabSize: 8, hiddenSize: 24, intermediateSize: 8, layers: 1 };
        Object.assign(config, { heads: HQ, kvHeads: HKV, headDim: D });
        const cpu = new DsaLayer(randomModel(config, 5).weights.layers[0], config, params, TOTAL);
        const layer = await DsaGpuLayer.create(gpu, {
          ...p,
          ...params,
          maxTokens: TOTAL,
          maxChunk: PREFILL,
          indexer: cpu.indexer,
        });
        const bufs = await chunkBuffers(gpu, p, PREFILL);
        const [q, k, v] = [
          randomNormal([HQ, TOTAL, D], 21, dtype),
          randomNormal([HKV, TOTAL, D], 22, dtype),
          randomNormal([HKV, TOTAL, D], 23, dtype),
        ];
        c.plant(q, k);
        const tol = dtype === 'f32' ? 1e-4 : 5e-3;
        try {
          for (let start = 0; start < TOTAL; ) {
            const T = start === 0 ? PREFILL : 1;
            const chunk = [q, k, v].map((t) => tokens(t, start, start + T));
            chunk.forEach((t, i) => writeTensor(gpu, [bufs.q, bufs.k, bufs.v][i], t));
            gpu.device.queue.writeBuffer(bufs.out, 0, new Float32Array(HQ * T * D).fill(7)); // finite poison
            await layer.forward({ ...bufs, start, tokens: T });
            cpu.append(asFloat32(chunk[1]), T);
            const lists = await cpu.select(cpuDevice, asFloat32(chunk[0]), T);
            const n = start + T;
            const want = await attendSelected(cpuDevice, chunk[0], tokens(k, 0, n), tokens(v, 0, n), lists, {
              causal: true,
            });
            const got = await readFloats(gpu, bufs.out, HQ * T * D);
            for (let h = 0; h < HQ; h++)
              for (let i = 0; i < T; i++) {
                const t = start + i;
                const r = (h * T + i) * D;
                const label = `${precision} head ${h} token ${t}`;
                const bad = c.want(h, t);
                assert.equal(Number.isNaN(want.lse[h * T + i]), bad, `cpu ${label}: LSE ${want.lse[h * T + i]}`);
                for (let d = 0; d < D; d++) {
                  assert.equal(Number.isNaN(want.o[r + d]), bad, `cpu ${label} dim ${d}`);
                  assert.equal(Number.isNaN(got[r + d]), bad, `webgpu ${label} dim ${d}: ${got[r + d]}`);
                  if (!bad)
                    assert.ok(
                      Math.abs(got[r + d] - want.o[r + d]) < tol,
                      `${label} dim ${d}: ${got[r + d]} vs ${want.o[r + d]}`,
                    );
                }
              }
            start = n;
          }
        } finally {
          layer.destroy();
          for (const b of Object.values(bufs)) gpu.release(b);
        }
      });
    }
});
