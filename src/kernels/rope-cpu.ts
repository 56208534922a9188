// CPU twin of kernels/rope-wgsl.ts: RoPE (Su et al. 2021), angles in float64, in place on token-major rows.

/**
 * Rotates x [T, heads, D] in place at positions firstPosition + t. 'interleaved' rotates pairs (2i, 2i+1)
 * (GGUF llama, llama2.c); 'half' rotates (i, i + D/2) (Hugging Face). Angles are float64; cos and sin
 * are scaled by attentionFactor (YaRN's mscale, 1 otherwise).
 */
export function ropeCpu(
  x: Float32Array,
  T: number,
  heads: number,
  D: number,
  firstPosition: number,
  invFreq: Float64Array,
  layout: 'interleaved' | 'half',
  attentionFactor = 1,
): void {
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

/**
 * The cos/sin table the WGSL RoPE kernels read: [cos | sin] x T x pairs of (first + t) * invFreq[i], in float64
 * then f32, scaled by attentionFactor (model/forward/rope-table.ts for the model; a trained DSA indexer with 1).
 */
export function ropeCosSinTable(
  invFreq: ArrayLike<number>,
  first: number,
  T: number,
  attentionFactor = 1,
): Float32Array<ArrayBuffer> {
  const half = invFreq.length;
  const table = new Float32Array(2 * T * half);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < half; i++) {
      const angle = (first + t) * invFreq[i];
      table[t * half + i] = Math.cos(angle) * attentionFactor;
      table[(T + t) * half + i] = Math.sin(angle) * attentionFactor;
    }
  return table;
}
