// Block masks, sliding windows, sink tokens, documents and layer schedules, on CPU and WebGPU.
import { referenceVisible } from '../src/reference/mask-reference.js';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { attention } from '../src/attention/attention.js';
import { flashAttention } from '../src/attention/flash.js';
import {
  and,
  causal,
  classifyTile,
  documents,
  EMPTY,
  FULL,
  maskAllows,
  or,
  sinkTokens,
  slidingWindow,
  type MaskNode,
} from '../src/spine/mask.js';
import { blockDensity, buildBlockMask, keptTiles } from '../src/spine/block-mask.js';
import { hybridSchedule, scheduleFromSpec, sinksMask, windowMask } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { naiveHalfAttention, referenceAttention, maxAbsDiff } from '../src/reference/attention.js';
import { randomNormal, type DType } from '../src/tensor.js';
import { ShapeError, SpecError } from '../src/errors.js';
import { assertMatchesReference, backends, webgpuDevice } from './support.js';

const all = await backends();
after(async () => (await webgpuDevice())?.destroy());

function rng(seed: number) {
  return () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
}

test('tile classification agrees with the predicate on every element', () => {
  const rand = rng(42);
  const ids = Int32Array.from({ length: 200 }, (_, i) => Math.floor(i / 37));
  const masks: MaskNode[] = [
    causal(),
    slidingWindow(13, 4),
    sinkTokens(9),
    documents(ids),
    and(causal(), slidingWindow(30)),
    and(causal(), or(sinkTokens(5), slidingWindow(20))),
    and(documents(ids), causal()),
  ];
  for (const m of masks) {
    for (let trial = 0; trial < 300; trial++) {
      const q0 = Math.floor(rand() * 180),
        k0 = Math.floor(rand() * 180);
      const q1 = Math.min(199, q0 + Math.floor(rand() * 20)),
        k1 = Math.min(199, k0 + Math.floor(rand() * 20));
      let allowed = 0;
      for (let qp = q0; qp <= q1; qp++)
        for (let kp = k0; kp <= k1; kp++) allowed += referenceVisible(m, qp, kp) ? 1 : 0;
      const kind = classifyTile(m, q0, q1, k0, k1);
      const total = (q1 - q0 + 1) * (k1 - k0 + 1);
      if (kind === FULL)
        assert.equal(allowed, total, `FULL tile with masked elements: ${JSON.stringify(m)} ${[q0, q1, k0, k1]}`);
      if (kind === EMPTY)
        assert.equal(allowed, 0, `EMPTY tile with visible elements: ${JSON.stringify(m)} ${[q0, q1, k0, k1]}`);
    }
  }
});

test('a window keeps O(N * window) tiles: density halves when N doubles', () => {
  const m = and(causal(), slidingWindow(1024));
  const a = buildBlockMask(m, 16384, 16384, 64, 32);
  const b = buildBlockMask(m, 32768, 32768, 64, 32);
  assert.ok(Math.abs(keptTiles(b) / keptTiles(a) - 2) < 0.05, `kept ${keptTiles(a)} -> ${keptTiles(b)}`);
  assert.ok(blockDensity(b) < 0.04);
});

test('specs and errors', () => {
  assert.throws(() => windowMask(parseMethodSpec('window'), true), /needs left=N/);
  assert.throws(() => parseMethodSpec('window:left=4,size=3'), SpecError);
  assert.throws(() => documents(Int32Array.from([0, 1, 0])), ShapeError);
  assert.throws(() => buildBlockMask(causal(), 10, 5, 4, 4), /at least as many keys/);
  const h = hybridSchedule(3, 128);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6].map((l) => h.methodFor(l).name),
    ['flash', 'window', 'window', 'flash', 'window', 'window', 'flash'],
  );
  assert.equal(h.methodFor(1).params.left, '128');
  assert.equal(scheduleFromSpec(parseMethodSpec('hybrid:every=2,window=64')).methodFor(3).params.left, '64');
});

interface Case {
  spec: string;
  causal: boolean;
  heads: number;
  kvHeads: number;
  queries: number;
  keys: number;
  headDim: number;
  dtype: DType;
}
const CASES: Case[] = [
  { spec: 'window:left=37', causal: true, heads: 4, kvHeads: 1, queries: 1023, keys: 1023, headDim: 64, dtype: 'f32' },
  {
    spec: 'window:left=20,right=9',
    causal: false,
    heads: 2,
    kvHeads: 2,
    queries: 97,
    keys: 130,
    headDim: 37,
    dtype: 'f32',
  },
  {
    spec: 'sinks:tokens=5,left=40',
    causal: true,
    heads: 4,
    kvHeads: 2,
    queries: 97,
    keys: 300,
    headDim: 128,
    dtype: 'f16',
  },
  {
    spec: 'sinks:tokens=3,left=16',
    causal: true,
    heads: 2,
    kvHeads: 1,
    queries: 1,
    keys: 1023,
    headDim: 64,
    dtype: 'f16',
  },
  {
    spec: 'hybrid:every=3,window=50,layer=2',
    causal: true,
    heads: 2,
    kvHeads: 1,
    queries: 200,
    keys: 200,
    headDim: 64,
    dtype: 'f32',
  },
];

