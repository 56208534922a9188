// Random llama.cpp blocks for the quantisation tests (test/quant.test.ts on the CPU, test/quant-kernels.test.ts on
// WebGPU): every byte random, then each block's f16 scales set to finite halves drawn by the caller's `scale`.
import { toHalfBits } from '../src/f16.js';
import { QUANT_REFERENCE, type QuantName } from '../src/reference/quant-reference.js';

/** Where each format keeps its f16 scales (byte offsets in a block). */
const HALF_FIELDS: Record<QuantName, number[]> = { q4_0: [0], q8_0: [0], q4_k: [0, 2], q5_k: [0, 2], q6_k: [208] };

/** xorshift32 in [0, 1), seeded: the tests' inputs repeat run to run. */
export function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

/** `blocks` random blocks of `name`, each f16 scale `scale(rand)`. */
export function randomBlocks(
  name: QuantName,
  blocks: number,
  seed: number,
  scale: (rand: () => number) => number,
): Uint8Array {
  const f = QUANT_REFERENCE[name];
  const rand = xorshift(seed);
  const b = new Uint8Array(blocks * f.bytes);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
  for (let k = 0; k < blocks; k++)
    for (const at of HALF_FIELDS[name]) {
      const bits = toHalfBits(scale(rand));
      b[k * f.bytes + at] = bits & 255;
      b[k * f.bytes + at + 1] = bits >> 8;
    }
  return b;
}
