// DSA's sparse attention kernels over given key lists: the register-resident lanes kernel (lane counts,
// sub-splits, split-KV with its merge) and the tiles kernel, on WebGPU and through the CPU twin, against
// float64 attention restricted to the listed keys.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { attendSelected, type GatheredKeys, type IndexerInputs, type SparseOptions } from '../src/attention/dsa.js';
import { readSelection, selectCpu, selectGpu, uploadIndexer } from '../src/attention/dsa-select.js';
import { DECIDE_VERSIONS } from '../src/kernels/topk-decide-wgsl.js';
import { radixSelectRow, sampleStride } from '../src/kernels/topk-cpu.js';
import { prepareIndexer } from '../src/kernels/dsa-indexer-cpu.js';
import { referenceSelect } from '../src/reference/dsa-reference.js';
import { lanesSplits, subgroupMinSize } from '../src/attention/dsa-lanes.js';
import { sparseLanesAttentionCpu, splitRange } from '../src/kernels/sparse-lanes-cpu.js';
import { lanesLayout } from '../src/kernels/sparse-lanes-wgsl.js';
import { referenceLastKey as indexLimit } from '../src/reference/attention.js';
import { naiveHalfAttention, referenceAttention } from '../src/reference/attention.js';
import { UnsupportedError } from '../src/errors.js';
import { randomNormal, tensor, type DType } from '../src/tensor.js';
import { assertMatchesReference, webgpuDevice } from './support.js';

const gpuDevice = await webgpuDevice();
after(async () => gpuDevice?.destroy());

function rng(seed: number) {
  return () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
}

/** Random distinct visible keys per query token, -1 padded to width. */
function randomKeys(queries: number, keys: number, width: number, causal: boolean, seed: number): GatheredKeys {
  const rand = rng(seed);
  const indices = new Int32Array(queries * width).fill(-1);
  const count = (t: number) => Math.min(width, Math.max(0, indexLimit(queries, keys, causal, t) + 1));
  for (let t = 0; t < queries; t++) {
    const visible = indexLimit(queries, keys, causal, t) + 1;
    const pool = Int32Array.from({ length: Math.max(0, visible) }, (_, i) => i);
    for (let e = 0; e < count(t); e++) {
      const r = e + Math.floor(rand() * (pool.length - e));
      [pool[e], pool[r]] = [pool[r], pool[e]];
      indices[t * width + e] = pool[e];
    }
  }
  return { indices, width, count };
}

interface Case {
  heads: number;
  kvHeads: number;
  queries: number;
  keys: number;
  headDim: number;
  dtype: DType;
  width: number;
  causal: boolean;
}

function inputs(c: Case, seed: number) {
  const q = randomNormal([c.heads, c.queries, c.headDim], seed, c.dtype);
  const k = randomNormal([c.kvHeads, c.keys, c.headDim], seed + 1, c.dtype);
  const v = randomNormal([c.kvHeads, c.keys, c.headDim], seed + 2, c.dtype);
  const sel = randomKeys(c.queries, c.keys, c.width, c.causal, seed + 3);
  const sets = Array.from(
    { length: c.queries },
    (_, t) => new Set(sel.indices.subarray(t * c.width, t * c.width + sel.count(t))),
  );
  const filter = (i: number, j: number) => sets[i].has(j);
  const ref = referenceAttention(q, k, v, { causal: false }, filter);
  const naive = c.dtype === 'f16' ? naiveHalfAttention(q, k, v, { causal: false }, filter) : undefined;
  return { q, k, v, sel, ref, naive };
}

const label = (c: Case) =>
  `Hq=${c.heads} Hkv=${c.kvHeads} Nq=${c.queries} Nk=${c.keys} D=${c.headDim} ${c.dtype} width=${c.width} ${c.causal ? 'causal' : 'full'}`;

