// Dense and flash attention on every backend against the float64 reference, on odd shapes.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { attention } from '../src/attention/attention.js';
import { naiveHalfAttention, referenceAttention } from '../src/reference/attention.js';
import { randomNormal, type DType } from '../src/tensor.js';
import { assertMatchesReference, backends, sameBits, webgpuDevice } from './support.js';

interface Case {
  heads: number;
  kvHeads: number;
  queries: number;
  keys: number;
  headDim: number;
  causal: boolean;
  dtype: DType;
  scale?: number;
}

const CASES: Case[] = [
  { heads: 4, kvHeads: 1, queries: 97, keys: 97, headDim: 64, causal: true, dtype: 'f32' },
  { heads: 4, kvHeads: 4, queries: 1023, keys: 1023, headDim: 128, causal: true, dtype: 'f16' },
  { heads: 2, kvHeads: 2, queries: 1, keys: 1023, headDim: 128, causal: true, dtype: 'f32' },
  { heads: 4, kvHeads: 1, queries: 97, keys: 300, headDim: 37, causal: false, dtype: 'f32' },
  { heads: 8, kvHeads: 2, queries: 1, keys: 97, headDim: 64, causal: true, dtype: 'f16' },
  { heads: 2, kvHeads: 1, queries: 130, keys: 70, headDim: 64, causal: true, dtype: 'f32' }, // first 60 rows see no key
  { heads: 1, kvHeads: 1, queries: 33, keys: 33, headDim: 64, causal: false, dtype: 'f16', scale: 0.3 },
  { heads: 4, kvHeads: 2, queries: 97, keys: 97, headDim: 128, causal: true, dtype: 'f16' },
];

const name = (c: Case) =>
  `Hq=${c.heads} Hkv=${c.kvHeads} Nq=${c.queries} Nk=${c.keys} D=${c.headDim} ` +
  `${c.causal ? 'causal' : 'full'} ${c.dtype}${c.scale ? ` scale=${c.scale}` : ''}`;
let seed = Date.now() % 100000; // fresh inputs each run; the seed is in the failure message

after(async () => (await webgpuDevice())?.destroy());

for (const [backend, device] of await backends()) {
  describe(`attention on ${backend}`, { skip: device ? false : 'no WebGPU adapter' }, () => {
    for (const c of CASES) {
      test(name(c), async () => {
        const s = seed++;
        const q = randomNormal([c.heads, c.queries, c.headDim], s, c.dtype);
        const k = randomNormal([c.kvHeads, c.keys, c.headDim], s + 1e6, c.dtype);
        const v = randomNormal([c.kvHeads, c.keys, c.headDim], s + 2e6, c.dtype);
        const opts = { causal: c.causal, scale: c.scale };
        const ref = referenceAttention(q, k, v, opts);
        const naive = c.dtype === 'f16' ? naiveHalfAttention(q, k, v, opts) : undefined;
        for (const method of ['dense', 'flash']) {
          const got = await attention(device!, q, k, v, method, opts);
          assertMatchesReference(got, ref, naive, `${method} seed ${s}`);
          if (c.queries > c.keys && c.causal) {
            assert.equal(got.lse[0], -Infinity, 'a query before every key has LSE -inf');
            assert.equal(got.o[0], 0, 'and output 0');
          }
          const again = await attention(device!, q, k, v, method, opts);
          assert.ok(
            sameBits(got.o, again.o) && sameBits(got.lse, again.lse),
            `${method}: repeated runs are bitwise identical`,
          );
        }
      });
    }
  });
}
