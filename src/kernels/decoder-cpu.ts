// CPU twins of the decoder's kernels (kernels/*-wgsl.ts): matrix product with weight rows, RMSNorm,
// RoPE in both layouts, SwiGLU. Activations are token-major [T, features], f32.
// RMSNorm: Zhang & Sennrich 2019. RoPE: Su et al. 2021. SwiGLU: Shazeer 2020.
import type { WeightMatrix } from '../model/dequant.js';

/** y[T, rows] = x[T, cols] W^T (+ bias): each weight row is decoded once and used for all T tokens. */
export function matmulRowsCpu(x: Float32Array, T: number, w: WeightMatrix, y: Float32Array, bias?: Float32Array): void {
  const { rows, cols } = w;
  for (let r = 0; r < rows; r++) {
    const row = w.row(r);
    const b = bias ? bias[r] : 0;
    for (let t = 0; t < T; t++) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
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

/** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight, for T rows of width n. */
export function rmsNormCpu(x: Float32Array, T: number, n: number, weight: Float32Array, eps: number, out: Float32Array): void {
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[t * n + i] * x[t * n + i];
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[t * n + i] = x[t * n + i] * inv * weight[i];
  }
}

/**
 * Rotates x [T, heads, D] in place at positions firstPosition + t. 'interleaved' rotates pairs (2i, 2i+1)
 * (GGUF llama, llama2.c); 'half' rotates (i, i + D/2) (Hugging Face). Angles are float64; cos and sin
 * are scaled by attentionFactor (YaRN's mscale, 1 otherwise).
 */
export function ropeCpu(x: Float32Array, T: number, heads: number, D: number, firstPosition: number, invFreq: Float64Array,
  layout: 'interleaved' | 'half', attentionFactor = 1): void {
  const half = D / 2;
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  for (let t = 0; t < T; t++) {
    const p = firstPosition + t;
    for (let i = 0; i < half; i++) {
      const a = p * invFreq[i];
      cos[i] = Math.cos(a) * attentionFactor;
      sin[i] = Math.sin(a) * attentionFactor;
    }
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * D;
      for (let i = 0; i < half; i++) {
        const a = layout === 'interleaved' ? base + 2 * i : base + i;
        const b = layout === 'interleaved' ? a + 1 : a + half;
        const x0 = x[a];
        const x1 = x[b];
        x[a] = x0 * cos[i] - x1 * sin[i];
        x[b] = x0 * sin[i] + x1 * cos[i];
      }
    }
  }
}

/** gate <- silu(gate) * up, elementwise over n values. */
export function swigluCpu(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    gate[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}
