// Q8_0 weights (llama.cpp's blocks of 32: an f16 scale d and 32 int8 q, value d q; 34 bytes, so not
// 4-byte aligned) regrouped for the GPU: the int8 quants row-major [rows, cols], four to a u32 word (cols a
// multiple of 32, so every row starts 16-byte aligned), then the scales as f32 [rows, cols / 32]. One
// buffer, 1.06 bytes a weight (f16: 2). The matmul and GEMV kernels read it (matmul-wgsl.ts Q8 weight()).
import { ShapeError } from '../errors.js';
import { HALF_TABLE } from './quant-blocks.js';

/** Words of the quants (the scales start here). */
export function q8TileScaleWord(rows: number, cols: number): number {
  return (rows * cols) / 4;
}

function checkShape(rows: number, cols: number, name: string): void {
  if (cols % 32 !== 0) throw new ShapeError(`${name}: Q8_0 rows of ${cols} are not whole blocks of 32`);
}

/** The tiles of a Q8_0 matrix in its file encoding (`bytes`: rows * cols / 32 blocks of 34 bytes). */
export function q8TilesFromBlocks(bytes: Uint8Array, rows: number, cols: number, name = 'weights'): Uint32Array {
  checkShape(rows, cols, name);
  const blocks = (rows * cols) / 32;
  if (bytes.byteLength < blocks * 34) throw new ShapeError(`${name}: ${blocks} Q8_0 blocks need ${blocks * 34} bytes`);
  const out = new Uint32Array(q8TileScaleWord(rows, cols) + blocks);
  const quants = new Uint8Array(out.buffer, 0, rows * cols);
  const scales = new Float32Array(out.buffer, 4 * q8TileScaleWord(rows, cols), blocks);
  for (let b = 0; b < blocks; b++) {
    const at = b * 34;
    scales[b] = HALF_TABLE[bytes[at] | (bytes[at + 1] << 8)];
    quants.set(bytes.subarray(at + 2, at + 34), b * 32);
  }
  return out;
}

/** The values a tile buffer holds, as f32 [rows * cols] (what the kernels compute with). */
export function q8TileValues(tiles: Uint32Array, rows: number, cols: number): Float32Array {
  const quants = new Int8Array(tiles.buffer, tiles.byteOffset, rows * cols);
  const scales = new Float32Array(tiles.buffer, tiles.byteOffset + 4 * q8TileScaleWord(rows, cols), (rows * cols) / 32);
  return Float32Array.from(quants, (q, i) => q * scales[i >> 5]);
}