test('split ranges cover every listed key once', () => {
  for (const [n, splits] of [
    [0, 3],
    [1, 4],
    [37, 3],
    [2048, 32],
    [5, 7],
  ] as const) {
    const seen: number[] = [];
    for (let w = 0; w < splits; w++) {
      const [a, b] = splitRange(n, splits, w);
      for (let e = a; e < b; e++) seen.push(e);
    }
    assert.deepEqual(
      seen,
      Array.from({ length: n }, (_, i) => i),
      `n ${n} splits ${splits}`,
    );
  }
  assert.equal(lanesSplits(1, 8, 2048), 32); // decode: 256 workgroups of 64 keys
  assert.equal(lanesSplits(131072, 8, 2048), 1); // long prefill fills the GPU by itself
  assert.equal(lanesLayout(128, 4, 8)?.subSplits, 2);
  assert.equal(lanesLayout(36, 4, 8), undefined);
});

describe('CPU twin of the lanes kernel (splits, interleaved sub-splits, one exp per key)', () => {
  const cases: Array<[Case, number, number]> = [
    [{ heads: 2, kvHeads: 2, queries: 1023, keys: 1023, headDim: 64, dtype: 'f32', width: 37, causal: true }, 3, 2],
    [{ heads: 4, kvHeads: 1, queries: 97, keys: 300, headDim: 128, dtype: 'f16', width: 61, causal: true }, 1, 8],
    [{ heads: 8, kvHeads: 1, queries: 1, keys: 3000, headDim: 64, dtype: 'f32', width: 2048, causal: true }, 32, 1],
  ];
  for (const [c, splits, subSplits] of cases) {
    test(`${label(c)} splits=${splits} sub=${subSplits}`, () => {
      const seed = Date.now() % 100000;
      const { q, k, v, sel, ref, naive } = inputs(c, seed);
      const s = {
        heads: c.heads,
        kvHeads: c.kvHeads,
        queries: c.queries,
        keys: c.keys,
        headDim: c.headDim,
        causal: c.causal,
        scale: 1 / Math.sqrt(c.headDim),
      };
      assertMatchesReference(
        sparseLanesAttentionCpu(q, k, v, s, sel, { splits, subSplits }),
        ref,
        naive,
        `seed ${seed}`,
      );
    });
  }
});

describe('sparse attention kernels on webgpu', { skip: gpuDevice ? false : 'no WebGPU adapter' }, () => {
  const cases: Array<[Case, SparseOptions[]]> = [
    [
      { heads: 4, kvHeads: 1, queries: 97, keys: 97, headDim: 64, dtype: 'f32', width: 37, causal: true },
      [{ variant: 'lanes' }, { variant: 'lanes', splits: 3 }, { variant: 'tiles' }],
    ],
    [
      { heads: 4, kvHeads: 2, queries: 97, keys: 300, headDim: 128, dtype: 'f16', width: 37, causal: true },
      [
        { variant: 'lanes', lanes: 4 },
        { variant: 'lanes', splits: 5 },
      ],
    ],
    [
      { heads: 8, kvHeads: 1, queries: 5, keys: 300, headDim: 64, dtype: 'f32', width: 200, causal: false },
      [{ variant: 'lanes' }, { variant: 'lanes', lanes: 4, splits: 7 }],
    ],
    [
      { heads: 2, kvHeads: 2, queries: 30, keys: 130, headDim: 64, dtype: 'f16', width: 50, causal: true },
      [{ variant: 'lanes' }, { variant: 'lanes', splits: 2 }],
    ],
    // D = 80 does not fit 8 lanes of vec4 chunks: 4 lanes of 5 chunks.
    [
      { heads: 4, kvHeads: 2, queries: 13, keys: 90, headDim: 80, dtype: 'f32', width: 40, causal: true },
      [{ variant: 'lanes' }, { variant: 'lanes', splits: 3 }],
    ],
    // Decode: one token over a long key list, split over workgroups (lanesSplits) and merged.
    [
      { heads: 8, kvHeads: 2, queries: 1, keys: 3000, headDim: 128, dtype: 'f16', width: 2048, causal: true },
      [{ variant: 'lanes' }, { variant: 'tiles' }],
    ],
  ];
  for (const [c, variants] of cases) {
    test(label(c), async () => {
      const seed = Date.now() % 100000;
      const { q, k, v, sel, ref, naive } = inputs(c, seed);
      for (const opts of variants) {
        const state = await attendSelected(gpuDevice!, q, k, v, sel, { causal: c.causal, sparse: opts });
        assertMatchesReference(state, ref, naive, `seed ${seed} ${JSON.stringify(opts)}`);
      }
    });
  }

  test('lanes kernel refuses head dims it cannot split; auto falls back to tiles', async () => {
    const c: Case = { heads: 4, kvHeads: 2, queries: 9, keys: 40, headDim: 36, dtype: 'f32', width: 11, causal: true };
    const { q, k, v, sel, ref } = inputs(c, 9);
    await assert.rejects(attendSelected(gpuDevice!, q, k, v, sel, { sparse: { variant: 'lanes' } }), UnsupportedError);
    assertMatchesReference(await attendSelected(gpuDevice!, q, k, v, sel), ref, undefined, 'auto');
    assert.ok((await subgroupMinSize(gpuDevice!.gpu!)) >= 1);
  });
});

