// Decoding over a cache read in place: the split-KV flash decoding kernel and the flash kernels' kv row
// stride, against the float64 reference on odd shapes (N 97, 1023, 4097; D 64, 128, 80; GQA), with the
// cache rows past the keys poisoned with NaN (a kernel that reads them, or ignores the stride, fails).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { naiveHalfAttention, referenceAttention } from '../src/reference/attention.js';
import { float32ToHalf, halfToFloat32 } from '../src/f16.js';
import { randomNormal, tensor, type DType, type Tensor } from '../src/tensor.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { DECODE_VERSIONS, flashDecodeGpu, type DecodeVersion } from '../src/attention/flash-decode.js';
import { flashAttentionGpu } from '../src/attention/flash.js';
import { decodeSplits } from '../src/kernels/flash-decode-wgsl.js';
import { assertMatchesReference, webgpuDevice } from './support.js';

const device = await webgpuDevice();
let seed = Date.now() % 100000;

/** [Hkv, N, D] rows laid into a cache of `stride` rows per head; the rows after N are NaN. */
function inCache(t: Tensor, stride: number, dtype: DType): Uint16Array | Float32Array {
  const [H, N, D] = t.shape;
  const out = new Float32Array(H * stride * D).fill(Number.NaN);
  for (let h = 0; h < H; h++) out.set((t.data as Float32Array).subarray(h * N * D, (h + 1) * N * D), h * stride * D);
  return dtype === 'f16' ? float32ToHalf(out) : out;
}

interface Case {
  heads: number;
  kvHeads: number;
  queries: number;
  keys: number;
  headDim: number;
  dtype: DType;
}

async function run(gpu: GpuContext, c: Case, kernel: DecodeVersion | 'flash', lanes?: number): Promise<void> {
  const s = seed++;
  const stride = c.keys + 13;
  // f16 runs take inputs already rounded to f16, so the reference sees what the kernel reads.
  const round = (t: Tensor) =>
    c.dtype === 'f16' ? tensor(t.shape, 'f32', halfToFloat32(float32ToHalf(t.data as Float32Array))) : t;
  const q = round(randomNormal([c.heads, c.queries, c.headDim], s));
  const k = round(randomNormal([c.kvHeads, c.keys, c.headDim], s + 1));
  const v = round(randomNormal([c.kvHeads, c.keys, c.headDim], s + 2));
  const causal = kernel === 'flash';
  const ref = referenceAttention(q, k, v, { causal });
  const naive = c.dtype === 'f16' ? naiveHalfAttention(q, k, v, { causal }) : undefined;
  const qData = c.dtype === 'f16' ? float32ToHalf(q.data as Float32Array) : (q.data as Float32Array);
  const bufs = [
    await gpu.upload(qData, 'q'),
    await gpu.upload(inCache(k, stride, c.dtype), 'k cache'),
    await gpu.upload(inCache(v, stride, c.dtype), 'v cache'),
    await gpu.upload(new Float32Array(c.heads * c.queries * c.headDim).fill(Number.NaN), 'o'),
    await gpu.upload(new Float32Array(c.heads * c.queries).fill(Number.NaN), 'lse'),
  ];
  const [qb, kb, vb, ob, lb] = bufs;
  const shape = { ...c, causal, scale: 1 / Math.sqrt(c.headDim) };
  const x = { q: qb, k: kb, v: vb, o: ob, lse: lb, shape, dtype: c.dtype };
  try {
    if (kernel === 'flash') await flashAttentionGpu(gpu, x, 'auto', undefined, stride);
    else await flashDecodeGpu(gpu, x, stride, kernel, lanes);
    const o = new Float32Array(await gpu.read(ob, c.heads * c.queries * c.headDim * 4));
    const lse = new Float32Array(await gpu.read(lb, c.heads * c.queries * 4));
    assertMatchesReference({ o, lse } as never, ref, naive, `seed ${s}`);
  } finally {
    bufs.forEach((b) => gpu.release(b));
  }
}

