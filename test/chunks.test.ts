// Inputs larger than one binding run in chunks of key/value heads and still match the reference.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { attentionShape } from '../src/spine/problem.js';
import { kvHeadsPerChunk, runInHeadChunks } from '../src/attention/gpu-chunks.js';
import { flashAttentionGpu } from '../src/attention/flash.js';
import { denseAttentionGpu } from '../src/attention/dense.js';
import { referenceAttention } from '../src/reference/attention.js';
import { randomNormal } from '../src/tensor.js';
import { UnsupportedError } from '../src/errors.js';
import { assertMatchesReference, webgpuDevice } from './support.js';

const gpu = (await webgpuDevice())?.gpu;
after(async () => (await webgpuDevice())?.destroy());

test('chunk planning respects the binding limit', () => {
  const s = { heads: 32, kvHeads: 8, queries: 131072, keys: 131072, headDim: 128, causal: true, scale: 1 };
  // One KV head brings 4 query heads: o is 4 x 128K x 128 x 4 bytes = 256 MiB, the largest binding.
  assert.equal(kvHeadsPerChunk(s, 2, 2 ** 31 - 4), 7);
  assert.equal(kvHeadsPerChunk(s, 2, 2 ** 40), 8);
  assert.throws(() => kvHeadsPerChunk(s, 2, 2 ** 27), UnsupportedError);
});

test('flash and dense in several chunks match the reference', { skip: gpu ? false : 'no WebGPU adapter' }, async () => {
  const q = randomNormal([6, 61, 64], 21);
  const k = randomNormal([3, 61, 64], 22);
  const v = randomNormal([3, 61, 64], 23);
  const s = attentionShape(q, k, v);
  const ref = referenceAttention(q, k, v);
  const oneHead = 2 * 61 * 64 * 4; // two query heads' f32 output per KV head
  for (const kernel of [flashAttentionGpu, denseAttentionGpu]) {
    const got = await runInHeadChunks(gpu!, q, k, v, s, (g, x) => kernel(g, x), oneHead);
    assertMatchesReference(got, ref, undefined, kernel.name);
  }
});
