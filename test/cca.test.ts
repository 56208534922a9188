// CCA-Attention: the float64 reference (from the definition), the CPU twin and the WebGPU kernels, the
// compressed KV cache (decode == prefill), its bytes, and the spec.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { attention } from '../src/attention/attention.js';
import { ccaAttention, ccaCacheBytes, ccaParamsFromSpec } from '../src/attention/cca.js';
import { CcaKVCache } from '../src/attention/cca-cache.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import type { AttentionState } from '../src/spine/state.js';
import { naiveHalfCca, referenceCca } from '../src/reference/cca-reference.js';
import { maxAbsDiff, referenceAttention, type ReferenceState } from '../src/reference/attention.js';
import { randomNormal, tensor, type DType, type Tensor } from '../src/tensor.js';
import type { Device } from '../src/runtime/device.js';
import { ShapeError, SpecError, UnsupportedError } from '../src/errors.js';
import { assertNoNaN, backends, webgpuDevice } from './support.js';

const all = await backends();
after(async () => (await webgpuDevice())?.destroy());

/** Rows [from, to) of a [H, N, D] tensor. */
function rows(t: Tensor, from: number, to: number): Tensor {
  const [H, N, D] = t.shape;
  const out = t.dtype === 'f32' ? new Float32Array(H * (to - from) * D) : new Uint16Array(H * (to - from) * D);
  for (let h = 0; h < H; h++) out.set(t.data.subarray((h * N + from) * D, (h * N + to) * D), h * (to - from) * D);
  return tensor([H, to - from, D], t.dtype, out);
}

/** f32: within 2e-5 of float64. f16: within 2x the error of a naive f16 CCA (outputs and LSE). */
function assertClose(got: AttentionState, ref: ReferenceState, half: ReferenceState | undefined, label: string): void {
  assertNoNaN(`${label} o`, got.o);
  assertNoNaN(`${label} lse`, got.lse);
  const errO = maxAbsDiff(got.o, ref.o);
  const errL = maxAbsDiff(got.lse, ref.lse);
  const budgetO = half ? 2 * Math.max(maxAbsDiff(half.o, ref.o), 1e-6) : 2e-5;
  const budgetL = half ? 2 * Math.max(maxAbsDiff(half.lse, ref.lse), 1e-4) : 2e-5;
  assert.ok(errO <= budgetO, `${label}: output error ${errO} > ${budgetO}`);
  assert.ok(errL <= budgetL, `${label}: LSE error ${errL} > ${budgetL}`);
}

interface Case {
  heads: number;
  kvHeads: number;
  n: number;
  queries?: number;
  headDim: number;
  group: number;
  window: number;
  dtype: DType;
  cpuOnly?: boolean;
}
const CASES: Case[] = [
  { heads: 4, kvHeads: 2, n: 97, headDim: 64, group: 16, window: 33, dtype: 'f32' },
  { heads: 8, kvHeads: 2, n: 97, headDim: 128, group: 5, window: 1, dtype: 'f16' },
  { heads: 4, kvHeads: 2, n: 300, queries: 290, headDim: 128, group: 16, window: 33, dtype: 'f32' },
  { heads: 8, kvHeads: 2, n: 263, headDim: 64, group: 5, window: 33, dtype: 'f16' },
  { heads: 4, kvHeads: 2, n: 1023, headDim: 64, group: 16, window: 33, dtype: 'f32', cpuOnly: true },
  { heads: 4, kvHeads: 2, n: 1023, headDim: 128, group: 5, window: 1024, dtype: 'f16', cpuOnly: true },
  { heads: 2, kvHeads: 1, n: 1023, headDim: 64, group: 16, window: 1, dtype: 'f16', cpuOnly: true },
];

function inputs(c: Case, seed: number): [Tensor, Tensor, Tensor] {
  return [
    randomNormal([c.heads, c.n, c.headDim], seed, c.dtype),
    randomNormal([c.kvHeads, c.n, c.headDim], seed + 1, c.dtype),
    randomNormal([c.kvHeads, c.n, c.headDim], seed + 2, c.dtype),
  ];
}

