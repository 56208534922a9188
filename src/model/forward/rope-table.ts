// RoPE's cos and sin of T positions from `first`, in float64 then f32 (f16 would flush Llama 3's lowest
// frequencies, see docs/DESIGN.md), scaled by the context extension's attention factor: [cos | sin] x T x D/2.
import { ropeCosSinTable } from '../../kernels/rope-cpu.js';
import { ropeAttentionFactor, ropeInverseFrequencies } from '../positions/rope.js';
import type { ModelConfig } from '../types.js';

export function ropeTable(c: ModelConfig, first: number, T: number): Float32Array<ArrayBuffer> {
  return ropeCosSinTable(ropeInverseFrequencies(c), first, T, ropeAttentionFactor(c));
}
