// DeepSeek Sparse Attention: indexer, radix top-k, gathered attention, decode cache; CPU and WebGPU.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  attendSelected,
  dsaAttention,
  dsaOptionsFromSpec,
  dsaSelect,
  type IndexerInputs,
} from '../src/attention/dsa.js';
import { DsaKVCache } from '../src/attention/dsa-cache.js';
import { DsaGpuKVCache } from '../src/attention/dsa-gpu-cache.js';
import { attention } from '../src/attention/attention.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { InputError, ShapeError, SpecError } from '../src/errors.js';
import { radixSelectRow } from '../src/kernels/topk-cpu.js';
import { referenceSelect, referenceSparseAttention, selectionRecall } from '../src/reference/dsa-reference.js';
import { naiveHalfAttention, referenceAttention, maxAbsDiff } from '../src/reference/attention.js';
import { randomNormal, tensor, type DType } from '../src/tensor.js';
import { assertMatchesReference, assertNoNaN, backends, webgpuDevice } from './support.js';

const all = await backends();
after(async () => (await webgpuDevice())?.destroy());

function rng(seed: number) {
  return () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
}

function randomIndex(
  heads: number,
  queries: number,
  keys: number,
  dim: number,
  seed: number,
  dtype: DType = 'f32',
): IndexerInputs {
  const w = randomNormal([queries, heads], seed + 2, 'f32');
  // Positive and negative weights, as a trained indexer has.
  return { q: randomNormal([heads, queries, dim], seed, dtype), k: randomNormal([keys, dim], seed + 1, dtype), w };
}

/** Rows as arrays of their listed keys. */
function rows(sel: { indices: Int32Array; width: number; count: (t: number) => number }, queries: number): number[][] {
  return Array.from({ length: queries }, (_, t) =>
    Array.from(sel.indices.subarray(t * sel.width, t * sel.width + sel.count(t))),
  );
}

test('radix select picks what a full sort picks, ties by lower index', () => {
  const rand = rng(7);
  for (const [count, k] of [
    [1000, 37],
    [5000, 2048],
    [300, 299],
    [64, 64],
    [2000, 1],
  ] as const) {
    for (const coarse of [false, true]) {
      // Coarse scores have many exact ties (and zeros of both signs); fine ones almost none.
      const scores = Float32Array.from({ length: count }, () =>
        coarse ? Math.round(rand() * 8 - 4) * (rand() < 0.5 ? 1 : -1) * 0 + Math.round(rand() * 6 - 3) : rand() * 2 - 1,
      );
      if (coarse) scores[3] = -0;
      const out = new Int32Array(k + 5);
      radixSelectRow(scores, count, k, out, 0, k + 5);
      const want = Array.from(scores.keys())
        .sort((a, b) => scores[b] - scores[a] || a - b)
        .slice(0, k);
      assert.deepEqual(
        [...out.subarray(0, k)].sort((a, b) => a - b),
        want.sort((a, b) => a - b),
        `count ${count} k ${k} coarse ${coarse}`,
      );
      assert.ok(out.subarray(k).every((x) => x === -1));
    }
  }
});