test('the reference: g = 1 and w >= N are dense attention; a narrow window is not', () => {
  const [q, k, v] = inputs({ heads: 4, kvHeads: 2, n: 97, headDim: 16, group: 1, window: 1, dtype: 'f32' }, 7);
  const dense = referenceAttention(q, k, v);
  const g1 = referenceCca(q, k, v, { group: 1, window: 5 });
  assert.ok(
    maxAbsDiff(g1.o, dense.o) < 1e-12 && maxAbsDiff(g1.lse, dense.lse) < 1e-12,
    'g = 1: each core is its token',
  );
  const wide = referenceCca(q, k, v, { group: 16, window: 97 });
  assert.ok(maxAbsDiff(wide.o, dense.o) < 1e-12, 'w >= N: no query sees a core');
  assert.ok(maxAbsDiff(referenceCca(q, k, v, { group: 16, window: 8 }).o, dense.o) > 1e-3, 'cores change the result');
});

for (const [backend, device] of all) {
  describe(`CCA attention on ${backend}`, { skip: device ? false : 'no WebGPU adapter' }, () => {
    for (const c of CASES) {
      if (backend === 'webgpu' && c.cpuOnly) continue;
      const nq = c.queries ?? c.n;
      test(`Hq=${c.heads} Hkv=${c.kvHeads} N=${c.n} Nq=${nq} D=${c.headDim} g=${c.group} w=${c.window} ${c.dtype}`, async () => {
        const seed = Date.now() % 100000;
        const [q, k, v] = inputs(c, seed);
        const p = { group: c.group, window: c.window };
        const got = await attention(device!, rows(q, c.n - nq, c.n), k, v, `cca:group=${c.group},window=${c.window}`);
        const ref = referenceCca(q, k, v, p, nq);
        const half = c.dtype === 'f16' ? naiveHalfCca(q, k, v, p, nq) : undefined;
        assertClose(got, ref, half, `seed ${seed}`);
        if (c.window >= c.n) assertClose(got, referenceAttention(rows(q, c.n - nq, c.n), k, v), half, 'equals dense');
      });
    }

    test('decode and chunked prefill through the cache equal prefill, row by row', async () => {
      for (const dtype of ['f32', 'f16'] as const) {
        const c: Case = { heads: 4, kvHeads: 2, n: 131, headDim: 64, group: 5, window: 17, dtype };
        const [q, k, v] = inputs(c, 11);
        const full = await ccaAttention(device!, q, k, v, { group: c.group, window: c.window });
        const cache = new CcaKVCache({ heads: 4, kvHeads: 2, headDim: 64, group: c.group, window: c.window, dtype });
        const gpu = device!.gpu;
        const limit = gpu?.maxBindingBytes;
        // On WebGPU, force one KV head per chunk so that every chunk gets its own slice of the cores.
        if (gpu) (gpu as { maxBindingBytes: number }).maxBindingBytes = 64 * 64 * 4 * 2;
        try {
          let at = 0;
          for (const step of [
            40, 1, 7, 1, 1, 23, 1, 1, 1, 2, 30, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
          ]) {
            const got = await cache.forward(
              device!,
              rows(q, at, at + step),
              rows(k, at, at + step),
              rows(v, at, at + step),
            );
            assertNoNaN('decode o', got.o);
            for (let h = 0; h < 4; h++) {
              for (let i = 0; i < step; i++) {
                const a = got.o.subarray((h * step + i) * 64, (h * step + i + 1) * 64);
                const b = full.o.subarray((h * c.n + at + i) * 64, (h * c.n + at + i + 1) * 64);
                const tol = dtype === 'f32' ? 2e-6 : 2e-3;
                assert.ok(maxAbsDiff(a, b) <= tol, `${dtype} token ${at + i} head ${h}: ${maxAbsDiff(a, b)}`);
                assert.ok(
                  Math.abs(got.lse[h * step + i] - full.lse[h * c.n + at + i]) <= tol * 10,
                  `${dtype} lse of token ${at + i}`,
                );
              }
            }
            at += step;
          }
          assert.equal(at, c.n);
          assert.equal(cache.cores, Math.floor(c.n / c.group));
          assert.equal(cache.bytes, ccaCacheBytes(c.n, 2, 64, dtype, c));
        } finally {
          if (gpu) (gpu as { maxBindingBytes: number }).maxBindingBytes = limit!;
        }
      }
    });
  });
}

