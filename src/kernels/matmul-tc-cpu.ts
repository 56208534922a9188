// CPU twin of the tensor-core matmuls (matmul-tc-wgsl.ts): x rounded to f16 as it is staged, f16
// weights, products summed in wide precision and stored as f32, so the version test checks the
// algorithm's rounding in CI where no device has subgroup matrices.
import { roundHalf } from '../f16.js';

/** y[M, N] = f16(x)[M, K] W[N, K]^T (+ bias); w holds the f16 weights' values. */
export function matmulTcTwin(
  x: Float32Array,
  m: number,
  w: Float32Array,
  n: number,
  k: number,
  bias?: Float32Array,
): Float32Array {
  const xh = x.map(roundHalf);
  const y = new Float32Array(m * n);
  for (let t = 0; t < m; t++)
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += xh[t * k + i] * w[r * k + i];
      y[t * n + r] = s + (bias ? bias[r] : 0);
    }
  return y;
}
