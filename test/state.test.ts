// States over disjoint key sets merge exactly into the state over their union, on CPU and WebGPU.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { flashAttention } from '../src/attention/flash.js';
import { emptyState, mergeAll, mergeStates, type AttentionState } from '../src/spine/state.js';
import { mergeStatesWgsl, mergeWorkgroups } from '../src/kernels/merge-wgsl.js';
import { maxAbsDiff } from '../src/reference/attention.js';
import { cpuDevice } from '../src/runtime/device.js';
import { randomNormal, tensor, type Tensor } from '../src/tensor.js';
import { webgpuDevice, assertNoNaN } from './support.js';

function keySlice(t: Tensor, from: number, to: number): Tensor {
  const [h, n, d] = t.shape;
  const out = new Float32Array(h * (to - from) * d);
  for (let i = 0; i < h; i++)
    out.set((t.data as Float32Array).subarray((i * n + from) * d, (i * n + to) * d), i * (to - from) * d);
  return tensor([h, to - from, d], 'f32', out);
}

const [H, Hkv, Nq, Nk, D] = [4, 2, 37, 211, 64];
const q = randomNormal([H, Nq, D], 7);
const k = randomNormal([Hkv, Nk, D], 8);
const v = randomNormal([Hkv, Nk, D], 9);
const full = await flashAttention(cpuDevice, q, k, v, { causal: false });
const cuts = [0, 1, 64, 150, Nk];
const parts = await Promise.all(
  cuts
    .slice(1)
    .map((to, i) =>
      flashAttention(cpuDevice, q, keySlice(k, cuts[i], to), keySlice(v, cuts[i], to), { causal: false }),
    ),
);

// Every top-level await comes before the first describe: node:test ends the file's root once they settle.
const gpu = (await webgpuDevice())?.gpu;
after(async () => (await webgpuDevice())?.destroy());

describe('state merge on the CPU', () => {
  test('disjoint key sets merge to the whole', () => {
    const merged = mergeAll(parts);
    assert.ok(maxAbsDiff(merged.o, full.o) < 1e-5, `output ${maxAbsDiff(merged.o, full.o)}`);
    assert.ok(maxAbsDiff(merged.lse, full.lse) < 1e-5, `lse ${maxAbsDiff(merged.lse, full.lse)}`);
  });
  test('order does not matter', () => {
    const a = mergeAll(parts);
    const b = mergeAll([...parts].reverse());
    assert.ok(maxAbsDiff(a.o, b.o) < 1e-6);
  });
  test('an empty state (no keys, LSE -inf) is the identity', () => {
    const merged = mergeStates(emptyState(H, Nq, D), full);
    assert.deepEqual(
      [...merged.o],
      [...full.o].map((x) => Math.fround(x)),
    );
    const both = mergeStates(emptyState(H, Nq, D), emptyState(H, Nq, D));
    assert.equal(both.lse[0], -Infinity);
    assertNoNaN('empty merge', both.o);
  });
  test('shapes must agree', () => {
    assert.throws(() => mergeStates(emptyState(1, 2, 3), emptyState(1, 2, 4)), /cannot merge/);
  });
});

describe(
  'state merge on WebGPU (kernels/merge-wgsl.ts, the merge DSA split-KV decoding runs)',
  {
    skip: gpu ? false : 'no WebGPU adapter',
  },
  () => {
    test('matches the CPU merge, including empty rows', async () => {
      const a: AttentionState = parts[0];
      const b: AttentionState = { ...parts[1], o: parts[1].o.slice(), lse: parts[1].lse.slice() };
      b.lse[3] = -Infinity; // one row where only a saw keys
      b.o.fill(0, 3 * D, 4 * D);
      const expected = mergeStates(a, b);
      const { o, lse } = await mergeOnGpu([a, b]);
      assert.ok(maxAbsDiff(o, expected.o) < 1e-5, `output ${maxAbsDiff(o, expected.o)}`);
      assert.ok(maxAbsDiff(lse, expected.lse) < 1e-5, `lse ${maxAbsDiff(lse, expected.lse)}`);
    });

    test('four splits at once merge to the whole', async () => {
      const { o, lse } = await mergeOnGpu(parts);
      assert.ok(maxAbsDiff(o, full.o) < 1e-5, `output ${maxAbsDiff(o, full.o)}`);
      assert.ok(maxAbsDiff(lse, full.lse) < 1e-5, `lse ${maxAbsDiff(lse, full.lse)}`);
    });

    test('at an odd head dim (one column per thread), with rows empty in one state or in both', async () => {
      const [heads, queries, dim] = [3, 29, 13];
      const random = (seed: number): AttentionState => ({
        heads,
        queries,
        headDim: dim,
        o: randomNormal([heads, queries, dim], seed).data as Float32Array,
        lse: (randomNormal([heads, queries], seed + 1).data as Float32Array).map((x) => 3 * x),
      });
      const [a, b] = [random(21), random(23)];
      for (const [s, row] of [
        [a, 0],
        [b, 5],
        [a, 7],
        [b, 7],
      ] as const) {
        s.lse[row] = -Infinity;
        s.o.fill(0, row * dim, (row + 1) * dim);
      }
      const expected = mergeStates(a, b);
      const { o, lse } = await mergeOnGpu([a, b]);
      assert.equal(lse[7], -Infinity);
      assert.ok(maxAbsDiff(o, expected.o) < 1e-5, `output ${maxAbsDiff(o, expected.o)}`);
      assert.ok(maxAbsDiff(lse, expected.lse) < 1e-5, `lse ${maxAbsDiff(lse, expected.lse)}`);
    });
  },
);

/** The states stacked (o [S, rows, D], lse [S, rows]) and folded by the merge kernel; outputs poisoned first. */
async function mergeOnGpu(states: AttentionState[]): Promise<{ o: Float32Array; lse: Float32Array }> {
  const g = gpu!;
  const [{ heads, queries, headDim }] = states;
  const rows = heads * queries;
  const stack = (pick: (s: AttentionState) => Float32Array, n: number) => {
    const out = new Float32Array(states.length * n);
    states.forEach((s, i) => out.set(pick(s), i * n));
    return out;
  };
  const po = await g.upload(
    stack((s) => s.o, rows * headDim),
    'stacked o',
  );
  const plse = await g.upload(
    stack((s) => s.lse, rows),
    'stacked lse',
  );
  const o = await g.upload(new Float32Array(rows * headDim).fill(Number.NaN), 'merged o');
  const lse = await g.upload(new Float32Array(rows).fill(Number.NaN), 'merged lse');
  const params = g.uniform(new Uint32Array([rows, states.length, 0xff800000, 0]).buffer);
  try {
    const pipeline = await g.pipeline(`merge-states-${headDim}`, () => mergeStatesWgsl(headDim));
    const group = g.bind(pipeline, [po, plse, o, lse, params]);
    const [x, y] = mergeWorkgroups(rows, headDim, g.maxWorkgroupsPerDim);
    await g.run('merge states', (pass) => {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(x, y);
    });
    const out = {
      o: new Float32Array(await g.read(o, rows * headDim * 4)),
      lse: new Float32Array(await g.read(lse, rows * 4)),
    };
    assertNoNaN('gpu merge', out.o);
    return out;
  } finally {
    params.destroy();
    for (const b of [po, plse, o, lse]) g.release(b);
  }
}
