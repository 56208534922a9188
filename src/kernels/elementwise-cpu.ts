// CPU twins of kernels/elementwise-wgsl.ts: SwiGLU (Shazeer 2020).

/** gate <- silu(gate) * up, elementwise over n values. */
export function swigluCpu(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    gate[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}
