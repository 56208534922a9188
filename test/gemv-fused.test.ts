// The one-row kernels with what follows a product fused in (gemv-wgsl.ts GemvEpilogue): the residual add
// (y += W x) and SwiGLU over gate and up (y = silu(Wg x) * (Wu x)), every GEMV version that has them, f16 weights
// and Q8_0 tiles, odd shapes, against float64 sums that share no code with the kernels; outputs poisoned (the
// swiglu output) or seeded with a random residual (the add), NaN checked. Error rule: within 2x a naive
// same-precision implementation's (f16 sums and products).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { webgpuDevice } from './support.js';
import { GEMV_VERSIONS } from '../src/kernels/versions.js';
import { matmulParams } from '../src/kernels/matmul-wgsl.js';
import { encodeTensor } from './gguf-builder.js';
import { q8TilesFromBlocks, q8TileValues } from '../src/weights/q8-tiles.js';
import { roundHalf } from '../src/f16.js';
import { asFloat32, randomNormal } from '../src/tensor.js';

const gpu = (await webgpuDevice())?.gpu;
const fusedVersions = GEMV_VERSIONS.filter((v) => v.fused);

const dot64 = (x: Float32Array, w: Float32Array, r: number, k: number) => {
  let s = 0;
  for (let i = 0; i < k; i++) s += x[i] * w[r * k + i];
  return s;
};
const dotHalf = (x: Float32Array, w: Float32Array, r: number, k: number) => {
  let s = 0;
  for (let i = 0; i < k; i++) s = roundHalf(s + roundHalf(roundHalf(x[i]) * w[r * k + i]));
  return s;
};
const silu = (g: number) => g / (1 + Math.exp(-g));

function weights(n: number, k: number, seed: number, q8: boolean) {
  const wf = randomNormal([n, k], seed, 'f16', 0.05);
  const tiles = q8 ? q8TilesFromBlocks(encodeTensor(asFloat32(wf), 8), n, k) : undefined;
  return { bits: tiles ?? (wf.data as Uint16Array), values: tiles ? q8TileValues(tiles, n, k) : asFloat32(wf) };
}

const CASES = [
  { n: 511, k: 2048, q8: false },
  { n: 97, k: 4104, q8: false },
  { n: 4097, k: 64, q8: false },
  { n: 511, k: 2048, q8: true },
  { n: 97, k: 4128, q8: true },
];

for (const epilogue of ['accumulate', 'swiglu'] as const)
  for (const c of CASES)
    test(`fused gemv (${epilogue}): N ${c.n} K ${c.k}${c.q8 ? ', Q8_0 tiles' : ''}`, { skip: !gpu }, async () => {
      const g = gpu!;
      assert.ok(fusedVersions.length >= 4, 'the gemv-r versions fuse');
      const x = asFloat32(randomNormal([c.k], c.n + 7, 'f32'));
      const a = weights(c.n, c.k, c.k + 1, c.q8);
      const b = weights(c.n, c.k, c.k + 2, c.q8);
      const y0 = asFloat32(randomNormal([c.n], 5, 'f32'));
      const ref = new Float64Array(c.n);
      const naive = new Float64Array(c.n);
      for (let r = 0; r < c.n; r++) {
        if (epilogue === 'accumulate') {
          ref[r] = y0[r] + dot64(x, a.values, r, c.k);
          naive[r] = roundHalf(y0[r] + dotHalf(x, a.values, r, c.k));
        } else {
          ref[r] = silu(dot64(x, a.values, r, c.k)) * dot64(x, b.values, r, c.k);
          naive[r] = roundHalf(roundHalf(silu(dotHalf(x, a.values, r, c.k))) * dotHalf(x, b.values, r, c.k));
        }
      }
      let naiveErr = 0;
      for (let r = 0; r < c.n; r++) naiveErr = Math.max(naiveErr, Math.abs(naive[r] - ref[r]));
      const budget = 2 * Math.max(naiveErr, 1e-6);
      for (const v of fusedVersions) {
        const why = v.unsupported(g, c.q8 ? 'q8_0' : 'f16', c.k);
        if (why) {
          console.log(`SKIPPED ${v.name}: ${why}`);
          continue;
        }
        const weightsKind = c.q8 ? 'q8_0' : 'f16';
        const pipe = await g.pipeline(`test-fused-${v.name}-${weightsKind}-${epilogue}`, () =>
          v.fused!(weightsKind, epilogue),
        );
        const start = epilogue === 'accumulate' ? y0 : new Float32Array(c.n).fill(Number.NaN);
        const bufs = [
          await g.upload(x, 'x'),
          await g.upload(a.bits, 'w'),
          epilogue === 'swiglu' ? await g.upload(b.bits, 'w2') : await g.createBuffer(16, 'no bias'),
          await g.upload(start, 'y'),
        ];
        const params = g.uniform(matmulParams(1, c.n, c.k, false));
        try {
          await g.run(`fused ${v.name}`, (pass) => {
            pass.setPipeline(pipe);
            pass.setBindGroup(0, g.bind(pipe, [...bufs, params]));
            pass.dispatchWorkgroups(...v.grid(1, c.n));
          });
          const got = new Float32Array(await g.read(bufs[3], c.n * 4));
          let err = 0;
          for (let r = 0; r < c.n; r++) {
            assert.ok(!Number.isNaN(got[r]), `${v.name}: y[${r}] is NaN`);
            err = Math.max(err, Math.abs(got[r] - ref[r]));
          }
          assert.ok(err <= budget, `${v.name} ${epilogue}: error ${err} exceeds 2x naive f16 (${budget})`);
        } finally {
          params.destroy();
          bufs.forEach((buf) => g.release(buf));
        }
      }
    });
