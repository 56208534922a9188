// Synthetic inputs that hosts generate themselves, so that a benchmark at 128K does not first ship 3 GiB of
// q/k/v through NATS: element (head, token, d) of a global [heads, tokens, dim] tensor is a hash of its
// index, so any slice (a host's block, the anchor, the query) equals the same slice of the whole tensor.
import { float32ToHalf } from '../f16.js';
import { tensor, type DType, type Tensor } from '../tensor.js';

export interface SyntheticTensor {
  heads: number;
  tokens: number;
  dim: number;
  dtype: DType;
  seed: number;
}

/** murmur3's 32-bit finaliser: a good hash of the element index. */
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Tokens [start, end) of the global tensor: uniform values of unit variance. */
export function syntheticSlice(g: SyntheticTensor, start: number, end: number): Tensor {
  const n = end - start;
  const values = new Float32Array(g.heads * n * g.dim);
  const salt = Math.imul(g.seed + 1, 0x9e3779b9);
  const k = (2 * Math.sqrt(3)) / 4294967296;
  for (let h = 0; h < g.heads; h++) {
    for (let t = 0; t < n; t++) {
      const base = (h * g.tokens + start + t) * g.dim;
      const out = (h * n + t) * g.dim;
      for (let d = 0; d < g.dim; d++) values[out + d] = mix((base + d) ^ salt) * k - Math.sqrt(3);
    }
  }
  const f32 = tensor([g.heads, n, g.dim], 'f32', values);
  return g.dtype === 'f32' ? f32 : tensor(f32.shape, 'f16', float32ToHalf(values));
}
