// Q4_0, Q4_K, Q5_K and Q6_K weights (llama.cpp's blocks, quant-blocks.ts) regrouped for the GPU. The file
// blocks (18, 144, 176 and 210 bytes) interleave scales and quants in an order made for CPU SIMD, and two of
// them are not 4-byte aligned; the kernels want every value's bits at a position computed from its index
// alone. So one u32 buffer holds planes, each indexed by the value's row-major index i = row * cols + col:
//   lo     4 low bits of every quant, 8 to a word, value i at bits 4 (i % 8) of word i / 8 (natural order:
//          a 16-byte load is 32 consecutive values, one Q4_0 block or one K sub-block);
//   hi     Q5_K: the fifth bit, value i at bit i % 32 of word i / 32;
//          Q6_K: the two high bits, value i at bits 2 (i % 16) of word i / 16;
//   sc     Q4_K/Q5_K: sub-block s (32 values) has its 6-bit scale at bits 16 (s % 2) and 6-bit min at
//          bits 16 (s % 2) + 8 of word s / 2; Q6_K: group g (16 values) its int8 scale at bits 8 (g % 4)
//          of word g / 4;
//   d      f32: Q4_0 one per block of 32; Q4_K/Q5_K d and dmin per block of 256 (words 2b, 2b + 1); Q6_K
//          d per block of 256 (the f16 scales widened on the host: exact, and no f16 decoding in WGSL).
// Values (llama.cpp's formulas): Q4_0 d (lo - 8); Q4_K d sc lo - dmin m; Q5_K d sc (lo + 16 hi) - dmin m;
// Q6_K d sc (lo + 16 hi - 32). Bytes per weight: 0.625, 0.594, 0.719, 0.828 (files: 0.5625, 0.5625,
// 0.6875, 0.82; f16 2). The WGSL that reads the planes is kernels/quant-wgsl.ts.
import { ShapeError } from '../errors.js';
import { HALF_TABLE } from './quant-blocks.js';

export const GPU_QUANTS = ['q4_0', 'q4_k', 'q5_k', 'q6_k'] as const;
export type GpuQuant = (typeof GPU_QUANTS)[number];

export function isGpuQuant(dtype: string): dtype is GpuQuant {
  return (GPU_QUANTS as readonly string[]).includes(dtype);
}

/** Values per file block. */
export const QUANT_BLOCK_VALUES: Record<GpuQuant, number> = { q4_0: 32, q4_k: 256, q5_k: 256, q6_k: 256 };
const BLOCK_BYTES: Record<GpuQuant, number> = { q4_0: 18, q4_k: 144, q5_k: 176, q6_k: 210 };

/** Word offsets of the planes for `values` = rows * cols values, and the total words. */
export function quantPlanes(q: GpuQuant, values: number): { hi: number; sc: number; d: number; words: number } {
  const hi = values / 8;
  const sc = hi + (q === 'q5_k' ? values / 32 : q === 'q6_k' ? values / 16 : 0);
  const d = sc + (q === 'q4_0' ? 0 : values / 64);
  const words = d + (q === 'q4_0' ? values / 32 : q === 'q6_k' ? values / 256 : values / 128);
  return { hi, sc, d, words };
}

/** Bytes the GPU layout of a [rows, cols] matrix takes. */
export function quantGpuBytes(q: GpuQuant, rows: number, cols: number): number {
  return 4 * quantPlanes(q, rows * cols).words;
}

/** Null when a row of `cols` is whole blocks of the format, else why not. */
export function quantColsUnsupported(q: GpuQuant, cols: number): string | null {
  const n = QUANT_BLOCK_VALUES[q];
  return cols % n === 0 ? null : `K = ${cols} is not whole ${q.toUpperCase()} blocks of ${n}`;
}

