// .npy reading and writing, f16 codecs, method specs and shape errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeNpy, parseNpy } from '../src/io/npy.js';
import { fromHalfBits, toHalfBits, float32ToHalf, halfToFloat32 } from '../src/f16.js';
import { parseMethodSpec, formatMethodSpec } from '../src/attention/spec.js';
import { attentionShape } from '../src/spine/problem.js';
import { InputError, ShapeError, SpecError } from '../src/errors.js';
import { randomNormal, tensor } from '../src/tensor.js';

test('npy round trip, f32 and f16, odd shapes', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    const t = randomNormal([3, 5, 7], 1, dtype);
    const back = parseNpy(encodeNpy(t));
    assert.deepEqual(back.shape, [3, 5, 7]);
    assert.equal(back.dtype, dtype);
    assert.deepEqual([...back.data], [...t.data]);
  }
  const scalarLike = parseNpy(encodeNpy(tensor([4], 'f32', new Float32Array([1, 2, 3, 4]))));
  assert.deepEqual([...scalarLike.data], [1, 2, 3, 4]);
});

test('npy files read from disk keep their data (Node buffers are pooled views)', async () => {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { readNpy, writeNpy } = await import('../src/io/npy.js');
  const file = join(mkdtempSync(join(tmpdir(), 'npy-')), 'a.npy');
  const t = randomNormal([3, 4, 5], 9, 'f16');
  writeNpy(file, t);
  assert.deepEqual([...readNpy(file).data], [...t.data]);
});

test('npy header is 64-byte aligned as numpy writes it', () => {
  const bytes = encodeNpy(tensor([2, 3], 'f32'));
  const headerLen = new DataView(bytes.buffer).getUint16(8, true);
  assert.equal((10 + headerLen) % 64, 0);
});

test('malformed npy files get InputErrors', () => {
  const good = encodeNpy(tensor([2, 3], 'f32'));
  assert.throws(() => parseNpy(new Uint8Array([1, 2, 3])), InputError);
  assert.throws(() => parseNpy(good.slice(0, good.length - 4)), /data bytes/);
  const asText = (b: Uint8Array) => String.fromCharCode(...b);
  const swap = (from: string, to: string) => Uint8Array.from(asText(good).replace(from, to), (c) => c.charCodeAt(0));
  assert.throws(() => parseNpy(swap("'<f4'", "'<i4'")), /int|dtype/);
  assert.throws(() => parseNpy(swap('False', 'True ')), /Fortran/);
});

test('f16 codec: exact values, rounding to nearest even, subnormals, overflow', () => {
  assert.equal(toHalfBits(1), 0x3c00);
  assert.equal(toHalfBits(-2), 0xc000);
  assert.equal(toHalfBits(65504), 0x7bff);
  assert.equal(toHalfBits(65520), 0x7c00); // rounds up to infinity
  assert.equal(toHalfBits(2 ** -24), 0x0001);
  assert.equal(toHalfBits(1 + 2 ** -11), 0x3c00); // tie goes to even
  assert.equal(toHalfBits(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(fromHalfBits(0x3555), 0.333251953125);
  assert.ok(Number.isNaN(fromHalfBits(0x7e00)));
  const xs = Float32Array.from({ length: 1000 }, (_, i) => (i - 500) / 37);
  const back = halfToFloat32(float32ToHalf(xs));
  for (let i = 0; i < xs.length; i++) assert.ok(Math.abs(back[i] - xs[i]) <= Math.abs(xs[i]) * 2 ** -11 + 1e-7);
  // The array path (normal values from the bits) equals toHalfBits on random bit patterns of every exponent,
  // ties, the normal/subnormal edge and the overflow edge.
  const words = new Uint32Array(200000);
  let s = 12345;
  for (let i = 0; i < words.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    words[i] = i % 4 === 0 ? (s & 0xffffe000) | 0x1000 : s; // every fourth a tie
  }
  words.set([0x38800000, 0x387fffff, 0x477fefff, 0x477ff000, 0x477fe000, 0x7f800000, 0x7fc00000, 0x80000000]);
  const fs = new Float32Array(words.buffer);
  const fast = float32ToHalf(fs);
  for (let i = 0; i < fs.length; i++)
    if (fast[i] !== toHalfBits(fs[i])) assert.fail(`${fs[i]}: ${fast[i]} vs ${toHalfBits(fs[i])}`);
});

test('method specs parse, print and reject unknown names and keys', () => {
  assert.deepEqual(parseMethodSpec('dense'), { name: 'dense', params: {} });
  assert.deepEqual(parseMethodSpec('flash:variant=portable'), { name: 'flash', params: { variant: 'portable' } });
  assert.equal(formatMethodSpec(parseMethodSpec('flash:variant=portable')), 'flash:variant=portable');
  assert.throws(() => parseMethodSpec('sparse'), SpecError);
  assert.throws(() => parseMethodSpec('flash:tile=3'), /no key 'tile'/);
  assert.throws(() => parseMethodSpec('flash:variant'), /key=value/);
});

test('shape errors say what is wrong', () => {
  const q = tensor([4, 5, 8], 'f32');
  assert.throws(
    () => attentionShape(q, tensor([3, 5, 8], 'f32'), tensor([3, 5, 8], 'f32')),
    /multiple of key\/value heads/,
  );
  assert.throws(() => attentionShape(q, tensor([2, 5, 8], 'f32'), tensor([2, 6, 8], 'f32')), ShapeError);
  assert.throws(() => attentionShape(q, tensor([2, 5, 4], 'f32'), tensor([2, 5, 4], 'f32')), /head dim/);
  assert.throws(() => attentionShape(tensor([5, 8], 'f32'), q, q), /3 dims/);
  assert.throws(() => attentionShape(q, tensor([2, 5, 8], 'f16'), tensor([2, 5, 8], 'f16')), /dtype/);
});