interface Case {
  heads: number;
  kvHeads: number;
  queries: number;
  keys: number;
  headDim: number;
  dtype: DType;
  topk: number;
  causal: boolean;
}
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
      const label =
        `Hq=${c.heads} Hkv=${c.kvHeads} Nq=${c.queries} Nk=${c.keys} D=${c.headDim} ${c.dtype} ` +
        `topk=${c.topk} ${c.causal ? 'causal' : 'full'}`;
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
          assert.ok(
            got[t].every((j) => j >= 0 && j < c.keys),
            `seed ${seed}: row ${t} holds an index out of range`,
          );
          assert.ok(
            sel.indices.subarray(t * sel.width + got[t].length, (t + 1) * sel.width).every((j) => j === -1),
            `seed ${seed}: row ${t} is not padded with -1`,
          );
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

    test('exact ties (integer scores, many zeros) go to the lower key index, as a full sort does', async () => {
      // Small integer inputs: every score is an exact integer in f32 and f64, with many equal ones, so the
      // radix select must run into the index digits; CAP-sized and larger tie sets both occur.
      const [H, Nq, Nk, D] = [2, 40, 700, 8];
      const rand = rng(5);
      const ints = (n: number, lo: number, hi: number) =>
        Float32Array.from({ length: n }, () => lo + Math.floor(rand() * (hi - lo + 1)));
      const index: IndexerInputs = {
        q: tensor([H, Nq, D], 'f32', ints(H * Nq * D, -1, 1)),
        k: tensor([Nk, D], 'f32', ints(Nk * D, 0, 1)),
        w: tensor([Nq, H], 'f32', ints(Nq * H, 1, 2)),
      };
      for (const [topk, causal] of [
        [300, false],
        [5, true],
        [333, true],
      ] as const) {
        const sel = await dsaSelect(device!, index, { queries: Nq, keys: Nk, causal, topk }, 'float');
        const ref = referenceSelect(index, topk, causal);
        const got = rows(sel, Nq);
        for (let t = 0; t < Nq; t++)
          assert.deepEqual(
            [...got[t]].sort((a, b) => a - b),
            [...ref.selected[t]].sort((a, b) => a - b),
            `topk ${topk} row ${t}`,
          );
      }
    });

    test('few queries against many keys (decode shape: keys split over workgroups) select the float64 top-k', async () => {
      for (const [Nq, Nk, topk] of [
        [1, 5000, 300],
        [3, 2600, 2048],
      ] as const) {
        const index = randomIndex(4, Nq, Nk, 64, 50 + Nq);
        const sel = await dsaSelect(device!, index, { queries: Nq, keys: Nk, causal: true, topk }, 'float');
        const got = rows(sel, Nq);
        const ref = referenceSelect(index, topk, true);
        for (let t = 0; t < Nq; t++) assert.equal(new Set(got[t]).size, ref.selected[t].length);
        assert.equal(selectionRecall(got, ref, 1e-4), 1, `Nq ${Nq} Nk ${Nk}`);
      }
    });

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
      const iq = new Float32Array(H * Nq * D),
        ik = new Float32Array(Nk * D),
        iw = new Float32Array(Nq * H);
      for (let x = 0; x < H * Nq; x++) iq[x * D] = 1;
      for (let s = 0; s < Nk; s++) ik[s * D] = perm[s];
      for (let t = 0; t < Nq; t++) iw[t * H] = 1;
      const index: IndexerInputs = {
        q: tensor([H, Nq, D], 'f32', iq),
        k: tensor([Nk, D], 'f32', ik),
        w: tensor([Nq, H], 'f32', iw),
      };
      const q = randomNormal([8, Nq, 64], 21),
        k = randomNormal([2, Nk, 64], 22),
        v = randomNormal([2, Nk, 64], 23);
      const ref = referenceSparseAttention(q, k, v, referenceSelect(index, 17, true).selected);
      for (const indexer of ['float', 'int8'] as const)
        assertMatchesReference(
          await dsaAttention(device!, q, k, v, { index, topk: 17, indexer }),
          ref,
          undefined,
          indexer,
        );
    });

    test('topk >= visible keys equals dense causal attention (GQA, f16)', async () => {
      const index = randomIndex(4, 97, 150, 64, 31, 'f16');
      const q = randomNormal([4, 97, 128], 32, 'f16'),
        k = randomNormal([2, 150, 128], 33, 'f16'),
        v = randomNormal([2, 150, 128], 34, 'f16');
      const got = await dsaAttention(device!, q, k, v, { index, topk: 150 });
      const dense = await dsaAttention(device!, q, k, v, { index, topk: 1000 });
      assertMatchesReference(got, referenceAttention(q, k, v), naiveHalfAttention(q, k, v), 'topk=Nk');
      assert.ok(maxAbsDiff(got.o, dense.o) < 1e-5);
    });
  });
}

