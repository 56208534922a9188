// CPU twin of kernels/matmul-wgsl.ts: y[T, N] = x[T, K] W[N, K]^T + b, each weight row decoded once
// (dequant.ts) and used for all T tokens.
import type { WeightMatrix } from '../weights/weight-matrix.js';

/** y[T, rows] = x[T, cols] W^T (+ bias): each weight row is decoded once and used for all T tokens. */
export function matmulRowsCpu(x: Float32Array, T: number, w: WeightMatrix, y: Float32Array, bias?: Float32Array): void {
  const { rows, cols } = w;
  for (let r = 0; r < rows; r++) {
    const row = w.row(r);
    const b = bias ? bias[r] : 0;
    for (let t = 0; t < T; t++) {
      let s0 = 0,
        s1 = 0,
        s2 = 0,
        s3 = 0;
      const off = t * cols;
      let i = 0;
      for (; i + 3 < cols; i += 4) {
        s0 += x[off + i] * row[i];
        s1 += x[off + i + 1] * row[i + 1];
        s2 += x[off + i + 2] * row[i + 2];
        s3 += x[off + i + 3] * row[i + 3];
      }
      for (; i < cols; i++) s0 += x[off + i] * row[i];
      y[t * rows + r] = s0 + s1 + s2 + s3 + b;
    }
  }
}
