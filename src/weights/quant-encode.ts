// Simple quantisers for llama.cpp's Q4_0, Q4_K, Q5_K and Q6_K blocks (round to nearest with per-block
// max/min scales; not llama.cpp's search for the best scales): tests build GGUF files with those tensors and
// `bench model --weights` its random weights. Bit placement follows the ggml layouts the reference
// (src/reference/quant-reference.ts) reads.
import { fromHalfBits, toHalfBits } from '../f16.js';

const roundHalf = (x: number) => fromHalfBits(toHalfBits(x));
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

function q4_0(x: Float32Array, out: Uint8Array, at: number): void {
  let max = 0;
  for (const v of x) if (Math.abs(v) > Math.abs(max)) max = v;
  const d = roundHalf(max / -8);
  writeHalf(out, at, d);
  for (let j = 0; j < 16; j++) {
    const q = (v: number) => clamp(d === 0 ? 8 : Math.round(v / d + 8), 0, 15);
    out[at + 2 + j] = q(x[j]) | (q(x[j + 16]) << 4);
  }
}

// Scratch of the K quantisers (a 1B model is 4M blocks: no allocation per block).
const subScale = new Float64Array(16);
const subMin = new Float64Array(16);
const codeSc = new Int32Array(16);
const codeM = new Int32Array(16);

/** Q4_K (bits 4) or Q5_K (bits 5): per sub-block of 32 a scale and a min, both 6-bit under f16 d, dmin. */
function kQuant(bits: 4 | 5) {
  const levels = 2 ** bits - 1;
  return (x: Float32Array, out: Uint8Array, at: number): void => {
    let maxScale = 0;
    let maxMin = 0;
    for (let s = 0; s < 8; s++) {
      let lo = 0;
      let hi = -Infinity;
      for (let l = 32 * s; l < 32 * s + 32; l++) {
        if (x[l] < lo) lo = x[l];
        if (x[l] > hi) hi = x[l];
      }
      subScale[s] = (hi - lo) / levels;
      subMin[s] = -lo;
      if (subScale[s] > maxScale) maxScale = subScale[s];
      if (-lo > maxMin) maxMin = -lo;
    }
    const d = roundHalf(maxScale / 63);
    const dmin = roundHalf(maxMin / 63);
    for (let s = 0; s < 8; s++) {
      codeSc[s] = clamp(d === 0 ? 0 : Math.round(subScale[s] / d), 0, 63);
      codeM[s] = clamp(dmin === 0 ? 0 : Math.round(subMin[s] / dmin), 0, 63);
    }
    const sc = codeSc;
    const m = codeM;
    writeHalf(out, at, d);
    writeHalf(out, at + 2, dmin);
    for (let j = 0; j < 4; j++) {
      out[at + 4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
      out[at + 8 + j] = m[j] | ((m[j + 4] >> 4) << 6);
      out[at + 12 + j] = (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4);
    }
    const qh = at + 16;
    const qs = at + (bits === 5 ? 48 : 16);
    for (let s = 0; s < 8; s++) {
      const step = d * sc[s];
      const inv = step === 0 ? 0 : 1 / step;
      const off = dmin * m[s];
      const shift = 4 * (s & 1);
      const row = qs + 32 * (s >> 1);
      for (let l = 0; l < 32; l++) {
        // Round to nearest, clamped to the levels (Math.round's floor(v + 0.5), as v >= -0.5 here or clamped).
        let q = Math.floor((x[32 * s + l] + off) * inv + 0.5);
        q = q < 0 ? 0 : q > levels ? levels : q;
        out[row + l] |= (q & 15) << shift;
        if (bits === 5) out[qh + l] |= (q >> 4) << s;
      }
    }
  };
}

function q6_K(x: Float32Array, out: Uint8Array, at: number): void {
  let maxScale = 0;
  for (let s = 0; s < 16; s++) {
    let amax = 0;
    for (let j = 0; j < 16; j++) amax = Math.max(amax, Math.abs(x[16 * s + j]));
    subScale[s] = amax / 31;
    if (subScale[s] > maxScale) maxScale = subScale[s];
  }
  const d = roundHalf(maxScale / 127);
  const sc = codeSc;
  for (let s = 0; s < 16; s++) sc[s] = clamp(d === 0 ? 0 : Math.round(subScale[s] / d), -128, 127);
  for (let s = 0; s < 16; s++) out[at + 192 + s] = sc[s] & 255;
  writeHalf(out, at + 208, d);
  for (let g = 0; g < 16; g++) {
    const step = d * sc[g];
    const inv = step === 0 ? 0 : 1 / step;
    for (let i = 16 * g; i < 16 * g + 16; i++) {
      let q = Math.floor(x[i] * inv + 0.5); // round to nearest, then clamped to -32..31
      q = (q < -32 ? -32 : q > 31 ? 31 : q) + 32;
      const half = i >> 7;
      const quarter = (i & 127) >> 5;
      const l = i & 31;
      out[at + 64 * half + l + 32 * (quarter & 1)] |= (q & 15) << (quarter < 2 ? 0 : 4);
      out[at + 128 + 32 * half + l] |= (q >> 4) << (2 * quarter);
    }
  }
}

function writeHalf(out: Uint8Array, at: number, v: number): void {
  const bits = toHalfBits(v);
  out[at] = bits & 255;
  out[at + 1] = bits >> 8;
}

/** ggml type id -> [values per block, bytes per block, quantiser]. */
export const QUANTISERS: Record<number, [number, number, (x: Float32Array, out: Uint8Array, at: number) => void]> = {
  2: [32, 18, q4_0],
  12: [256, 144, kQuant(4)],
  13: [256, 176, kQuant(5)],
  14: [256, 210, q6_K],
};

/** ggml type ids of the formats by weight dtype. */
export const QUANT_TYPE_IDS = { q4_0: 2, q4_k: 12, q5_k: 13, q6_k: 14 } as const;
export type EncodableQuant = keyof typeof QUANT_TYPE_IDS;

/** Values (a whole number of blocks) as blocks of a ggml type id (or of a dtype). */
export function quantise(values: Float32Array, type: number | EncodableQuant): Uint8Array {
  const [n, bytes, encode] = QUANTISERS[typeof type === 'number' ? type : QUANT_TYPE_IDS[type]];
  if (values.length % n !== 0) throw new Error(`${values.length} values are not whole blocks of ${n}`);
  const out = new Uint8Array((values.length / n) * bytes);
  for (let b = 0; b < values.length / n; b++) encode(values.subarray(b * n, (b + 1) * n), out, b * bytes);
  return out;
}