/** Rows [from, to) of a [H, N, D] tensor's query axis. */
function rowsOf(t: ReturnType<typeof randomNormal>, from: number, to: number) {
  const [H, N, D] = t.shape;
  const src = t.data;
  const out = t.dtype === 'f32' ? new Float32Array(H * (to - from) * D) : new Uint16Array(H * (to - from) * D);
  for (let h = 0; h < H; h++) out.set(src.subarray((h * N + from) * D, (h * N + to) * D), h * (to - from) * D);
  return tensor([H, to - from, D], t.dtype, out);
}

for (const [backend, device] of all) {
  test(
    `decode with the cache equals prefill rows (${backend}, int8 and float indexers)`,
    { skip: device ? false : 'no WebGPU adapter' },
    async () => {
      const [N, Hq, Hkv, D, HI, DI] = [40, 4, 2, 64, 4, 64];
      const q = randomNormal([Hq, N, D], 41),
        k = randomNormal([Hkv, N, D], 42),
        v = randomNormal([Hkv, N, D], 43);
      const index = randomIndex(HI, N, N, DI, 44);
      for (const precision of ['int8', 'float'] as const) {
        const prefill = await dsaAttention(device!, q, k, v, { index, topk: 13, indexer: precision });
        const cache = new DsaKVCache(Hkv, D, DI, 64, 'f32', precision);
        const prompt = 30;
        cache.append(
          rowsOf(k, 0, prompt),
          rowsOf(v, 0, prompt),
          tensor([prompt, DI], 'f32', (index.k.data as Float32Array).slice(0, prompt * DI)),
        );
        const steps = backend === 'cpu' ? N - prompt : 2;
        for (let t = prompt; t < prompt + steps; t++) {
          cache.append(
            rowsOf(k, t, t + 1),
            rowsOf(v, t, t + 1),
            tensor([1, DI], 'f32', (index.k.data as Float32Array).slice(t * DI, (t + 1) * DI)),
          );
          const iw = tensor([1, HI], 'f32', (index.w.data as Float32Array).slice(t * HI, (t + 1) * HI));
          const got = await cache.attend(device!, rowsOf(q, t, t + 1), rowsOf(index.q, t, t + 1), iw, { topk: 13 });
          for (let h = 0; h < Hq; h++) {
            const want = prefill.o.subarray((h * N + t) * D, (h * N + t + 1) * D);
            assert.ok(maxAbsDiff(got.o.subarray(h * D, (h + 1) * D), want) < 1e-5, `${precision} step ${t} head ${h}`);
            assert.ok(Math.abs(got.lse[h] - prefill.lse[h * N + t]) < 1e-5);
          }
        }
        if (!device!.gpu) continue;
        // The device-resident cache: written in place, every step against the prefill rows.
        const gcache = await DsaGpuKVCache.create(device!.gpu, Hkv, D, DI, 48, 'f32', precision);
        try {
          gcache.append(
            rowsOf(k, 0, prompt),
            rowsOf(v, 0, prompt),
            tensor([prompt, DI], 'f32', (index.k.data as Float32Array).slice(0, prompt * DI)),
          );
          for (let t = prompt; t < N; t++) {
            gcache.append(
              rowsOf(k, t, t + 1),
              rowsOf(v, t, t + 1),
              tensor([1, DI], 'f32', (index.k.data as Float32Array).slice(t * DI, (t + 1) * DI)),
            );
            const iw = tensor([1, HI], 'f32', (index.w.data as Float32Array).slice(t * HI, (t + 1) * HI));
            const got = await gcache.attend(rowsOf(q, t, t + 1), rowsOf(index.q, t, t + 1), iw, { topk: 13 });
            assertNoNaN('gpu cache o', got.o);
            for (let h = 0; h < Hq; h++) {
              assert.ok(
                maxAbsDiff(
                  got.o.subarray(h * D, (h + 1) * D),
                  prefill.o.subarray((h * N + t) * D, (h * N + t + 1) * D),
                ) < 1e-5,
                `gpu cache ${precision} step ${t} head ${h}`,
              );
              assert.ok(Math.abs(got.lse[h] - prefill.lse[h * N + t]) < 1e-5);
            }
          }
        } finally {
          gcache.destroy();
        }
      }
    },
  );
}