describe(
  'selection with subgroup-aggregated atomics on webgpu',
  { skip: gpuDevice?.gpu?.features.subgroups ? false : 'no WebGPU subgroups' },
  () => {
    test('aggregated and plain scoring passes select the same keys, the float64 top-k (ties to the lower index)', async () => {
      const gpu = gpuDevice!.gpu!;
      const rand = rng(13);
      const ints = (n: number, lo: number, hi: number) =>
        Float32Array.from({ length: n }, () => lo + Math.floor(rand() * (hi - lo + 1)));
      // Integer scores (exact ties, many equal first digits: the contended case) and a decode shape.
      const cases: Array<[IndexerInputs, number, boolean]> = [
        [
          {
            q: tensor([2, 40, 8], 'f32', ints(2 * 40 * 8, -1, 1)),
            k: tensor([700, 8], 'f32', ints(700 * 8, 0, 1)),
            w: tensor([40, 2], 'f32', ints(80, 1, 2)),
          },
          333,
          true,
        ],
        [
          {
            q: tensor([2, 40, 8], 'f32', ints(2 * 40 * 8, -1, 1)),
            k: tensor([700, 8], 'f32', ints(700 * 8, 0, 1)),
            w: tensor([40, 2], 'f32', ints(80, 1, 2)),
          },
          5,
          false,
        ],
        [{ q: randomNormal([4, 2, 64], 61), k: randomNormal([3000, 64], 62), w: randomNormal([2, 4], 63) }, 2048, true],
      ];
      for (const [index, topk, causal] of cases) {
        const [, Nq] = index.q.shape;
        const Nk = index.k.shape[0];
        const shape = { queries: Nq, keys: Nk, causal, topk };
        const ref = referenceSelect(index, topk, causal);
        const ix = await uploadIndexer(gpu, prepareIndexer(index, 'float'), index);
        try {
          for (const [aggregate, decide] of cross([true, false], DECIDE_VERSIONS)) {
            const sel = await selectGpu(gpu, ix, shape, { aggregate, decide });
            const got = await readSelection(gpu, sel, shape);
            gpu.release(sel.indices);
            for (let t = 0; t < Nq; t++) {
              const row = [...got.indices.subarray(t * got.width, t * got.width + got.count(t))].sort((a, b) => a - b);
              assert.deepEqual(
                row,
                [...ref.selected[t]].sort((a, b) => a - b),
                `aggregate ${aggregate} decide ${decide} topk ${topk} row ${t}`,
              );
            }
          }
        } finally {
          ix.release();
        }
      }
    });
  },
);

/** Every pair of an option and a decide version. */
function cross<A, B>(as: readonly A[], bs: readonly B[]): Array<[A, B]> {
  return as.flatMap((a) => bs.map((b): [A, B] => [a, b]));
}