/** The GPU planes of a matrix in its file encoding (`bytes`: rows * cols / block values blocks). */
export function quantTilesFromBlocks(
  q: GpuQuant,
  bytes: Uint8Array,
  rows: number,
  cols: number,
  name = 'weights',
): Uint32Array {
  const why = quantColsUnsupported(q, cols);
  if (why) throw new ShapeError(`${name}: ${why}`);
  const n = rows * cols;
  const blockValues = QUANT_BLOCK_VALUES[q];
  const blocks = n / blockValues;
  const size = BLOCK_BYTES[q];
  if (bytes.byteLength < blocks * size)
    throw new ShapeError(`${name}: ${blocks} ${q.toUpperCase()} blocks need ${blocks * size} bytes`);
  const p = quantPlanes(q, n);
  const out = new Uint32Array(p.words);
  const f32 = new Float32Array(out.buffer);
  const half = (at: number) => HALF_TABLE[bytes[at] | (bytes[at + 1] << 8)];
  // Quant q of value i (0..63: 4 low bits to lo, the rest to hi).
  const put = (i: number, v: number) => {
    out[i >> 3] |= (v & 15) << (4 * (i & 7));
    if (q === 'q5_k') out[p.hi + (i >> 5)] |= (v >> 4) << (i & 31);
    else if (q === 'q6_k') out[p.hi + (i >> 4)] |= (v >> 4) << (2 * (i & 15));
  };
  for (let b = 0; b < blocks; b++) {
    const at = b * size;
    const i0 = b * blockValues;
    if (q === 'q4_0') {
      f32[p.d + b] = half(at);
      for (let j = 0; j < 16; j++) {
        put(i0 + j, bytes[at + 2 + j] & 15);
        put(i0 + j + 16, bytes[at + 2 + j] >> 4);
      }
    } else if (q === 'q6_k') {
      f32[p.d + b] = half(at + 208);
      for (let g = 0; g < 16; g++) out[p.sc + ((i0 / 16 + g) >> 2)] |= bytes[at + 192 + g] << (8 * ((i0 / 16 + g) & 3));
      for (let h = 0; h < 2; h++)
        for (let l = 0; l < 32; l++) {
          const lo0 = bytes[at + 64 * h + l];
          const lo1 = bytes[at + 64 * h + l + 32];
          const hi = bytes[at + 128 + 32 * h + l];
          const i = i0 + 128 * h + l;
          put(i, (lo0 & 15) | ((hi & 3) << 4));
          put(i + 32, (lo1 & 15) | (((hi >> 2) & 3) << 4));
          put(i + 64, (lo0 >> 4) | (((hi >> 4) & 3) << 4));
          put(i + 96, (lo1 >> 4) | (((hi >> 6) & 3) << 4));
        }
    } else {
      f32[p.d + 2 * b] = half(at);
      f32[p.d + 2 * b + 1] = half(at + 2);
      const s = at + 4;
      const qh = at + 16;
      const qs = at + (q === 'q5_k' ? 48 : 16);
      for (let j = 0; j < 8; j++) {
        // The 12 scale bytes pack 8 six-bit (scale, min) pairs: sub-blocks 4..7 borrow the top 2 bits of 0..3.
        const sc = j < 4 ? bytes[s + j] & 63 : (bytes[s + j + 4] & 15) | ((bytes[s + j - 4] >> 6) << 4);
        const m = j < 4 ? bytes[s + j + 4] & 63 : (bytes[s + j + 4] >> 4) | ((bytes[s + j] >> 6) << 4);
        const sub = i0 / 32 + j;
        out[p.sc + (sub >> 1)] |= (sc | (m << 8)) << (16 * (sub & 1));
        for (let l = 0; l < 32; l++) {
          let v = (bytes[qs + 32 * (j >> 1) + l] >> (4 * (j & 1))) & 15;
          if (q === 'q5_k') v |= ((bytes[qh + l] >> j) & 1) << 4;
          put(i0 + 32 * j + l, v);
        }
      }
    }
  }
  return out;
}
