// A weight as a file holds it: its name, logical shape, encoding and raw bytes (read by weight-matrix.ts).
/** How a weight is stored. All matrices are row-major [out, in] (GGUF ne0 = in, ne1 = out). */
/** q*: llama.cpp's block quantisations (weights/quant-blocks.ts), matrices only, rows of whole blocks. */
export type WeightDType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_k' | 'q5_k' | 'q6_k';

export interface WeightTensor {
  readonly name: string;
  /** Row-major logical shape: [out, in] for matrices, [n] for vectors. */
  readonly shape: readonly number[];
  readonly dtype: WeightDType;
  /** Raw bytes in the file's encoding (q8_0: blocks of 32 as f16 scale + 32 int8; see quant-blocks.ts). */
  readonly bytes: Uint8Array;
}
