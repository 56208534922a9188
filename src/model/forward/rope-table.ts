// RoPE's cos and sin of T positions from `first`, in float64 then f32 (f16 would flush Llama 3's lowest
// frequencies, see docs/DESIGN.md), scaled by the context extension's attention factor: [cos | sin] x T x D/2.
import { ropeAttentionFactor, ropeInverseFrequencies } from '../positions/rope.js';
import type { ModelConfig } from '../types.js';

export function ropeTable(c: ModelConfig, first: number, T: number): Float32Array<ArrayBuffer> {
  const half = c.headDim / 2;
  const inv = ropeInverseFrequencies(c);
  const factor = ropeAttentionFactor(c);
  const table = new Float32Array(2 * T * half);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < half; i++) {
      const angle = (first + t) * inv[i];
      table[t * half + i] = Math.cos(angle) * factor;
      table[(T + t) * half + i] = Math.sin(angle) * factor;
    }
  return table;
}
