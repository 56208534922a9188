// Weights in their file encoding, read back as f32 one row at a time (or all at once for small models).
// Block quantisations (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K: llama.cpp's) decode through quant-blocks.ts; a row
// is a whole number of blocks. BF16 is the top half of an f32.
import { ShapeError } from '../errors.js';
import { BLOCK_FORMATS, HALF_TABLE, isBlockDType } from './quant-blocks.js';
import type { WeightTensor } from './weight-tensor.js';

/** A weight matrix [rows, cols] that hands out f32 rows. F32 rows are views; others decode into scratch. */
export class WeightMatrix {
  readonly rows: number;
  readonly cols: number;
  private readonly f32?: Float32Array;
  private readonly view: DataView;
  private readonly scratch: Float32Array;

  constructor(
    readonly weight: WeightTensor,
    decodeAll = false,
  ) {
    const [rows, cols] = weight.shape.length === 1 ? [1, weight.shape[0]] : weight.shape;
    if (weight.shape.length > 2)
      throw new ShapeError(`${weight.name}: a weight matrix must have 1 or 2 dims, got [${weight.shape}]`);
    this.rows = rows;
    this.cols = cols;
    const b = weight.bytes;
    if (isBlockDType(weight.dtype)) {
      const f = BLOCK_FORMATS[weight.dtype];
      if (cols % f.values !== 0 || b.byteLength < (rows * cols * f.bytes) / f.values)
        throw new ShapeError(
          `${weight.name}: ${weight.dtype} rows of ${cols} need whole blocks of ${f.values} ` +
            `and ${(rows * cols * f.bytes) / f.values} bytes (got ${b.byteLength})`,
        );
    }
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.scratch = new Float32Array(cols);
    if (weight.dtype === 'f32') {
      // Float32Array views need 4-byte alignment of the offset; copy when the file slice is not aligned.
      this.f32 =
        b.byteOffset % 4 === 0
          ? new Float32Array(b.buffer, b.byteOffset, rows * cols)
          : new Float32Array(b.slice().buffer);
    } else if (decodeAll) {
      const all = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) this.decodeRow(r, all.subarray(r * cols, (r + 1) * cols));
      this.f32 = all;
    }
  }

  /** Row r as f32. The returned array is reused by the next call unless the matrix is held as f32. */
  row(r: number): Float32Array {
    if (this.f32) return this.f32.subarray(r * this.cols, (r + 1) * this.cols);
    this.decodeRow(r, this.scratch);
    return this.scratch;
  }

  /** All values as f32 [rows * cols] (for uploading to a GPU). */
  toFloat32(): Float32Array {
    if (this.f32) return this.f32;
    const all = new Float32Array(this.rows * this.cols);
    for (let r = 0; r < this.rows; r++) this.decodeRow(r, all.subarray(r * this.cols, (r + 1) * this.cols));
    return all;
  }

  private decodeRow(r: number, out: Float32Array): void {
    const n = this.cols;
    const v = this.view;
    switch (this.weight.dtype) {
      case 'f16':
        for (let i = 0, at = r * n * 2; i < n; i++, at += 2) out[i] = HALF_TABLE[v.getUint16(at, true)];
        return;
      case 'bf16':
        for (let i = 0, at = r * n * 2; i < n; i++, at += 2) out[i] = bf16(v.getUint16(at, true));
        return;
      case 'q8_0':
      case 'q4_0':
      case 'q4_k':
      case 'q5_k':
      case 'q6_k': {
        const f = BLOCK_FORMATS[this.weight.dtype];
        const b = this.weight.bytes;
        for (let i = 0, at = r * (n / f.values) * f.bytes; i < n; i += f.values, at += f.bytes) f.decode(b, at, out, i);
        return;
      }
      case 'f32':
        for (let i = 0; i < n; i++) out[i] = v.getFloat32((r * n + i) * 4, true);
    }
  }
}

const bfBuf = new Uint32Array(1);
const bfF32 = new Float32Array(bfBuf.buffer);
function bf16(bits: number): number {
  bfBuf[0] = bits << 16;
  return bfF32[0];
}
