// The lightning indexer of DeepSeek Sparse Attention on the CPU (DeepSeek-V3.2 tech report, sec. 2.1):
// I[t,s] = sum_j w[t,j] * ReLU(q_I[j,t] . k_I[s]). Float path: f32/f16 inputs, products summed in doubles,
// stored as f32. Int8 path (as the report's FP8 indexer, in int8): q and k quantised with one scale per
// vector, exact integer dots, I = k_scale[s] * sum_j (w[t,j] q_scale[j,t]) * ReLU(dot_i32) - the CPU twin
// of kernels/dsa-indexer-wgsl.ts, which computes the same expression with dot4I8Packed.
import { asFloat32, type Tensor } from '../tensor.js';

export interface IndexerInputs {
  /** [H_I, Nq, D_I] */
  q: Tensor;
  /** [Nk, D_I]: one index key per token, shared by all index heads. */
  k: Tensor;
  /** [Nq, H_I] */
  w: Tensor;
}

export type IndexerPrecision = 'float' | 'int8';

/** Vectors quantised to int8 with one scale each: value ~= scale * int8. */
export interface Int8Vectors {
  count: number;
  dim: number;
  values: Int8Array;
  scales: Float32Array;
}

const bits32 = new Float32Array(1);
const bitsU32 = new Uint32Array(bits32.buffer);

/**
 * The int8 scale of a vector of largest magnitude amax: the least power of two 2^e with 127 * 2^e >= amax
 * (as DeepSeek-V3.1/V3.2's UE8M0 FP8 scales), 0 below 2^-120 (an all-zero vector). A power of two makes
 * x / scale and its rounding exact in f32 on every device, so the GPU quantiser (dsa-indexer-project-wgsl.ts)
 * matches this one bit for bit; the price is at most one bit of the int8 range (values reach 64..127).
 */
export function int8Scale(amax: number): number {
  if (!(amax >= 2 ** -120)) return 0;
  bits32[0] = amax;
  const b = bitsU32[0];
  // amax = m 2^E, m in [1, 2): 127 2^e >= amax  <=>  e >= E - 6 + log2(m / (127 / 64)).
  return 2 ** (((b >>> 23) & 255) - 127 - 6 + ((b & 0x7fffff) > 0x7e0000 ? 1 : 0));
}

/** Symmetric per-vector int8: scale = int8Scale(max|x|), values round(x / scale) (half up), in [-127, 127]. */
export function quantizeInt8(data: Float32Array, count: number, dim: number): Int8Vectors {
  const values = new Int8Array(count * dim);
  const scales = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    let amax = 0;
    for (let d = 0; d < dim; d++) amax = Math.max(amax, Math.abs(data[i * dim + d]));
    // NaN policy (docs/HARDENING.md): a vector holding a NaN or an infinity gets a NaN scale (values 0), so
    // every score it enters is NaN and the top-k selects it, instead of int8Scale's silent zero vector.
    const scale = Number.isFinite(amax) ? int8Scale(amax) : Number.NaN;
    scales[i] = scale;
    if (!(scale > 0)) continue;
    for (let d = 0; d < dim; d++)
      values[i * dim + d] = Math.max(-127, Math.min(127, Math.round(data[i * dim + d] / scale)));
  }
  return { count, dim, values, scales };
}

/** int8 values packed four to a u32 (byte 0 = first), rows padded with zeros to a multiple of 4 (dot4I8Packed's layout). */
export function packInt8(v: Int8Vectors): { packed: Uint32Array; words: number } {
  const words = Math.ceil(v.dim / 4);
  const bytes = new Uint8Array(v.count * words * 4);
  for (let i = 0; i < v.count; i++) {
    for (let d = 0; d < v.dim; d++) bytes[i * words * 4 + d] = v.values[i * v.dim + d] & 0xff;
  }
  return { packed: new Uint32Array(bytes.buffer), words };
}

/** The indexer inputs in the form its kernels read, prepared once per call (or kept by a decode cache). */
export interface PreparedIndexer {
  precision: IndexerPrecision;
  heads: number; // H_I
  dim: number; // D_I
  queries: number;
  keys: number;
  /** [Nq, H_I]: w, or w * q_scale for int8. */
  weights: Float32Array;
  /** Float path: q [H_I, Nq, D_I] and k [Nk, D_I] as f32 (f16 decoded). */
  qf?: Float32Array;
  kf?: Float32Array;
  /** Int8 path. */
  q8?: Int8Vectors;
  k8?: Int8Vectors;
}

export function prepareIndexer(index: IndexerInputs, precision: IndexerPrecision): PreparedIndexer {
  const keys = index.k.shape[0];
  const dim = index.q.shape[2];
  const kf = asFloat32(index.k);
  return {
    ...prepareIndexerQueries(index.q, index.w, precision, keys),
    ...(precision === 'float' ? { kf } : { k8: quantizeInt8(kf, keys, dim) }),
  };
}

/** The query side only (a decode cache holds the keys, quantised once at append). */
export function prepareIndexerQueries(
  q: Tensor,
  w: Tensor,
  precision: IndexerPrecision,
  keys: number,
): PreparedIndexer {
  const [heads, queries, dim] = q.shape;
  const wf = asFloat32(w);
  if (precision === 'float')
    return { precision, heads, dim, queries, keys, weights: Float32Array.from(wf), qf: asFloat32(q) };
  const q8 = quantizeInt8(asFloat32(q), heads * queries, dim);
  const weights = new Float32Array(queries * heads);
  for (let t = 0; t < queries; t++) {
    for (let j = 0; j < heads; j++)
      weights[t * heads + j] = Math.fround(wf[t * heads + j] * q8.scales[j * queries + t]);
  }
  return { precision, heads, dim, queries, keys, weights, q8 };
}

/** Scores of query t against keys 0..count-1 into out (f32). */
export function indexRowScores(p: PreparedIndexer, t: number, count: number, out: Float32Array): void {
  const { heads: H, dim: D, queries: Nq } = p;
  for (let s = 0; s < count; s++) {
    let score = 0;
    if (p.precision === 'float') {
      const Q = p.qf!,
        K = p.kf!;
      for (let j = 0; j < H; j++) {
        let dot = 0;
        const qo = (j * Nq + t) * D;
        for (let d = 0; d < D; d++) dot += Q[qo + d] * K[s * D + d];
        score += p.weights[t * H + j] * Math.max(0, dot);
      }
    } else {
      const Q = p.q8!.values,
        K = p.k8!.values;
      for (let j = 0; j < H; j++) {
        let dot = 0;
        const qo = (j * Nq + t) * D;
        for (let d = 0; d < D; d++) dot += Q[qo + d] * K[s * D + d];
        score += p.weights[t * H + j] * Math.max(0, dot);
      }
      score *= p.k8!.scales[s];
    }
    out[s] = score;
  }
}
