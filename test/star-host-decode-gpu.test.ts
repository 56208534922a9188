// A WebGPU Star host layer's answers for decoding (caches/star-host-layer-flash-gpu.ts): one query over a context
// host's rows runs split-KV decoding where the one-process flash layer would (>= 256 rows), the tiled kernel below
// that and for several queries; each against the float64 reference over the same rows (odd counts: 97, 301, 1031).
// A query host's own part of a decoded token (causal over its rows, the token last) takes the same path.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceAttention } from '../src/reference/attention.js';
import { randomNormal, type Tensor } from '../src/tensor.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import type { LayerDims } from '../src/attention/layer.js';
import { StarHostFlashGpuLayer } from '../src/model/caches/star-host-layer-flash-gpu.js';
import type { HostLayerPlan } from '../src/model/caches/star-host-layer.js';
import { webgpuDevice } from './support.js';

const device = await webgpuDevice();
const [HEADS, KV_HEADS, D, CHUNK] = [8, 2, 32, 64];

/** Columns [from, to) of a [H, N, D] tensor as f32 data [H, to - from, D]. */
function rowsOf(t: Tensor, from: number, to: number): Float32Array {
  const [H, N, d] = t.shape;
  const out = new Float32Array(H * (to - from) * d);
  const x = t.data as Float32Array;
  for (let h = 0; h < H; h++) out.set(x.subarray((h * N + from) * d, (h * N + to) * d), h * (to - from) * d);
  return out;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Number.isNaN(a[i]) ? Infinity : Math.abs(a[i] - b[i]));
  return m;
}

/** A host-0 layer of a context of `rows` tokens (one block), filled through phase 1 in chunks. */
async function contextHost(gpu: GpuContext, rows: number, phase2: number, k: Tensor, v: Tensor) {
  const maxTokens = rows + phase2;
  const dims: LayerDims = { heads: HEADS, kvHeads: KV_HEADS, headDim: D, maxTokens, chunk: CHUNK, dtype: 'f32' };
  const plan: HostLayerPlan = {
    method: 'star',
    context: rows,
    block: rows,
    anchor: 4,
    anchorCopy: 0,
    capacity: rows + phase2,
    remotes: [],
  };
  const layer = await StarHostFlashGpuLayer.create(gpu, 0, dims, plan);
  const scratch = [
    await gpu.createBuffer(HEADS * CHUNK * D * 4, 'q'),
    await gpu.createBuffer(KV_HEADS * CHUNK * D * 4, 'k'),
    await gpu.createBuffer(KV_HEADS * CHUNK * D * 4, 'v'),
    await gpu.createBuffer(HEADS * CHUNK * D * 4, 'out'),
  ];
  const [qb, kb, vb, out] = scratch;
  const feed = async (start: number, T: number) => {
    gpu.write(qb, 0, randomNormal([HEADS, T, D], start + 7).data as Float32Array<ArrayBuffer>);
    gpu.write(kb, 0, rowsOf(k, start, start + T) as Float32Array<ArrayBuffer>);
    gpu.write(vb, 0, rowsOf(v, start, start + T) as Float32Array<ArrayBuffer>);
    await layer.forward({ q: qb, k: kb, v: vb, out, start, tokens: T });
  };
  for (let s = 0; s < rows; s += CHUNK) await feed(s, Math.min(CHUNK, rows - s));
  const done = () => {
    layer.destroy();
    scratch.forEach((b) => gpu.release(b));
  };
  return { layer, qb, kb, vb, out, feed, done };
}

describe('a WebGPU Star host layer decoding', { skip: device ? false : 'no WebGPU adapter' }, () => {
  const gpu = device?.gpu as GpuContext;
  for (const [rows, tokens, split] of [
    [97, 1, false],
    [301, 1, true],
    [1031, 1, true],
    [301, 3, false],
  ] as const)
    test(`a context host's answer: ${tokens} query(s) over ${rows} rows (${split ? 'split-KV' : 'tiled'})`, async () => {
      const k = randomNormal([KV_HEADS, rows, D], rows);
      const v = randomNormal([KV_HEADS, rows, D], rows + 1);
      const h = await contextHost(gpu, rows, 5, k, v); // 5 rows of room: the stride is not the row count
      try {
        const before = h.layer.splitDecodes;
        const q = randomNormal([HEADS, tokens, D], rows + 2);
        const got = await h.layer.contextState(q.data as Float32Array, tokens);
        assert.equal(h.layer.splitDecodes - before, split ? 1 : 0, 'the kernel the planner names for this shape ran');
        const ref = referenceAttention(q, k, v, { causal: false });
        const [dO, dL] = [maxDiff(got.o, ref.o), maxDiff(got.lse, ref.lse)];
        assert.ok(dO < 2e-5 && dL < 2e-5, `o within ${dO}, lse within ${dL} of the float64 reference`);
        // The next token's answer reuses the prepared call (same rows) with a new q.
        const q2 = randomNormal([HEADS, tokens, D], rows + 3);
        const got2 = await h.layer.contextState(q2.data as Float32Array, tokens);
        const ref2 = referenceAttention(q2, k, v, { causal: false });
        assert.ok(maxDiff(got2.o, ref2.o) < 2e-5 && maxDiff(got2.lse, ref2.lse) < 2e-5, 'the second answer');
      } finally {
        h.done();
      }
    });

  test("the query host's own part of a decoded token over 301 rows: split-KV decoding, causal over them", async () => {
    const rows = 300;
    const k = randomNormal([KV_HEADS, rows + 1, D], 11);
    const v = randomNormal([KV_HEADS, rows + 1, D], 12);
    const h = await contextHost(gpu, rows, 1, k, v);
    try {
      const before = h.layer.splitDecodes;
      const q = randomNormal([HEADS, 1, D], 13);
      gpu.write(h.kb, 0, rowsOf(k, rows, rows + 1) as Float32Array<ArrayBuffer>);
      gpu.write(h.vb, 0, rowsOf(v, rows, rows + 1) as Float32Array<ArrayBuffer>);
      gpu.write(h.qb, 0, q.data as Float32Array<ArrayBuffer>);
      await h.layer.forward({ q: h.qb, k: h.kb, v: h.vb, out: h.out, start: rows, tokens: 1 });
      assert.equal(h.layer.splitDecodes - before, 1);
      const o = new Float32Array(await gpu.read(h.out, HEADS * D * 4));
      const ref = referenceAttention(q, k, v, { causal: true });
      assert.ok(maxDiff(o, ref.o) < 2e-5, `o within ${maxDiff(o, ref.o)} of the float64 reference`);
      // The row it appended serves the next answer: 301 rows now.
      const q2 = randomNormal([HEADS, 1, D], 14);
      const got = await h.layer.contextState(q2.data as Float32Array, 1);
      const ref2 = referenceAttention(q2, k, v, { causal: false });
      assert.ok(maxDiff(got.o, ref2.o) < 2e-5 && maxDiff(got.lse, ref2.lse) < 2e-5);
    } finally {
      h.done();
    }
  });
});
