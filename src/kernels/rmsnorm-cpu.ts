// CPU twin of kernels/rmsnorm-wgsl.ts: RMSNorm (Zhang & Sennrich 2019).

/** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight, for T rows of width n. */
export function rmsNormCpu(
  x: Float32Array,
  T: number,
  n: number,
  weight: Float32Array,
  eps: number,
  out: Float32Array,
): void {
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[t * n + i] * x[t * n + i];
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[t * n + i] = x[t * n + i] * inv * weight[i];
  }
}
