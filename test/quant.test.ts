// llama.cpp's block quantisations: Q4_0, Q4_K, Q5_K, Q6_K (and Q8_0) decoded by weights/quant-blocks.ts
// against a float64 reference of the formulas on random blocks (every bit pattern, odd block counts), the
// test quantiser's round trip, the GGUF type table, and a GGUF with those tensors generating the same
// greedy ids on the CPU and on WebGPU.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WeightMatrix } from '../src/weights/weight-matrix.js';
import type { WeightDType } from '../src/weights/weight-tensor.js';
import { dequantizeReference, QUANT_REFERENCE, type QuantName } from '../src/reference/quant-reference.js';
import { ggufModel } from '../src/model/load/gguf.js';
import { loadModel } from '../src/index.js';
import { encodeTensor } from './gguf-builder.js';
import { MIXED, quantisedGguf } from './quant-gguf.js';
import { assertNoNaN, webgpuDevice } from './support.js';
import { randomBlocks, xorshift } from './quant-blocks-support.js';

const gpu = await webgpuDevice();
const FORMATS: Array<[QuantName, number]> = [
  ['q4_0', 2],
  ['q4_k', 12],
  ['q5_k', 13],
  ['q6_k', 14],
  ['q8_0', 8],
];
/** Random blocks with f16 scales from tiny to large, either sign. */
const randomScaled = (name: QuantName, blocks: number, seed: number) =>
  randomBlocks(name, blocks, seed, (rand) => (rand() - 0.5) * 2 ** (Math.floor(rand() * 24) - 16));

describe('block quantisations against float64', () => {
  for (const [name] of FORMATS) {
    it(`${name}: random blocks decode as the formulas say`, () => {
      const f = QUANT_REFERENCE[name];
      for (const [rows, blocksPerRow, seed] of [
        [1, 1, 1],
        [3, 5, 2],
        [7, 3, 3],
      ]) {
        const cols = blocksPerRow * f.values;
        const bytes = randomScaled(name, rows * blocksPerRow, seed);
        const ref = dequantizeReference(name, bytes, rows, cols);
        const m = new WeightMatrix({ name, shape: [rows, cols], dtype: name as WeightDType, bytes });
        const all = m.toFloat32();
        assertNoNaN(name, all);
        let nonzero = 0;
        for (let i = 0; i < ref.length; i++) {
          // f32 products and one subtraction: a few ulps of the terms' size.
          const tol = 4e-7 * (Math.abs(ref[i]) + 1e-30) + 1e-12;
          if (Math.abs(all[i] - ref[i]) > tol && Math.abs(all[i] - ref[i]) > 1e-6 * maxAbs(ref))
            assert.fail(`${name} value ${i}: ${all[i]} vs ${ref[i]}`);
          if (ref[i] !== 0) nonzero++;
        }
        assert.ok(nonzero > ref.length / 2, 'the random blocks exercise most values');
        for (let r = 0; r < rows; r++) assert.deepEqual(m.row(r), all.subarray(r * cols, (r + 1) * cols));
      }
    });
  }

  it('rows that are not whole blocks, or bytes that are short, are ShapeErrors', () => {
    const bytes = new Uint8Array(144);
    assert.throws(() => new WeightMatrix({ name: 'w', shape: [1, 128], dtype: 'q4_k', bytes }), /whole blocks of 256/);
    assert.throws(() => new WeightMatrix({ name: 'w', shape: [2, 256], dtype: 'q4_k', bytes }), /288 bytes/);
  });

  for (const [name, type, tolerance] of [
    ['q4_0', 2, 0.08],
    ['q4_k', 12, 0.05],
    ['q5_k', 13, 0.025],
    ['q6_k', 14, 0.02],
  ] as const) {
    it(`${name}: the test quantiser round-trips within ${tolerance} of the range`, () => {
      const rand = xorshift(7);
      const values = Float32Array.from({ length: 3 * 256 }, () => (rand() - 0.5) * 2);
      const m = new WeightMatrix({ name, shape: [3, 256], dtype: name, bytes: encodeTensor(values, type) });
      const back = m.toFloat32();
      let err = 0;
      for (let i = 0; i < values.length; i++) err = Math.max(err, Math.abs(back[i] - values[i]));
      assert.ok(err > 0 && err <= tolerance * 2, `${name}: max error ${err}`);
    });
  }
});

describe('a GGUF with quantised tensors', () => {
  it('loads with each matrix in its type, and names an unsupported type', () => {
    const m = ggufModel(quantisedGguf(MIXED), 'mixed.gguf');
    assert.equal(m.weights.tokenEmbedding.dtype, 'q6_k');
    assert.equal(m.weights.layers[0].wq.dtype, 'q4_k');
    assert.equal(m.weights.layers[1].wv.dtype, 'q4_0');
    assert.equal(m.weights.layers[1].wDown.dtype, 'q5_k');
    assert.throws(
      () =>
        ggufModel(
          quantisedGguf((n) => (n.includes('ffn_up') ? 3 : 0)),
          'q4_1.gguf',
        ),
      (e: Error) => /Q4_1; supported tensor types: F32, F16, Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, BF16/.test(e.message),
    );
  });

  it(
    'generates the same greedy ids on the CPU and on WebGPU',
    { skip: gpu ? false : 'no WebGPU adapter' },
    async () => {
      const bytes = quantisedGguf(MIXED);
      const run = async (device: 'cpu' | NonNullable<typeof gpu>) => {
        const model = await loadModel(bytes, { device });
        try {
          const s = await model.createSession({ contextSize: 40 });
          const g = s.generate('Once upon a time', { maxTokens: 24, stopAtEos: false });
          return (await g.complete()).ids;
        } finally {
          model.dispose();
        }
      };
      const cpu = await run('cpu');
      const webgpu = await run(gpu!);
      assert.equal(cpu.length, 24);
      assert.ok(new Set(cpu).size > 3, 'a random model that does not repeat one token');
      assert.deepEqual(webgpu, cpu);
    },
  );
});

function maxAbs(xs: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < xs.length; i++) m = Math.max(m, Math.abs(xs[i]));
  return m;
}
