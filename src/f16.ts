// IEEE 754 half-precision codecs: Node 20 has no Float16Array, so f16 data lives in Uint16Array.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds a number to the nearest f16 (ties to even) and returns its bits. */
export function toHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let h = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // may carry into the exponent: correct
  return sign | h;
}

/** Decodes f16 bits to a number. */
export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

const decodeTable = new Float32Array(65536);
for (let i = 0; i < 65536; i++) decodeTable[i] = fromHalfBits(i);

export function halfToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = decodeTable[bits[i]];
  return out;
}

/** f32 bits of the smallest normal f16 (2^-14) and of the first value that rounds to infinity (65520). */
const NORMAL_MIN_BITS = 0x38800000;
const OVERFLOW_BITS = 0x477ff000;

export function float32ToHalf(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  if (!(values instanceof Float32Array)) {
    for (let i = 0; i < values.length; i++) out[i] = toHalfBits(values[i]);
    return out;
  }
  // The model's weights go through here (a billion values for a 1B model): normal f16 values straight from
  // the f32 bits, rounding to nearest even by adding 0xfff plus the kept mantissa's last bit before the
  // shift (a carry into the exponent is the right result); subnormals, overflow and NaN take toHalfBits.
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i];
    const a = u & 0x7fffffff;
    out[i] =
      a >= NORMAL_MIN_BITS && a < OVERFLOW_BITS
        ? ((u >>> 16) & 0x8000) | ((a + 0xfff + ((a >>> 13) & 1) - 0x38000000) >>> 13)
        : toHalfBits(values[i]);
  }
  return out;
}

/** Rounds a number through f16 and back: what a same-precision implementation sees. */
export function roundHalf(value: number): number {
  return decodeTable[toHalfBits(value)];
}
