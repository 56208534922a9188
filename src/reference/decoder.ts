// Float64 references for the decoder's pieces, written for clarity, against which the CPU twins and
// the WGSL kernels are tested. Inputs and outputs are plain number arrays, token-major [T, features].

export function matmulRef(
  x: ArrayLike<number>,
  T: number,
  w: ArrayLike<number>,
  rows: number,
  cols: number,
  bias?: ArrayLike<number>,
): Float64Array {
  const y = new Float64Array(T * rows);
  for (let t = 0; t < T; t++)
    for (let r = 0; r < rows; r++) {
      let s = bias ? bias[r] : 0;
      for (let i = 0; i < cols; i++) s += x[t * cols + i] * w[r * cols + i];
      y[t * rows + r] = s;
    }
  return y;
}

export function rmsNormRef(
  x: ArrayLike<number>,
  T: number,
  n: number,
  weight: ArrayLike<number>,
  eps: number,
): Float64Array {
  const out = new Float64Array(T * n);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[t * n + i] ** 2;
    const r = Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[t * n + i] = (x[t * n + i] / r) * weight[i];
  }
  return out;
}

/**
 * RoPE as a complex rotation: pair j of a head is the complex number (x[a_j], x[b_j]), multiplied by
 * e^{i p theta^(-2j/D)}; interleaved pairs are (2j, 2j+1) and half pairs (j, j + D/2).
 */
export function ropeRef(
  x: ArrayLike<number>,
  T: number,
  heads: number,
  D: number,
  firstPosition: number,
  theta: number,
  layout: 'interleaved' | 'half',
): Float64Array {
  const out = Float64Array.from(x);
  for (let t = 0; t < T; t++)
    for (let h = 0; h < heads; h++)
      for (let j = 0; j < D / 2; j++) {
        const base = (t * heads + h) * D;
        const [a, b] = layout === 'interleaved' ? [base + 2 * j, base + 2 * j + 1] : [base + j, base + j + D / 2];
        const angle = (firstPosition + t) * Math.pow(theta, (-2 * j) / D);
        const [re, im] = [x[a], x[b]];
        out[a] = re * Math.cos(angle) - im * Math.sin(angle);
        out[b] = re * Math.sin(angle) + im * Math.cos(angle);
      }
  return out;
}

export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  return Float64Array.from(gate, (g, i) => (g / (1 + Math.exp(-g))) * up[i]);
}
