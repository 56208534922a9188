// Decoding through the windowed KV cache equals windowed attention over the whole sequence, and the
// cache's memory stops growing once it holds sinks + window + 1 tokens.
import { referenceVisible } from '../src/reference/mask-reference.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WindowKVCache } from '../src/attention/window-cache.js';
import { flashAttention } from '../src/attention/flash.js';
import { and, causal, maskAllows, or, sinkTokens, slidingWindow } from '../src/spine/mask.js';
import { referenceAttention, maxAbsDiff } from '../src/reference/attention.js';
import { cpuDevice } from '../src/runtime/device.js';
import { randomNormal, tensor, type Tensor } from '../src/tensor.js';

function token(t: Tensor, i: number): Tensor {
  const [h, n, d] = t.shape;
  const out = new Float32Array(h * d);
  for (let x = 0; x < h; x++) out.set((t.data as Float32Array).subarray((x * n + i) * d, (x * n + i + 1) * d), x * d);
  return tensor([h, 1, d], 'f32', out);
}

for (const [window, sinks] of [
  [7, 0],
  [16, 4],
  [0, 2],
]) {
  test(`decode with window ${window} and ${sinks} sinks matches the full-sequence reference`, async () => {
    const [H, Hkv, N, D] = [4, 2, 60, 32];
    const q = randomNormal([H, N, D], 31),
      k = randomNormal([Hkv, N, D], 32),
      v = randomNormal([Hkv, N, D], 33);
    const mask = and(causal(), or(sinkTokens(sinks), slidingWindow(window)));
    const ref = referenceAttention(q, k, v, { causal: false }, (i, j) => referenceVisible(mask, i, j));
    const cache = new WindowKVCache(Hkv, D, window, sinks);
    const prefill = 5;
    cache.append(
      tensor([Hkv, prefill, D], 'f32', sliceTokens(k, 0, prefill)),
      tensor([Hkv, prefill, D], 'f32', sliceTokens(v, 0, prefill)),
    );
    let bytes = cache.bytes;
    for (let i = prefill; i < N; i++) {
      cache.append(token(k, i), token(v, i));
      assert.equal(cache.bytes, bytes, 'no allocation per token');
      bytes = cache.bytes;
      assert.ok(cache.cached <= sinks + window + 1);
      const { k: ck, v: cv, positions } = cache.view();
      for (const p of positions) assert.ok(maskAllows(mask, i, p), `cached position ${p} is visible from ${i}`);
      const state = await flashAttention(cpuDevice, token(q, i), ck, cv, { causal: false });
      const expected = {
        o: ref.o.filter((_, x) => Math.floor(x / D) % N === i),
        lse: ref.lse.filter((_, x) => x % N === i),
      };
      assert.ok(maxAbsDiff(state.o, expected.o) < 1e-5, `step ${i}: ${maxAbsDiff(state.o, expected.o)}`);
      assert.ok(maxAbsDiff(state.lse, expected.lse) < 1e-5);
    }
    assert.equal(cache.bytes, 2 * Hkv * (sinks + window + 1) * D * 4);
  });
}

function sliceTokens(t: Tensor, from: number, to: number): Float32Array {
  const [h, n, d] = t.shape;
  const out = new Float32Array(h * (to - from) * d);
  for (let x = 0; x < h; x++)
    out.set((t.data as Float32Array).subarray((x * n + from) * d, (x * n + to) * d), x * (to - from) * d);
  return out;
}
