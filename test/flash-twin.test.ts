// The CPU twin of the subgroup-matrix kernel (f16 probabilities, lazy rescale, 32-key tiles) keeps
// FlashAttention's error rule, so the algorithm is checked in CI even where no GPU has subgroup matrices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attentionShape } from '../src/attention/problem.js';
import { flashAttentionCpu, subgroupMatrixTwin } from '../src/kernels/flash-cpu.js';
import { naiveHalfAttention, referenceAttention, maxAbsDiff } from '../src/reference/attention.js';
import { randomNormal } from '../src/tensor.js';
import { assertMatchesReference } from './support.js';

for (const [H, Hkv, Nq, Nk, D, causal] of [[4, 1, 97, 97, 64, true], [2, 2, 1, 1023, 128, true], [4, 2, 300, 700, 128, false]] as const) {
  test(`subgroup-matrix twin Hq=${H} Hkv=${Hkv} Nq=${Nq} Nk=${Nk} D=${D} ${causal ? 'causal' : 'full'}`, () => {
    const seed = Date.now() % 10000;
    // Scores with a wide range, so the lazy rescale must trigger mid-row: keys grow along the sequence.
    const q = randomNormal([H, Nq, D], seed, 'f16', 1.5);
    const k = randomNormal([Hkv, Nk, D], seed + 1, 'f16', 1.5);
    const v = randomNormal([Hkv, Nk, D], seed + 2, 'f16');
    const s = attentionShape(q, k, v, { causal });
    const got = flashAttentionCpu(q, k, v, s, subgroupMatrixTwin);
    assertMatchesReference(got, referenceAttention(q, k, v, { causal }), naiveHalfAttention(q, k, v, { causal }), `seed ${seed}`);
  });
}

test('the lazy rescale changes nothing but rounding', () => {
  const q = randomNormal([2, 50, 64], 5, 'f32', 3);
  const k = randomNormal([2, 200, 64], 6, 'f32', 3);
  const v = randomNormal([2, 200, 64], 7);
  const s = attentionShape(q, k, v);
  const eager = flashAttentionCpu(q, k, v, s);
  const lazy = flashAttentionCpu(q, k, v, s, { lazyRescaleLog2: 8, tile: 32 });
  assert.ok(maxAbsDiff(eager.o, lazy.o) < 1e-6, `${maxAbsDiff(eager.o, lazy.o)}`);
  assert.ok(maxAbsDiff(eager.lse, lazy.lse) < 1e-5);
});