function maskOf(c: Case): MaskNode {
  const spec = parseMethodSpec(c.spec);
  if (spec.name === 'hybrid') return and(causal(), slidingWindow(50));
  return spec.name === 'window' ? windowMask(spec, c.causal) : sinksMask(spec, c.causal);
}

for (const [backend, device] of all) {
  describe(`sparse attention on ${backend}`, { skip: device ? false : 'no WebGPU adapter' }, () => {
    for (const c of CASES) {
      const name =
        `${c.spec} ${c.causal ? 'causal' : 'full'} ` +
        `Hq=${c.heads} Hkv=${c.kvHeads} Nq=${c.queries} Nk=${c.keys} D=${c.headDim} ${c.dtype}`;
      test(name, async () => {
        const seed = Date.now() % 100000;
        const q = randomNormal([c.heads, c.queries, c.headDim], seed, c.dtype);
        const k = randomNormal([c.kvHeads, c.keys, c.headDim], seed + 1, c.dtype);
        const v = randomNormal([c.kvHeads, c.keys, c.headDim], seed + 2, c.dtype);
        const m = maskOf(c);
        const filter = (i: number, j: number) => referenceVisible(m, c.keys - c.queries + i, j);
        const ref = referenceAttention(q, k, v, { causal: false }, filter);
        const naive = c.dtype === 'f16' ? naiveHalfAttention(q, k, v, { causal: false }, filter) : undefined;
        assertMatchesReference(
          await attention(device!, q, k, v, c.spec, { causal: c.causal }),
          ref,
          naive,
          `seed ${seed}`,
        );
      });
    }
    test('a window that covers everything equals causal flash', async () => {
      const q = randomNormal([2, 97, 64], 1),
        k = randomNormal([2, 130, 64], 2),
        v = randomNormal([2, 130, 64], 3);
      const windowed = await attention(device!, q, k, v, 'window:left=130');
      const flash = await attention(device!, q, k, v, 'flash');
      assert.ok(maxAbsDiff(windowed.o, flash.o) < 1e-6 && maxAbsDiff(windowed.lse, flash.lse) < 1e-6);
    });
    test('packed documents do not see each other', async () => {
      const ids = Int32Array.from({ length: 150 }, (_, i) => (i < 40 ? 0 : i < 41 ? 1 : i < 120 ? 2 : 3));
      const m = and(causal(), documents(ids));
      const q = randomNormal([2, 150, 64], 4),
        k = randomNormal([1, 150, 64], 5),
        v = randomNormal([1, 150, 64], 6);
      const got = await flashAttention(device!, q, k, v, { mask: m });
      assertMatchesReference(
        got,
        referenceAttention(q, k, v, { causal: false }, (i, j) => referenceVisible(m, i, j)),
        undefined,
        'documents',
      );
    });
  });
}

describe('Star Attention as one block mask', () => {
  test('visible sets equal the float64 reference definition, tiles classified soundly', async () => {
    const { starMask } = await import('../src/attention/star-mask.js');
    const { starVisible } = await import('../src/reference/star-reference.js');
    for (const [block, anchor, keys, query] of [
      [16, 16, 97, 5],
      [10, 3, 131, 0],
      [7, 7, 50, 50],
      [32, 1, 100, 1],
    ]) {
      const m = starMask({ block, anchor }, keys - query, keys);
      for (let qp = 0; qp < keys; qp++) {
        for (let kp = 0; kp < keys; kp++) {
          assert.equal(
            maskAllows(m, qp, kp),
            starVisible({ block, anchor, query }, keys, qp, kp),
            `b=${block} a=${anchor} q=${query} (${qp}, ${kp})`,
          );
        }
      }
      const blocks = buildBlockMask(m, keys, keys, 8, 8);
      for (let t = 0; t < blocks.queryTiles; t++) {
        for (let e = blocks.offsets[t]; e < blocks.offsets[t + 1]; e++) {
          if ((blocks.tiles[e] & 1) === 0) continue;
          const kt = blocks.tiles[e] >> 1;
          for (let qp = t * 8; qp < Math.min(keys, t * 8 + 8); qp++)
            for (let kp = kt * 8; kp < Math.min(keys, kt * 8 + 8); kp++) assert.ok(maskAllows(m, qp, kp));
        }
      }
    }
  });
  for (const [backend, device] of all) {
    test(
      `flash with the Star mask equals the Star reference on ${backend}`,
      { skip: device ? false : 'no WebGPU adapter' },
      async () => {
        const { starMask } = await import('../src/attention/star-mask.js');
        const { starReference } = await import('../src/reference/star-reference.js');
        const seed = Date.now() % 100000;
        const [block, anchor, keys, query] = [24, 24, 131, 9];
        const q = randomNormal([4, keys, 64], seed),
          k = randomNormal([2, keys, 64], seed + 1),
          v = randomNormal([2, keys, 64], seed + 2);
        const got = await flashAttention(device!, q, k, v, { mask: starMask({ block, anchor }, keys - query, keys) });
        assertMatchesReference(got, starReference(q, k, v, { block, anchor, query }), undefined, `seed ${seed}`);
      },
    );
  }
});
