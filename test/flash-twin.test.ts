// The CPU twin of the subgroup-matrix kernel (f16 probabilities, lazy rescale, 32-key tiles) keeps
// FlashAttention's error rule, so the algorithm is checked in CI even where no GPU has subgroup matrices.
import { referenceVisible } from '../src/reference/mask-reference.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attentionShape } from '../src/spine/problem.js';
import { flashAttentionCpu, subgroupMatrixTwin } from '../src/kernels/flash-cpu.js';
import { naiveHalfAttention, referenceAttention, maxAbsDiff } from '../src/reference/attention.js';
import { randomNormal } from '../src/tensor.js';
import { buildBlockMask } from '../src/spine/block-mask.js';
import { SGMAT_ROWS } from '../src/kernels/flash-sgmat-wgsl.js';
import { and, causal, documents, or, sinkTokens, slidingWindow } from '../src/spine/mask.js';
import { assertMatchesReference } from './support.js';

for (const [H, Hkv, Nq, Nk, D, causal] of [
  [4, 1, 97, 97, 64, true],
  [2, 2, 1, 1023, 128, true],
  [4, 2, 300, 700, 128, false],
] as const) {
  test(`subgroup-matrix twin Hq=${H} Hkv=${Hkv} Nq=${Nq} Nk=${Nk} D=${D} ${causal ? 'causal' : 'full'}`, () => {
    const seed = Date.now() % 10000;
    // Scores with a wide range, so the lazy rescale must trigger mid-row: keys grow along the sequence.
    const q = randomNormal([H, Nq, D], seed, 'f16', 1.5);
    const k = randomNormal([Hkv, Nk, D], seed + 1, 'f16', 1.5);
    const v = randomNormal([Hkv, Nk, D], seed + 2, 'f16');
    const s = attentionShape(q, k, v, { causal });
    const got = flashAttentionCpu(q, k, v, s, subgroupMatrixTwin);
    assertMatchesReference(
      got,
      referenceAttention(q, k, v, { causal }),
      naiveHalfAttention(q, k, v, { causal }),
      `seed ${seed}`,
    );
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

// The tensor-core kernel with a block mask visits the kept tiles of its 64 x 32 grid; empty rows, tiles
// whose first visible key arrives late (the lazy rescale from -inf) and documents must all hold.
for (const [name, mask, Nq, Nk] of [
  ['window 37', and(causal(), slidingWindow(37)), 1023, 1023],
  ['sinks 5 + window 40', and(causal(), or(sinkTokens(5), slidingWindow(40))), 97, 300],
  [
    'documents',
    and(causal(), documents(Int32Array.from({ length: 150 }, (_, i) => (i < 40 ? 0 : i < 41 ? 1 : 2)))),
    150,
    150,
  ],
] as const) {
  test(`subgroup-matrix twin with a block mask: ${name}, Nq=${Nq} Nk=${Nk}`, () => {
    const seed = Date.now() % 10000;
    const q = randomNormal([4, Nq, 64], seed, 'f16', 1.5);
    const k = randomNormal([2, Nk, 64], seed + 1, 'f16', 1.5);
    const v = randomNormal([2, Nk, 64], seed + 2, 'f16');
    const s = attentionShape(q, k, v, { causal: false });
    const blockMask = buildBlockMask(mask, Nq, Nk, SGMAT_ROWS, 32);
    const got = flashAttentionCpu(q, k, v, s, { ...subgroupMatrixTwin, blockMask });
    const filter = (i: number, j: number) => referenceVisible(mask, Nk - Nq + i, j);
    assertMatchesReference(
      got,
      referenceAttention(q, k, v, { causal: false }, filter),
      naiveHalfAttention(q, k, v, { causal: false }, filter),
      `seed ${seed}`,
    );
  });
}
