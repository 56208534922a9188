// llama.cpp's block quantisations, decoded to f32 one block at a time (layouts and formulas of ggml's
// ggml-common.h / dequantize_row_* in ggml-quants.c; written here from those formulas, not copied):
//   Q4_0 (32 values, 18 bytes): f16 d, 16 bytes of nibbles; v[j] = d (lo_j - 8), v[j+16] = d (hi_j - 8).
//   Q4_K (256, 144): f16 d, f16 dmin, 12 bytes packing 8 six-bit (scale, min) pairs, 128 bytes of nibbles;
//     sub-block s of 32 values: v = d sc_s q - dmin m_s, q the low nibbles of bytes 32*(s>>1).. for even s,
//     the high nibbles for odd s.
//   Q5_K (256, 176): as Q4_K with 32 bytes qh after the scales; bit s of qh[l] is q's fifth bit (+16).
//   Q6_K (256, 210): 128 bytes low nibbles ql, 64 bytes 2-bit highs qh, 16 int8 scales, f16 d last;
//     v = d sc q with q = (4 low | 2 high bits) - 32, one scale per 16 values.
import { fromHalfBits } from '../f16.js';

export const HALF_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = fromHalfBits(i);
  return t;
})();

const half = (b: Uint8Array, at: number): number => HALF_TABLE[b[at] | (b[at + 1] << 8)];

export interface BlockFormat {
  /** Values per block. */
  readonly values: number;
  /** Bytes per block. */
  readonly bytes: number;
  /** Decodes the block at byte `at` of `b` into out[o .. o + values). */
  decode(b: Uint8Array, at: number, out: Float32Array, o: number): void;
}

/** Q4_K and Q5_K's 6-bit scale and min of sub-block j (0..7) from their 12 packed bytes at `s`. */
function scaleMin(b: Uint8Array, s: number, j: number, into: Float32Array): void {
  if (j < 4) {
    into[0] = b[s + j] & 63;
    into[1] = b[s + j + 4] & 63;
  } else {
    into[0] = (b[s + j + 4] & 15) | ((b[s + j - 4] >> 6) << 4);
    into[1] = (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4);
  }
}

const sm = new Float32Array(2);

export const Q4_0: BlockFormat = {
  values: 32,
  bytes: 18,
  decode(b, at, out, o) {
    const d = half(b, at);
    for (let j = 0; j < 16; j++) {
      const q = b[at + 2 + j];
      out[o + j] = d * ((q & 15) - 8);
      out[o + j + 16] = d * ((q >> 4) - 8);
    }
  },
};

export const Q8_0: BlockFormat = {
  values: 32,
  bytes: 34,
  decode(b, at, out, o) {
    const d = half(b, at);
    for (let j = 0; j < 32; j++) out[o + j] = d * ((b[at + 2 + j] << 24) >> 24);
  },
};

function kQuant(fifthBit: boolean): BlockFormat['decode'] {
  return (b, at, out, o) => {
    const d = half(b, at);
    const dmin = half(b, at + 2);
    const scales = at + 4;
    const qh = at + 16;
    const qs = fifthBit ? at + 48 : at + 16;
    for (let chunk = 0; chunk < 4; chunk++) {
      for (let k = 0; k < 2; k++) {
        const sub = 2 * chunk + k;
        scaleMin(b, scales, sub, sm);
        const scale = d * sm[0];
        const min = dmin * sm[1];
        const shift = 4 * k;
        const base = o + 32 * sub;
        for (let l = 0; l < 32; l++) {
          let q = (b[qs + 32 * chunk + l] >> shift) & 15;
          if (fifthBit) q += ((b[qh + l] >> sub) & 1) << 4;
          out[base + l] = scale * q - min;
        }
      }
    }
  };
}

export const Q4_K: BlockFormat = { values: 256, bytes: 144, decode: kQuant(false) };
export const Q5_K: BlockFormat = { values: 256, bytes: 176, decode: kQuant(true) };

export const Q6_K: BlockFormat = {
  values: 256,
  bytes: 210,
  decode(b, at, out, o) {
    const ql = at;
    const qh = at + 128;
    const sc = at + 192;
    const d = half(b, at + 208);
    for (let h = 0; h < 2; h++) {
      for (let l = 0; l < 32; l++) {
        const lo0 = b[ql + 64 * h + l];
        const lo1 = b[ql + 64 * h + l + 32];
        const hi = b[qh + 32 * h + l];
        const s = sc + 8 * h + (l >> 4);
        const scale = (i: number) => d * ((b[s + 2 * i] << 24) >> 24);
        const y = o + 128 * h + l;
        out[y] = scale(0) * (((lo0 & 15) | ((hi & 3) << 4)) - 32);
        out[y + 32] = scale(1) * (((lo1 & 15) | (((hi >> 2) & 3) << 4)) - 32);
        out[y + 64] = scale(2) * (((lo0 >> 4) | (((hi >> 4) & 3) << 4)) - 32);
        out[y + 96] = scale(3) * (((lo1 >> 4) | (((hi >> 6) & 3) << 4)) - 32);
      }
    }
  },
};

/** The block formats by weight dtype. */
export const BLOCK_FORMATS = { q8_0: Q8_0, q4_0: Q4_0, q4_k: Q4_K, q5_k: Q5_K, q6_k: Q6_K } as const;
export type BlockDType = keyof typeof BLOCK_FORMATS;

export function isBlockDType(dtype: string): dtype is BlockDType {
  return Object.hasOwn(BLOCK_FORMATS, dtype);
}
