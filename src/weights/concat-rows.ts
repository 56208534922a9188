// Matrices stacked by rows into one, in their file encoding: a row of every encoding is whole (f32, f16, BF16, or
// whole blocks of Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K), so the stacked bytes are the rows one after another. The
// decoder stacks a layer's q, k and v projections so that one product (one GEMV per decoded token) makes all
// three; matrices of different encodings (GGUF mixes of Q4_K and Q6_K) or widths are not stacked.
import type { WeightTensor } from './weight-tensor.js';

/** `parts` stacked as [sum of rows, cols], or undefined when their encodings or widths differ. */
export function concatRows(name: string, parts: readonly WeightTensor[]): WeightTensor | undefined {
  const first = parts[0];
  if (!first || parts.some((p) => p.shape.length !== first.shape.length || p.dtype !== first.dtype)) return undefined;
  const cols = (t: WeightTensor) => (t.shape.length === 1 ? 1 : t.shape[1]);
  if (first.shape.length > 2 || parts.some((p) => cols(p) !== cols(first))) return undefined;
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.bytes.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p.bytes, at);
    at += p.bytes.byteLength;
  }
  const rows = parts.reduce((n, p) => n + p.shape[0], 0);
  return { name, shape: first.shape.length === 1 ? [rows] : [rows, cols(first)], dtype: first.dtype, bytes };
}