describe('decoding over a cache read in place', { skip: device ? false : 'no WebGPU adapter' }, () => {
  const gpu = device?.gpu as GpuContext;

  test('splits cover every key once, in multiples of the tile', () => {
    for (const n of [1, 97, 256, 1023, 4097, 131072]) {
      const { splits, keysPerSplit } = decodeSplits(n);
      assert.ok(splits * keysPerSplit >= n && (splits - 1) * keysPerSplit < n && splits <= 128, `${n}`);
    }
  });

  // GQA groups 4, 4, 2, 4, 3, 1 and 16 (gqa-v2 packs 8 query heads per workgroup at most: 16 takes two).
  const cases: Case[] = [
    { heads: 8, kvHeads: 2, queries: 1, keys: 97, headDim: 64, dtype: 'f32' },
    { heads: 4, kvHeads: 1, queries: 1, keys: 1023, headDim: 128, dtype: 'f32' },
    { heads: 6, kvHeads: 3, queries: 1, keys: 4097, headDim: 80, dtype: 'f32' },
    { heads: 8, kvHeads: 2, queries: 1, keys: 4097, headDim: 128, dtype: 'f16' },
    { heads: 6, kvHeads: 2, queries: 1, keys: 1023, headDim: 37, dtype: 'f16' },
    { heads: 3, kvHeads: 3, queries: 1, keys: 300, headDim: 64, dtype: 'f16' },
    { heads: 16, kvHeads: 1, queries: 1, keys: 700, headDim: 64, dtype: 'f32' },
  ];
  for (const version of DECODE_VERSIONS)
    for (const c of cases)
      test(`split-KV decoding ${version}: Hq ${c.heads} Hkv ${c.kvHeads} N ${c.keys} D ${c.headDim} ${c.dtype}`, () =>
        run(gpu, c, version));

  // decode-v3's own paths: groups its power-of-2 heads per workgroup leave idle (5 -> 8, 12 -> 2 x 8), word
  // widths (f16 D 80 / 36 / 38 / 37: 8, 4, 2, 1 elements; f32 D 66: 2, D 37: 1), tiles of 128 that the keys do
  // not fill, splits of several tiles (40000 keys: 192 per split), and fewer lanes per key (1: no subgroups; small
  // D, since lavapipe takes 5-80 s to compile those variants at larger D, a compile cost the device does not share).
  const v3Cases: Array<Case & { lanes?: number }> = [
    { heads: 5, kvHeads: 1, queries: 1, keys: 1500, headDim: 128, dtype: 'f16' },
    { heads: 24, kvHeads: 2, queries: 1, keys: 333, headDim: 80, dtype: 'f16' },
    { heads: 4, kvHeads: 2, queries: 1, keys: 513, headDim: 36, dtype: 'f16' },
    { heads: 4, kvHeads: 1, queries: 1, keys: 257, headDim: 38, dtype: 'f16' },
    { heads: 3, kvHeads: 1, queries: 1, keys: 129, headDim: 66, dtype: 'f32' },
    { heads: 2, kvHeads: 2, queries: 1, keys: 1023, headDim: 37, dtype: 'f32' },
    { heads: 8, kvHeads: 2, queries: 1, keys: 40000, headDim: 64, dtype: 'f16' },
    { heads: 8, kvHeads: 2, queries: 1, keys: 1023, headDim: 32, dtype: 'f16', lanes: 1 },
    { heads: 6, kvHeads: 2, queries: 1, keys: 700, headDim: 24, dtype: 'f32', lanes: 2 },
    { heads: 4, kvHeads: 1, queries: 1, keys: 300, headDim: 37, dtype: 'f16', lanes: 4 },
  ];
  for (const c of v3Cases)
    test(`split-KV decoding decode-v3 (lanes ${c.lanes ?? 'device'}): Hq ${c.heads} Hkv ${c.kvHeads} N ${c.keys} D ${c.headDim} ${c.dtype}`, () =>
      run(gpu, c, 'decode-v3', c.lanes));
  // decode-v4 is v3's generator with its rescale and merge unrolled: the paths that change them (idle heads, D 128's
  // 16 word columns, several tiles per split, 1 and 4 lanes with an odd D).
  for (const c of [v3Cases[0], v3Cases[6], v3Cases[7], v3Cases[9]])
    test(`split-KV decoding decode-v4 (lanes ${c.lanes ?? 'device'}): Hq ${c.heads} Hkv ${c.kvHeads} N ${c.keys} D ${c.headDim} ${c.dtype}`, () =>
      run(gpu, c, 'decode-v4', c.lanes));

  for (const c of [
    { heads: 4, kvHeads: 2, queries: 5, keys: 97, headDim: 64, dtype: 'f32' as const },
    { heads: 2, kvHeads: 1, queries: 3, keys: 1023, headDim: 80, dtype: 'f16' as const },
  ])
    test(`flash with a kv row stride: Hq ${c.heads} Nq ${c.queries} N ${c.keys} D ${c.headDim} ${c.dtype}`, () =>
      run(gpu, c, 'flash'));
});
