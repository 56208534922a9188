// Weights in their file encoding, read back as f32 one row at a time (or all at once for small models).
// Q8_0 (llama.cpp/ggml): blocks of 32 values, an f16 scale d then 32 int8 q, value = d * q.
// BF16 is the top half of an f32.
import { ShapeError } from '../errors.js';
import { fromHalfBits } from '../f16.js';
import type { WeightTensor } from './weight-tensor.js';

const Q8_BLOCK = 32;
const Q8_BYTES = 34;
const HALF_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = fromHalfBits(i);
  return t;
})();

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
      case 'q8_0': {
        let at = r * (n / Q8_BLOCK) * Q8_BYTES;
        for (let i = 0; i < n; i += Q8_BLOCK, at += Q8_BYTES) {
          const d = HALF_TABLE[v.getUint16(at, true)];
          for (let j = 0; j < Q8_BLOCK; j++) out[i + j] = d * v.getInt8(at + 2 + j);
        }
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