test('KV-cache bytes: cores + a ring of w + g - 1, about (N/g + w) / N of dense', () => {
  const p = { group: 16, window: 1024 };
  const dense = (n: number) => 2 * n * 8 * 128 * 2;
  const at128k = ccaCacheBytes(131072, 8, 128, 'f16', p) / dense(131072);
  assert.ok(Math.abs(at128k - (8192 + 1039) / 131072) < 1e-12 && at128k < 0.0705, `128K: ${at128k}`);
  // Short sequences: the ring holds every token, plus the cores pooled so far (at most 1/g more than dense).
  assert.ok(ccaCacheBytes(1000, 8, 128, 'f16', p) <= dense(1000) * (1 + 1 / 16));
  const cache = new CcaKVCache({ heads: 2, kvHeads: 1, headDim: 8, group: 4, window: 9, dtype: 'f16' });
  return (async () => {
    const { cpuDevice } = await import('../src/runtime/device.js');
    const [q, k, v] = [
      randomNormal([2, 403, 8], 1, 'f16'),
      randomNormal([1, 403, 8], 2, 'f16'),
      randomNormal([1, 403, 8], 3, 'f16'),
    ];
    await cache.forward(cpuDevice, q, k, v);
    assert.equal(cache.bytes, (100 + 12) * 2 * 8 * 2);
    assert.ok(cache.bytes / cache.denseBytes < (403 / 4 + 9 + 4) / 403);
  })();
});

test('specs and errors', async () => {
  const { cpuDevice } = await import('../src/runtime/device.js');
  assert.deepEqual(ccaParamsFromSpec(parseMethodSpec('cca')), { group: 16, window: 1024, variant: 'auto' });
  assert.deepEqual(ccaParamsFromSpec(parseMethodSpec('cca:group=5,window=33,variant=portable')), {
    group: 5,
    window: 33,
    variant: 'portable',
  });
  assert.throws(() => ccaParamsFromSpec(parseMethodSpec('cca:variant=fast')), SpecError);
  assert.throws(() => parseMethodSpec('cca:size=3'), SpecError);
  assert.throws(() => ccaParamsFromSpec(parseMethodSpec('cca:group=0')), SpecError);
  assert.throws(() => ccaParamsFromSpec(parseMethodSpec('cca:window=0')), SpecError);
  assert.throws(() => ccaParamsFromSpec(parseMethodSpec('cca:group=x')), SpecError);
  const [q, k, v] = inputs({ heads: 2, kvHeads: 1, n: 64, headDim: 8, group: 4, window: 4, dtype: 'f32' }, 3);
  const run = (d: Device, qq: Tensor, o = {}) => ccaAttention(d, qq, k, v, { group: 4, window: 4, ...o });
  await assert.rejects(run(cpuDevice, q, { causal: false }), UnsupportedError);
  await assert.rejects(
    run(cpuDevice, rows(q, 40, 64)),
    ShapeError,
    'queries that start after group 0 ends need the cache',
  );
  await assert.rejects(
    run(cpuDevice, rows(q, 2, 64)).then(() => run(cpuDevice, randomNormal([3, 64, 7], 1))),
    ShapeError,
  );
  const cache = new CcaKVCache({ heads: 2, kvHeads: 1, headDim: 8, group: 4, window: 4 });
  await assert.rejects(cache.forward(cpuDevice, rows(q, 0, 2), rows(k, 0, 3), rows(v, 0, 3)), ShapeError);
  assert.throws(() => new CcaKVCache({ heads: 3, kvHeads: 2, headDim: 8, group: 4, window: 4 }), ShapeError);
  const gpu = await webgpuDevice();
  if (gpu && !gpu.gpu!.features.subgroupMatrixF16) {
    await assert.rejects(attention(gpu, q, k, v, 'cca:group=4,window=4,variant=subgroup-matrix'), UnsupportedError);
  }
});