test('dsa specs, inputs and errors', async () => {
  assert.deepEqual(dsaOptionsFromSpec(parseMethodSpec('dsa')), { topk: 2048, indexer: 'int8' });
  assert.deepEqual(dsaOptionsFromSpec(parseMethodSpec('dsa:topk=37,indexer=float')), { topk: 37, indexer: 'float' });
  assert.throws(() => dsaOptionsFromSpec(parseMethodSpec('dsa:topk=0')), SpecError);
  assert.throws(() => dsaOptionsFromSpec(parseMethodSpec('dsa:topk=x')), SpecError);
  assert.throws(() => dsaOptionsFromSpec(parseMethodSpec('dsa:indexer=fp8')), SpecError);
  assert.throws(() => parseMethodSpec('dsa:k=3'), SpecError);
  const q = randomNormal([2, 10, 16], 1),
    k = randomNormal([1, 12, 16], 2),
    v = randomNormal([1, 12, 16], 3);
  const cpu = all[0][1]!;
  await assert.rejects(attention(cpu, q, k, v, 'dsa:topk=4'), InputError);
  const good = randomIndex(2, 10, 12, 8, 4);
  await assert.rejects(
    attention(cpu, q, k, v, 'dsa:topk=4', { index: { ...good, k: randomNormal([11, 8], 5) } }),
    ShapeError,
  );
  await assert.rejects(
    attention(cpu, q, k, v, 'dsa:topk=4', { index: { ...good, w: randomNormal([10, 3], 5) } }),
    ShapeError,
  );
  await assert.rejects(
    attention(cpu, q, k, v, 'dsa:topk=4', { index: { ...good, q: randomNormal([2, 10, 9], 5) } }),
    ShapeError,
  );
  const state = await attention(cpu, q, k, v, 'dsa:topk=4', { index: good });
  assertNoNaN('o', state.o);
  const cache = new DsaKVCache(1, 16, 8, 4);
  assert.throws(
    () => cache.append(randomNormal([1, 5, 16], 1), randomNormal([1, 5, 16], 2), randomNormal([5, 8], 3)),
    /full/,
  );
});

test('longctx attend --method dsa reads the indexer inputs; without them it is a usage error', async () => {
  const { spawnSync } = await import('node:child_process');
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const { readNpy, writeNpy } = await import('../src/io/npy.js');
  const dir = mkdtempSync(join(tmpdir(), 'longctx-dsa-'));
  const p = (n: string) => join(dir, n);
  const q = randomNormal([4, 19, 32], 1),
    k = randomNormal([2, 23, 32], 2),
    v = randomNormal([2, 23, 32], 3);
  const index = randomIndex(2, 19, 23, 16, 4);
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
    ['iq', index.q],
    ['ik', index.k],
    ['iw', index.w],
  ] as const)
    writeNpy(p(`${name}.npy`), t);
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const base = [
    'attend',
    '--q',
    p('q.npy'),
    '--k',
    p('k.npy'),
    '--v',
    p('v.npy'),
    '--backend',
    'cpu',
    '--out',
    p('o.npy'),
  ];
  const ok = spawnSync(
    process.execPath,
    [
      cli,
      ...base,
      '--method',
      'dsa:topk=7,indexer=float',
      '--index-q',
      p('iq.npy'),
      '--index-k',
      p('ik.npy'),
      '--index-w',
      p('iw.npy'),
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(ok.status, 0, ok.stderr);
  const ref = referenceSparseAttention(q, k, v, referenceSelect(index, 7, true).selected);
  assert.ok(maxAbsDiff(readNpy(p('o.npy')).data, ref.o) < 1e-5);
  const bad = spawnSync(process.execPath, [cli, ...base, '--method', 'dsa', '--index-q', p('iq.npy')], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /index-k/);
});