/** Index inputs whose score of key s is k[s] (one head, one dim, unit query and weight). */
function scoreIndex(queries: number, scores: Float32Array): IndexerInputs {
  return {
    q: tensor([1, queries, 1], 'f32', new Float32Array(queries).fill(1)),
    k: tensor([scores.length, 1], 'f32', scores),
    w: tensor([queries, 1], 'f32', new Float32Array(queries).fill(1)),
  };
}

test('sampled first digit (CPU twin): a right guess saves a full pass, a wrong one falls back; both select what a sort selects', () => {
  const rand = rng(21);
  const sortTop = (sc: Float32Array, k: number) =>
    Array.from(sc.keys())
      .sort((a, b) => sc[b] - sc[a] || a - b)
      .slice(0, k)
      .sort((a, b) => a - b);
  const normal = Float32Array.from(
    { length: 20000 },
    () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand()),
  );
  // Misleading sample: every stride-th key (the sampled ones) scores low, the others high.
  const stride = sampleStride(128);
  const misleading = Float32Array.from({ length: 2000 }, (_, s) => (s % stride === 0 ? 1 + (s % 7) : 100 + (s % 3)));
  for (const [scores, k, guessed] of [
    [normal, 2048, true],
    [misleading, 128, false],
  ] as const) {
    const out = new Int32Array(k);
    const stats = radixSelectRow(scores, scores.length, k, out, 0, k, sampleStride(k));
    assert.deepEqual(
      [...out].sort((a, b) => a - b),
      sortTop(scores, k),
    );
    if (guessed) assert.equal(stats.passes, 3, 'sample, guessed bucket, collect');
    else assert.ok(stats.passes > 3, `fallback: ${stats.passes} passes`);
  }
});

describe(
  'selection with a sampled first digit on webgpu',
  { skip: gpuDevice?.gpu?.features.subgroups ? false : 'no WebGPU subgroups' },
  () => {
    test('right and wrong guesses both select the float64 top-k, as the CPU twin does', async () => {
      const gpu = gpuDevice!.gpu!;
      const rand = rng(31);
      const stride = sampleStride(128);
      const cases: Array<[IndexerInputs, number]> = [
        [{ q: randomNormal([4, 3, 64], 71), k: randomNormal([3000, 64], 72), w: randomNormal([3, 4], 73) }, 256],
        [
          scoreIndex(
            2,
            Float32Array.from({ length: 2000 }, (_, s) => (s % stride === 0 ? 1 + (s % 7) : 100 + (s % 3))),
          ),
          128,
        ],
        [
          scoreIndex(
            3,
            Float32Array.from({ length: 1500 }, () => Math.round(rand() * 40)),
          ),
          300,
        ],
      ];
      for (const [index, topk] of cases) {
        const [, Nq] = index.q.shape;
        const shape = { queries: Nq, keys: index.k.shape[0], causal: true, topk };
        const ref = referenceSelect(index, topk, true);
        const prepared = prepareIndexer(index, 'float');
        const cpu = selectCpu(prepared, shape);
        const ix = await uploadIndexer(gpu, prepared, index);
        try {
          for (const [sample, decide] of cross([true, false], DECIDE_VERSIONS)) {
            const sel = await selectGpu(gpu, ix, shape, { sample, decide });
            const got = await readSelection(gpu, sel, shape);
            gpu.release(sel.indices);
            for (let t = 0; t < Nq; t++) {
              const want = [...ref.selected[t]].sort((a, b) => a - b);
              const row = (x: GatheredKeys) =>
                [...x.indices.subarray(t * x.width, t * x.width + x.count(t))].sort((a, b) => a - b);
              assert.deepEqual(row(got), want, `sample ${sample} decide ${decide} topk ${topk} row ${t}`);
              assert.deepEqual(row(cpu), want, `cpu topk ${topk} row ${t}`);
            }
          }
        } finally {
          ix.release();
        }
      }
    });
  },
);
