// Float64 references for llama.cpp's block quantisations, written per value from the formulas (ggml's
// dequantize_row_q4_0 / q4_K / q5_K / q6_K): each value says which bits it reads, so the loops of
// weights/quant-blocks.ts are checked by code that shares nothing with them, f16 decoding included.

/** IEEE half bits -> float64, from the definition (subnormals included). */
export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 31;
  const mantissa = bits & 1023;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

const u16 = (b: Uint8Array, at: number) => b[at] + 256 * b[at + 1];
const i8 = (v: number) => (v > 127 ? v - 256 : v);

/** Q4_K / Q5_K: the 6-bit scale and min of sub-block j, from the 12 scale bytes at s. */
function kScaleMin(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [b[s + j] % 64, b[s + j + 4] % 64];
  const scale = (b[s + j + 4] % 16) + 16 * Math.floor(b[s + j - 4] / 64);
  const min = Math.floor(b[s + j + 4] / 16) + 16 * Math.floor(b[s + j] / 64);
  return [scale, min];
}

/** Value i of the block at byte `at`. */
export const QUANT_REFERENCE = {
  q4_0: {
    values: 32,
    bytes: 18,
    value(b: Uint8Array, at: number, i: number): number {
      const byte = b[at + 2 + (i % 16)];
      const q = i < 16 ? byte % 16 : Math.floor(byte / 16);
      return halfToNumber(u16(b, at)) * (q - 8);
    },
  },
  q8_0: {
    values: 32,
    bytes: 34,
    value: (b: Uint8Array, at: number, i: number): number => halfToNumber(u16(b, at)) * i8(b[at + 2 + i]),
  },
  q4_k: {
    values: 256,
    bytes: 144,
    value: (b: Uint8Array, at: number, i: number): number => kValue(b, at, i, false),
  },
  q5_k: {
    values: 256,
    bytes: 176,
    value: (b: Uint8Array, at: number, i: number): number => kValue(b, at, i, true),
  },
  q6_k: {
    values: 256,
    bytes: 210,
    value(b: Uint8Array, at: number, i: number): number {
      const half = Math.floor(i / 128);
      const quarter = Math.floor((i % 128) / 32);
      const l = i % 32;
      const low = b[at + 64 * half + l + 32 * (quarter % 2)];
      const low4 = quarter < 2 ? low % 16 : Math.floor(low / 16);
      const high2 = Math.floor(b[at + 128 + 32 * half + l] / 4 ** quarter) % 4;
      // One int8 scale per 16 consecutive values.
      const scale = i8(b[at + 192 + Math.floor(i / 16)]);
      return halfToNumber(u16(b, at + 208)) * scale * (low4 + 16 * high2 - 32);
    },
  },
} as const;

function kValue(b: Uint8Array, at: number, i: number, fifthBit: boolean): number {
  const sub = Math.floor(i / 32); // 8 sub-blocks of 32; sub-blocks 2c and 2c+1 share bytes 32c.. of qs
  const l = i % 32;
  const qs = at + (fifthBit ? 48 : 16);
  const shifted = b[qs + 32 * Math.floor(sub / 2) + l];
  let q = sub % 2 === 0 ? shifted % 16 : Math.floor(shifted / 16);
  if (fifthBit) q += 16 * (Math.floor(b[at + 16 + l] / 2 ** sub) % 2);
  const [scale, min] = kScaleMin(b, at + 4, sub);
  return halfToNumber(u16(b, at)) * scale * q - halfToNumber(u16(b, at + 2)) * min;
}

export type QuantName = keyof typeof QUANT_REFERENCE;

/** A whole tensor [rows, cols] in float64. */
export function dequantizeReference(name: QuantName, bytes: Uint8Array, rows: number, cols: number): Float64Array {
  const f = QUANT_REFERENCE[name];
  const out = new Float64Array(rows * cols);
  const perRow = (cols / f.values) * f.bytes;
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++)
      out[r * cols + c] = f.value(bytes, r * perRow + Math.floor(c / f.values) * f.bytes, c % f.values);
  return out;
}
