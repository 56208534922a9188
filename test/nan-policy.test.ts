// The NaN policy (docs/HARDENING.md) on every backend: a row whose visible scores include a NaN or an
// infinity (from q or k) is NaN in its output and LSE, never "saw no key" (O = 0, LSE = -inf); rows that
// do not see the bad value are untouched and still match the float64 reference.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { attention } from '../src/attention/attention.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { referenceAttention } from '../src/reference/attention.js';
import { randomNormal, type Tensor } from '../src/tensor.js';
import { backends, webgpuDevice } from './support.js';

const [H, HKV, N, D] = [4, 2, 37, 64];
const F16_INF = 0x7c00;

/** Rows (head * N + i) whose output or LSE is NaN; every value of such a row must be NaN. */
function nanRows(o: Float32Array, lse: Float32Array): Set<number> {
  const rows = new Set<number>();
  for (let r = 0; r < H * N; r++) {
    const row = o.subarray(r * D, (r + 1) * D);
    const nans = row.filter((x) => Number.isNaN(x)).length;
    if (nans > 0 || Number.isNaN(lse[r])) {
      assert.equal(nans, D, `row ${r}: ${nans} of ${D} outputs NaN (the whole row must be)`);
      assert.ok(Number.isNaN(lse[r]), `row ${r}: output NaN but LSE ${lse[r]}`);
      rows.add(r);
    }
  }
  return rows;
}

interface Case {
  name: string;
  method: string;
  make(): { q: Tensor; k: Tensor; v: Tensor };
  /** Rows that see the bad value. */
  expected: (head: number, i: number) => boolean;
}

const CASES: Case[] = [
  {
    name: 'NaN in one q row (f32)',
    method: 'flash',
    make: () => {
      const q = randomNormal([H, N, D], 11);
      (q.data as Float32Array)[(1 * N + 20) * D + 5] = Number.NaN;
      return { q, k: randomNormal([HKV, N, D], 12), v: randomNormal([HKV, N, D], 13) };
    },
    expected: (h, i) => h === 1 && i === 20,
  },
  {
    name: 'Inf in one f16 key: every row that sees it',
    method: 'flash',
    make: () => {
      const k = randomNormal([HKV, N, D], 22, 'f16');
      (k.data as Uint16Array)[(0 * N + 10) * D + 3] = F16_INF;
      return { q: randomNormal([H, N, D], 21, 'f16'), k, v: randomNormal([HKV, N, D], 23, 'f16') };
    },
    // KV head 0 serves query heads 0 and 1; causal rows i >= 10 see key 10.
    expected: (h, i) => h < 2 && i >= 10,
  },
  {
    name: 'NaN in a key outside a window stays invisible',
    method: 'window:left=4',
    make: () => {
      const k = randomNormal([HKV, N, D], 32);
      (k.data as Float32Array)[(1 * N + 10) * D] = Number.NaN;
      return { q: randomNormal([H, N, D], 31), k, v: randomNormal([HKV, N, D], 33) };
    },
    expected: (h, i) => h >= 2 && i >= 10 && i <= 14,
  },
];

const devices = await backends();
after(async () => (await webgpuDevice())?.destroy());

describe('NaN in, NaN out', () => {
  for (const [backend, device] of devices) {
    for (const c of CASES) {
      const methods = c.method === 'flash' ? ['flash', 'dense'] : [c.method];
      for (const method of methods) {
        test(`${backend} ${method}: ${c.name}`, { skip: device === null }, async () => {
          const { q, k, v } = c.make();
          const spec = parseMethodSpec(method);
          const state = await attention(device!, q, k, v, spec, { causal: true });
          const got = nanRows(state.o, state.lse);
          const want = new Set<number>();
          for (let h = 0; h < H; h++) for (let i = 0; i < N; i++) if (c.expected(h, i)) want.add(h * N + i);
          assert.deepEqual(
            [...got].sort((a, b) => a - b),
            [...want].sort((a, b) => a - b),
          );
          // The other rows are exact attention (the window case: over the window's keys).
          const left = method.startsWith('window') ? 4 : Number.POSITIVE_INFINITY;
          const ref = referenceAttention(q, k, v, { causal: true }, (i, j) => j <= i && j >= i - left);
          for (let r = 0; r < H * N; r++) {
            if (want.has(r)) continue;
            assert.ok(Math.abs(state.lse[r] - ref.lse[r]) < 2e-3, `row ${r}: LSE ${state.lse[r]} vs ${ref.lse[r]}`);
            for (let d = 0; d < D; d++)
              assert.ok(Math.abs(state.o[r * D + d] - ref.o[r * D + d]) < 5e-3, `row ${r} dim ${d}`);
          }
        });
      }
    }
  }
});

describe('NaN in v: IEEE through the weighted sum of the rows that see it, nowhere else', () => {
  // A masked key is not read: its probability 0 times a NaN in v would be NaN (the leak WebGPU's dense and
  // windowed flash had). Rows that see key 10 get NaN in that one column and keep their LSE.
  const cases: Array<[string, (i: number) => boolean]> = [
    ['dense', (i) => i >= 10],
    ['flash', (i) => i >= 10],
    ['window:left=4', (i) => i >= 10 && i <= 14],
  ];
  for (const [backend, device] of devices) {
    for (const [method, sees] of cases) {
      test(`${backend} ${method}`, { skip: device === null }, async () => {
        const q = randomNormal([H, N, D], 41);
        const k = randomNormal([HKV, N, D], 42);
        const v = randomNormal([HKV, N, D], 43);
        (v.data as Float32Array)[(0 * N + 10) * D + 3] = Number.NaN;
        const state = await attention(device!, q, k, v, parseMethodSpec(method), { causal: true });
        for (let h = 0; h < H; h++) {
          for (let i = 0; i < N; i++) {
            const r = h * N + i;
            const nans = state.o.subarray(r * D, (r + 1) * D).filter((x) => Number.isNaN(x)).length;
            assert.equal(nans, h < 2 && sees(i) ? 1 : 0, `row ${h}:${i}: ${nans} NaN outputs`);
            assert.ok(Number.isFinite(state.lse[r]), `row ${h}:${i}: LSE ${state.lse[r]}`);
          }
        }
      });
    }
  }
});
