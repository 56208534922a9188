// NaN in, NaN out stops at the model's door (docs/HARDENING.md): weights that hold a NaN or an infinity
// are refused at load, naming the tensor, and an activation that turns non-finite stops the decoder,
// naming the layer, instead of sampling from garbage. Tests on raw bits, so any alignment of the bytes works.
import { NonFiniteError } from '../../errors.js';
import type { ModelWeights, WeightTensor } from '../types.js';

/** Byte index of the first non-finite element of a tensor's bytes, or -1. */
function firstNonFinite(t: WeightTensor): number {
  const b = t.bytes;
  switch (t.dtype) {
    case 'f32': // little-endian: exponent in bits 30..23 = byte 3 bits 6..0 and byte 2 bit 7
      for (let i = 0; i + 3 < b.length; i += 4) if ((b[i + 3] & 0x7f) === 0x7f && b[i + 2] & 0x80) return i;
      return -1;
    case 'bf16':
      for (let i = 0; i + 1 < b.length; i += 2) if ((b[i + 1] & 0x7f) === 0x7f && b[i] & 0x80) return i;
      return -1;
    case 'f16':
      for (let i = 0; i + 1 < b.length; i += 2) if ((b[i + 1] & 0x7c) === 0x7c) return i;
      return -1;
    default: {
      // Quantised blocks: only their f16 scales can be non-finite (weights/quant-blocks.ts has the layouts).
      const block = QUANT_SCALES[t.dtype];
      if (!block) return -1;
      const [bytes, scales] = block;
      for (let i = 0; i + bytes <= b.length; i += bytes)
        for (const s of scales) if ((b[i + s + 1] & 0x7c) === 0x7c) return i + s;
      return -1;
    }
  }
}

/** Block bytes and the offsets of its f16 scales: Q8_0 and Q4_0 d first, Q4_K and Q5_K d and dmin, Q6_K d last. */
const QUANT_SCALES: Record<string, [number, number[]]> = {
  q8_0: [34, [0]],
  q4_0: [18, [0]],
  q4_k: [144, [0, 2]],
  q5_k: [176, [0, 2]],
  q6_k: [210, [208]],
};

function* allTensors(w: ModelWeights): Generator<WeightTensor> {
  yield w.tokenEmbedding;
  yield w.outputNorm;
  if (w.output) yield w.output;
  const isTensor = (t: unknown): t is WeightTensor => typeof t === 'object' && t !== null && 'bytes' in t;
  for (const layer of w.layers)
    for (const t of Object.values(layer) as unknown[]) {
      if (isTensor(t)) yield t;
      else if (typeof t === 'object' && t !== null) for (const u of Object.values(t)) if (isTensor(u)) yield u;
    }
}

/** A NonFiniteError naming the first tensor that holds a NaN or an infinity. */
export function checkFiniteWeights(w: ModelWeights, source: string): void {
  for (const t of allTensors(w)) {
    const at = firstNonFinite(t);
    if (at >= 0)
      throw new NonFiniteError(
        `${source}: weight ${t.name} holds a NaN or an infinity (byte ${at} of its data); the file is corrupt or was converted wrongly`,
        t.name,
      );
  }
}

/** A NonFiniteError when a layer's output (the residual stream) holds a NaN or an infinity. */
export function checkFiniteActivations(x: Float32Array, layer: number, position: number): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v - v !== 0)
      throw new NonFiniteError(
        `the output of layer ${layer} turned non-finite (${v}) at positions from ${position}; the weights overflow in f32 or are broken`,
        `layer ${layer}`,
      );
  }
}
