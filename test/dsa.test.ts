// DeepSeek Sparse Attention: indexer, radix top-k, gathered attention, decode cache; CPU and WebGPU.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { attendSelected, dsaAttention, dsaSelect, type IndexerInputs } from '../src/attention/dsa.js';
import { radixSelectRow } from '../src/kernels/topk-cpu.js';
import { referenceSelect, referenceSparseAttention, selectionRecall } from '../src/reference/dsa-reference.js';
import { naiveHalfAttention, referenceAttention, maxAbsDiff } from '../src/reference/attention.js';
import { randomNormal, tensor, type DType } from '../src/tensor.js';
import { assertMatchesReference, assertNoNaN, backends, webgpuDevice } from './support.js';

const all = await backends();
after(async () => (await webgpuDevice())?.destroy());

function rng(seed: number) {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

function randomIndex(heads: number, queries: number, keys: number, dim: number, seed: number, dtype: DType = 'f32'): IndexerInputs {
  const w = randomNormal([queries, heads], seed + 2, 'f32');
  // Positive and negative weights, as a trained indexer has.
  return { q: randomNormal([heads, queries, dim], seed, dtype), k: randomNormal([keys, dim], seed + 1, dtype), w };
}

/** Rows as arrays of their listed keys. */
function rows(sel: { indices: Int32Array; width: number; count: (t: number) => number }, queries: number): number[][] {
  return Array.from({ length: queries }, (_, t) => Array.from(sel.indices.subarray(t * sel.width, t * sel.width + sel.count(t))));
}

test('radix select picks what a full sort picks, ties by lower index', () => {
  const rand = rng(7);
  for (const [count, k] of [[1000, 37], [5000, 2048], [300, 299], [64, 64], [2000, 1]] as const) {
    for (const coarse of [false, true]) {
      // Coarse scores have many exact ties (and zeros of both signs); fine ones almost none.
      const scores = Float32Array.from({ length: count }, () => (coarse ? Math.round(rand() * 8 - 4) * (rand() < 0.5 ? 1 : -1) * 0 + Math.round(rand() * 6 - 3) : rand() * 2 - 1));
      if (coarse) scores[3] = -0;
      const out = new Int32Array(k + 5);
      radixSelectRow(scores, count, k, out, 0, k + 5);
      const want = Array.from(scores.keys()).sort((a, b) => (scores[b] - scores[a]) || (a - b)).slice(0, k);
      assert.deepEqual([...out.subarray(0, k)].sort((a, b) => a - b), want.sort((a, b) => a - b), `count ${count} k ${k} coarse ${coarse}`);
      assert.ok(out.subarray(k).every((x) => x === -1));
    }
  }
});

interface Case { heads: number; kvHeads: number; queries: number; keys: number; headDim: number; dtype: DType; topk: number; causal: boolean }
const CPU_CASES: Case[] = [
  { heads: 4, kvHeads: 1, queries: 97, keys: 97, headDim: 64, dtype: 'f32', topk: 37, causal: true },
  { heads: 4, kvHeads: 2, queries: 97, keys: 300, headDim: 128, dtype: 'f16', topk: 37, causal: true },
  { heads: 2, kvHeads: 2, queries: 1023, keys: 1023, headDim: 64, dtype: 'f32', topk: 37, causal: true },
  { heads: 6, kvHeads: 2, queries: 50, keys: 201, headDim: 64, dtype: 'f32', topk: 61, causal: false },
];
const GPU_CASES: Case[] = [
  { heads: 4, kvHeads: 1, queries: 97, keys: 97, headDim: 64, dtype: 'f32', topk: 37, causal: true },
  { heads: 4, kvHeads: 2, queries: 97, keys: 300, headDim: 128, dtype: 'f16', topk: 37, causal: true },
  { heads: 8, kvHeads: 2, queries: 50, keys: 201, headDim: 64, dtype: 'f32', topk: 61, causal: false },
];

for (const [backend, device] of all) {
  describe(`dsa on ${backend}`, { skip: device ? false : 'no WebGPU adapter' }, () => {
    for (const c of backend === 'cpu' ? CPU_CASES : GPU_CASES) {
      const label = `Hq=${c.heads} Hkv=${c.kvHeads} Nq=${c.queries} Nk=${c.keys} D=${c.headDim} ${c.dtype} topk=${c.topk} ${c.causal ? 'causal' : 'full'}`;
      test(`float indexer selects the float64 top-k (but near-ties); attention over it matches float64: ${label}`, async () => {
        const seed = Date.now() % 100000;
        const index = randomIndex(4, c.queries, c.keys, 64, seed, c.dtype);
        const shape = { queries: c.queries, keys: c.keys, causal: c.causal, topk: c.topk };
        const sel = await dsaSelect(device!, index, shape, 'float');
        const ref = referenceSelect(index, c.topk, c.causal);
        const got = rows(sel, c.queries);
        for (let t = 0; t < c.queries; t++) {
          assert.equal(got[t].length, ref.selected[t].length, `seed ${seed}: row ${t} count`);
          assert.equal(new Set(got[t]).size, got[t].length, `seed ${seed}: row ${t} has duplicates`);
        }
        assert.equal(selectionRecall(got, ref, 1e-4), 1, `seed ${seed}: selection differs beyond near-ties`);
        const q = randomNormal([c.heads, c.queries, c.headDim], seed + 5, c.dtype);
        const k = randomNormal([c.kvHeads, c.keys, c.headDim], seed + 6, c.dtype);
        const v = randomNormal([c.kvHeads, c.keys, c.headDim], seed + 7, c.dtype);
        const state = await attendSelected(device!, q, k, v, sel, { causal: c.causal });
        const sets = got.map((r) => new Set(r));
        const filter = (i: number, j: number) => sets[i].has(j);
        const refAtt = referenceAttention(q, k, v, { causal: false }, filter);
        const naive = c.dtype === 'f16' ? naiveHalfAttention(q, k, v, { causal: false }, filter) : undefined;
        assertMatchesReference(state, refAtt, naive, `seed ${seed}`);
      });
    }

    test('int8 indexer: recall of the float64 top-k (near-ties excluded) is at least 0.9', async () => {
      const index = randomIndex(4, 97, 400, 64, 11);
      const shape = { queries: 97, keys: 400, causal: true, topk: 64 };
      const ref = referenceSelect(index, 64, true);
      const recall = selectionRecall(rows(await dsaSelect(device!, index, shape, 'int8'), 97), ref, 1e-3);
      process.stderr.write(`int8 indexer recall (${backend}, 97 x 400, topk 64): ${recall.toFixed(4)}\n`);
      assert.ok(recall >= 0.9, `recall ${recall}`);
    });

    test('end to end on tie-free scores equals float64 DSA (float and int8 indexers)', async () => {
      // Every index head reads dim 0 only and only head 0 counts: the score of key s is a multiple of
      // perm[s], distinct integers, so there are no near-ties, in float or int8.
      const [Nq, Nk, H, D] = [61, 130, 4, 64];
      const rand = rng(3);
      const perm = Array.from({ length: Nk }, (_, i) => i + 1).sort(() => rand() - 0.5);
      const iq = new Float32Array(H * Nq * D), ik = new Float32Array(Nk * D), iw = new Float32Array(Nq * H);
      for (let x = 0; x < H * Nq; x++) iq[x * D] = 1;
      for (let s = 0; s < Nk; s++) ik[s * D] = perm[s];
      for (let t = 0; t < Nq; t++) iw[t * H] = 1;
      const index: IndexerInputs = { q: tensor([H, Nq, D], 'f32', iq), k: tensor([Nk, D], 'f32', ik), w: tensor([Nq, H], 'f32', iw) };
      const q = randomNormal([8, Nq, 64], 21), k = randomNormal([2, Nk, 64], 22), v = randomNormal([2, Nk, 64], 23);
      const ref = referenceSparseAttention(q, k, v, referenceSelect(index, 17, true).selected);
      for (const indexer of ['float', 'int8'] as const) assertMatchesReference(await dsaAttention(device!, q, k, v, { index, topk: 17, indexer }), ref, undefined, indexer);
    });

    test('topk >= visible keys equals dense causal attention (GQA, f16)', async () => {
      const index = randomIndex(4, 97, 150, 64, 31, 'f16');
      const q = randomNormal([4, 97, 128], 32, 'f16'), k = randomNormal([2, 150, 128], 33, 'f16'), v = randomNormal([2, 150, 128], 34, 'f16');
      const got = await dsaAttention(device!, q, k, v, { index, topk: 150 });
      const dense = await dsaAttention(device!, q, k, v, { index, topk: 1000 });
      assertMatchesReference(got, referenceAttention(q, k, v), naiveHalfAttention(q, k, v), 'topk=Nk');
      assert.ok(maxAbsDiff(got.o, dense.o) < 1e-5);
    });
  });
}
