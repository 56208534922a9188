// Decoding through the CPU layer of a window or sinks spec (attention/layers/kv-layer-cpu.ts, a ring of what a
// query still sees) equals windowed attention over the whole sequence, and the cache stops growing once it
// holds sinks + window + 1 tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuKvLayer } from '../src/attention/layers/kv-layer-cpu.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { and, causal, or, sinkTokens, slidingWindow } from '../src/spine/mask.js';
import { referenceVisible } from '../src/reference/mask-reference.js';
import { maxAbsDiff, referenceAttention } from '../src/reference/attention.js';
import { randomNormal, type Tensor } from '../src/tensor.js';

/** Rows [from, to) of every head of t [H, N, D], as [H, to - from, D]. */
export function tokens(t: Tensor, from: number, to: number): Float32Array {
  const [h, n, d] = t.shape;
  const out = new Float32Array(h * (to - from) * d);
  for (let x = 0; x < h; x++)
    out.set((t.data as Float32Array).subarray((x * n + from) * d, (x * n + to) * d), x * (to - from) * d);
  return out;
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
    const spec = parseMethodSpec(sinks ? `sinks:tokens=${sinks},left=${window}` : `window:left=${window}`);
    const layer = new CpuKvLayer({ heads: H, kvHeads: Hkv, headDim: D, maxTokens: N, chunk: 8, dtype: 'f32' }, spec);
    const held = 2 * Hkv * (sinks + window + 1) * D * 4;
    const step = (from: number, to: number) => {
      const out = new Float32Array(H * (to - from) * D).fill(Number.NaN);
      const chunk = { q: tokens(q, from, to), k: tokens(k, from, to), v: tokens(v, from, to), out };
      return layer.forward({ ...chunk, start: from, tokens: to - from }).then(() => out);
    };
    const expected = (from: number, to: number) =>
      ref.o.filter((_, x) => Math.floor(x / D) % N >= from && Math.floor(x / D) % N < to);
    const prefill = 5;
    assert.ok(maxAbsDiff(await step(0, prefill), expected(0, prefill)) < 1e-5);
    for (let i = prefill; i < N; i++) {
      const o = await step(i, i + 1);
      assert.ok(layer.cacheBytes <= held, `step ${i}: ${layer.cacheBytes} bytes held`);
      assert.ok(maxAbsDiff(o, expected(i, i + 1)) < 1e-5, `step ${i}: ${maxAbsDiff(o, expected(i, i + 1))}`);
    }
    assert.equal(layer.cacheBytes, held);
  });
}
