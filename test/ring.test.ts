// Ring Attention in one process: exact, so equal to flash attention and to the float64 reference, for 1, 2
// and 4 hosts, causal or not, Nq <= Nk, GQA, head dims 64 and 128, on CPU and WebGPU.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { attention } from '../src/attention/attention.js';
import { ringQueryRows, ringShardAt, ringShards } from '../src/attention/ring.js';
import { naiveHalfAttention, referenceAttention, maxAbsDiff } from '../src/reference/attention.js';
import { randomNormal } from '../src/tensor.js';
import { assertMatchesReference, backends, webgpuDevice } from './support.js';

const all = await backends();
after(async () => (await webgpuDevice())?.destroy());

test('shards travel the ring: every host sees every shard once, its own first', () => {
  for (const hosts of [1, 2, 3, 4]) {
    for (let h = 0; h < hosts; h++) {
      const seen = Array.from({ length: hosts }, (_, s) => ringShardAt(h, s, hosts));
      assert.equal(seen[0], h);
      assert.deepEqual(
        [...seen].sort(),
        Array.from({ length: hosts }, (_, i) => i),
      );
    }
  }
  assert.deepEqual(ringShards(10, 4), [
    [0, 2],
    [2, 5],
    [5, 7],
    [7, 10],
  ]);
  assert.deepEqual(ringQueryRows(4, 10, 4, 3, true), [1, 4]);
  assert.deepEqual(ringQueryRows(4, 10, 4, 0, true), [0, 0]);
});

const cases = [
  { label: 'N=97 D=64 GQA 4/2', heads: 4, kvHeads: 2, queries: 97, keys: 97, dim: 64, causal: true },
  { label: 'Nq=33 Nk=131 D=128', heads: 2, kvHeads: 1, queries: 33, keys: 131, dim: 128, causal: true },
  { label: 'N=61 D=64 not causal, Nq=70 > Nk', heads: 2, kvHeads: 2, queries: 70, keys: 61, dim: 64, causal: false },
];

for (const [name, device] of all) {
  describe(`ring on ${name}`, { skip: device ? false : 'no WebGPU adapter' }, () => {
    for (const c of cases) {
      for (const hosts of [1, 2, 4]) {
        for (const dtype of ['f32', 'f16'] as const) {
          test(`${c.label}, ${hosts} host(s), ${dtype}`, async () => {
            const seed = c.keys * 11 + hosts;
            const q = randomNormal([c.heads, c.queries, c.dim], seed, dtype);
            const k = randomNormal([c.kvHeads, c.keys, c.dim], seed + 1, dtype);
            const v = randomNormal([c.kvHeads, c.keys, c.dim], seed + 2, dtype);
            const opts = { causal: c.causal };
            const got = await attention(device!, q, k, v, `ring:hosts=${hosts}`, opts);
            const ref = referenceAttention(q, k, v, opts);
            assertMatchesReference(
              got,
              ref,
              dtype === 'f16' ? naiveHalfAttention(q, k, v, opts) : undefined,
              `${name} ring ${hosts} ${dtype}`,
            );
            const flash = await attention(device!, q, k, v, 'flash', opts);
            assert.ok(maxAbsDiff(got.o, flash.o) < (dtype === 'f16' ? 2e-3 : 2e-6), 'ring equals flash');
            assert.ok(maxAbsDiff(got.lse, flash.lse) < 1e-5, 'ring LSE equals flash');
          });
        }
      }
    }
  });
}
