// Weights that hold a NaN or an infinity are refused at load (model/load/finite.ts), in every stored type:
// float tensors element by element, quantised ones by their f16 block scales (the only part that can be
// non-finite), wherever in the block the format keeps them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NonFiniteError } from '../src/errors.js';
import { checkFiniteWeights } from '../src/model/load/finite.js';
import type { ModelWeights } from '../src/model/types.js';

const F16_ONE = [0x00, 0x3c];
const F16_NAN = [0x01, 0x7e];
const F16_INF = [0x00, 0x7c];
/** Block bytes and f16 scale offsets, restated from ggml's layouts (not read from finite.ts). */
const BLOCKS: Record<string, [number, number[]]> = {
  q8_0: [34, [0]],
  q4_0: [18, [0]],
  q4_k: [144, [0, 2]],
  q5_k: [176, [0, 2]],
  q6_k: [210, [208]],
};

/** Three blocks of `dtype`, every non-scale byte 0xff (as a NaN's bits would be), scales 1.0. */
function blocks(dtype: string): Uint8Array {
  const [bytes, scales] = BLOCKS[dtype];
  const b = new Uint8Array(3 * bytes).fill(0xff);
  for (let k = 0; k < 3; k++) for (const s of scales) b.set(F16_ONE, k * bytes + s);
  return b;
}

function weights(t: { name: string; dtype: string; bytes: Uint8Array }): ModelWeights {
  const ok = { name: 'output_norm.weight', dtype: 'f32', bytes: new Uint8Array(new Float32Array([1, 2]).buffer) };
  return { tokenEmbedding: ok, outputNorm: ok, layers: [{ attnQ: t }] } as unknown as ModelWeights;
}

const refused = (name: string) => (e: unknown) => e instanceof NonFiniteError && new RegExp(name).test(String(e));

test('float weights: a NaN or an infinity anywhere is refused, naming the tensor', () => {
  const f32 = new Float32Array([1, -2, 3e38, 0]);
  checkFiniteWeights(weights({ name: 'blk.0.q', dtype: 'f32', bytes: new Uint8Array(f32.buffer) }), 'm');
  for (const bad of [Number.NaN, Infinity, -Infinity]) {
    const x = new Float32Array([1, 2, bad, 4]);
    assert.throws(
      () => checkFiniteWeights(weights({ name: 'blk.0.q', dtype: 'f32', bytes: new Uint8Array(x.buffer) }), 'm'),
      refused('blk\\.0\\.q.*byte 8'),
    );
  }
  const half = (bits: number[]) => new Uint8Array([...F16_ONE, ...bits]);
  assert.throws(
    () => checkFiniteWeights(weights({ name: 'h', dtype: 'f16', bytes: half(F16_INF) }), 'm'),
    refused('h'),
  );
  assert.throws(() => checkFiniteWeights(weights({ name: 'b', dtype: 'bf16', bytes: half([0xc0, 0x7f]) }), 'm'));
});

test('quantised weights: a non-finite block scale is refused in each format, quantised bits never are', () => {
  for (const dtype of Object.keys(BLOCKS)) {
    checkFiniteWeights(weights({ name: `w.${dtype}`, dtype, bytes: blocks(dtype) }), 'm');
    const [bytes, scales] = BLOCKS[dtype];
    for (const s of scales)
      for (const bad of [F16_NAN, F16_INF]) {
        const b = blocks(dtype);
        b.set(bad, 2 * bytes + s); // the last block
        assert.throws(
          () => checkFiniteWeights(weights({ name: `w.${dtype}`, dtype, bytes: b }), 'm'),
          refused(`w\\.${dtype}.*byte ${2 * bytes + s}`),
          `${dtype} scale at ${s}`,
        );
      }
  }
});
