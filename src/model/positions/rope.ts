// RoPE frequencies (Su et al. 2021, RoFormer): dimension pair i of a head rotates by position * inv_freq[i],
// inv_freq[i] = theta^(-2i/d). Context-extension scalings (linear, NTK, YaRN, Llama 3) change these
// frequencies and, for YaRN, the attention factor; the decoder takes both from here and nothing else.
import type { ModelConfig } from '../types.js';
import { scaledRope } from './rope-scaling.js';

/** inv_freq[i] for the headDim / 2 rotated pairs, in float64. */
export function ropeInverseFrequencies(config: ModelConfig, seqLen?: number): Float64Array {
  const half = config.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = Math.pow(config.ropeTheta, (-2 * i) / config.headDim);
  if (config.rope.kind === 'none') return inv;
  // Linear, NTK (static or dynamic at seqLen), YaRN and Llama 3: see rope-scaling.ts.
  return scaledRope(config, seqLen).inverseFrequencies;
}

/** Multiplier on cos and sin (YaRN's mscale); 1 when unscaled. */
export function ropeAttentionFactor(config: ModelConfig): number {
  if (config.rope.kind === 'none') return 1;
  return scaledRope(config).attentionFactor;
}
