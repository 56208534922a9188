// States over disjoint key sets merge exactly into the state over their union, on CPU and WebGPU.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { flashAttention } from '../src/attention/flash.js';
import { emptyState, mergeAll, mergeStates, type AttentionState } from '../src/spine/state.js';
import { mergeStatesGpu } from '../src/attention/merge-gpu.js';
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

describe('state merge on WebGPU', { skip: gpu ? false : 'no WebGPU adapter' }, () => {
  test('matches the CPU merge, including empty rows', async () => {
    const a: AttentionState = parts[0];
    const b: AttentionState = { ...parts[1], lse: parts[1].lse.slice() };
    b.lse[3] = -Infinity; // one row where only a saw keys
    b.o.fill(0, 3 * D, 4 * D);
    const expected = mergeStates(a, b);
    const rows = H * Nq;
    const up = async (s: AttentionState) => ({
      o: await gpu!.upload(s.o, 'o'),
      lse: await gpu!.upload(s.lse, 'lse'),
      rows,
      headDim: D,
    });
    const [ga, gb] = [await up(a), await up(b)];
    await mergeStatesGpu(gpu!, ga, gb);
    const o = new Float32Array(await gpu!.read(ga.o, rows * D * 4));
    const lse = new Float32Array(await gpu!.read(ga.lse, rows * 4));
    for (const buf of [ga.o, ga.lse, gb.o, gb.lse]) gpu!.release(buf);
    assertNoNaN('gpu merge', o);
    assert.ok(maxAbsDiff(o, expected.o) < 1e-5, `output ${maxAbsDiff(o, expected.o)}`);
    assert.ok(maxAbsDiff(lse, expected.lse) < 1e-5, `lse ${maxAbsDiff(lse, expected.lse)}`);
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
    const rows = heads * queries;
    const ga = { o: await gpu!.upload(a.o, 'o'), lse: await gpu!.upload(a.lse, 'lse'), rows, headDim: dim };
    const gb = { o: await gpu!.upload(b.o, 'o'), lse: await gpu!.upload(b.lse, 'lse'), rows, headDim: dim };
    await mergeStatesGpu(gpu!, ga, gb);
    const o = new Float32Array(await gpu!.read(ga.o, rows * dim * 4));
    const lse = new Float32Array(await gpu!.read(ga.lse, rows * 4));
    for (const buf of [ga.o, ga.lse, gb.o, gb.lse]) gpu!.release(buf);
    assertNoNaN('gpu merge', o);
    assert.equal(lse[7], -Infinity);
    assert.ok(maxAbsDiff(o, expected.o) < 1e-5, `output ${maxAbsDiff(o, expected.o)}`);
    assert.ok(maxAbsDiff(lse, expected.lse) < 1e-5, `lse ${maxAbsDiff(lse, expected.lse)}`);
  });
});
