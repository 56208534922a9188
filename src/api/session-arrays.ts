// The arrays of a saved session (session-file.ts): written back to back, each 8-aligned, and read back from a
// ByteSource (the file's bytes in memory, or the file itself, read array by array) after every entry the
// header declares (dtype, shape, offset, bytes) has been checked against the others and against the file,
// so a truncated or forged file is one InputError and nothing is allocated from a size that was not checked.
import { InputError } from '../errors.js';
import type { SavedArray } from '../attention/layer.js';

export interface ArrayEntry {
  dtype: 'f32' | 'f16' | 'i8';
  shape: number[];
  /** From the start of the file's array region. */
  offset: number;
  bytes: number;
}

/** Where a session is read from: `size` bytes, of which `read` gives `bytes` from `at`, starting at an offset
 * of the returned buffer that is a multiple of `align` (a copy only where a view would be misaligned). */
export interface ByteSource {
  size: number;
  read(at: number, bytes: number, align: number): Uint8Array;
}

/** A session already in memory: its arrays are views of its bytes. */
export function bytesSource(b: Uint8Array): ByteSource {
  return {
    size: b.length,
    read(at, bytes, align) {
      const view = b.subarray(at, at + bytes);
      return view.byteOffset % align === 0 ? view : view.slice();
    },
  };
}

const SIZES: Record<string, number> = { f32: 4, f16: 2, i8: 1 };

/** Each array's entry (its offset in the region) and the region's size; nothing is copied. */
export function layoutArrays(arrays: readonly SavedArray[]): { entries: ArrayEntry[]; total: number } {
  let at = 0;
  const entries = arrays.map((a) => {
    if (!Object.hasOwn(SIZES, a.dtype)) throw new InputError(`cannot save an array of ${a.dtype}`);
    const e: ArrayEntry = { dtype: a.dtype, shape: [...a.shape], offset: at, bytes: a.data.byteLength };
    at += Math.ceil(a.data.byteLength / 8) * 8;
    return e;
  });
  return { entries, total: at };
}

export const arrayBytes = (a: SavedArray) => new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);

/** The entries checked against each other and a region of `regionBytes`: one InputError for the first bad one. */
export function checkArrays(regionBytes: number, entries: readonly unknown[], name: string): ArrayEntry[] {
  return entries.map((raw, i) => {
    const e = raw as Partial<ArrayEntry> | null;
    const bad = (why: string) => new InputError(`${name}: saved array ${i} ${why} (truncated or not a session?)`);
    if (typeof e !== 'object' || e === null) throw bad('is not described');
    const size = typeof e.dtype === 'string' ? SIZES[e.dtype] : undefined;
    if (!size || !Object.hasOwn(SIZES, e.dtype as string)) throw bad(`has dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || e.shape.length > 8 || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(`has shape ${JSON.stringify(e.shape)}`);
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count) || count * size !== e.bytes)
      throw bad(`declares ${e.bytes} bytes for [${e.shape}]`);
    if (!Number.isSafeInteger(e.offset) || (e.offset as number) < 0 || (e.offset as number) % 8 !== 0)
      throw bad(`has offset ${e.offset}`);
    if ((e.offset as number) + count * size > regionBytes)
      throw bad(`runs past the end of the file (${e.offset} + ${e.bytes} > ${regionBytes})`);
    return e as ArrayEntry;
  });
}

/** The element size of a checked entry's dtype. */
export const entryElementBytes = (e: ArrayEntry) => SIZES[e.dtype];

/** A checked entry's array over `bytes` (its bytes, aligned for its element size): a view, nothing copied. */
export function arrayOf(e: ArrayEntry, bytes: Uint8Array): SavedArray {
  const count = e.bytes / SIZES[e.dtype];
  const data =
    e.dtype === 'f32'
      ? new Float32Array(bytes.buffer, bytes.byteOffset, count)
      : e.dtype === 'f16'
        ? new Uint16Array(bytes.buffer, bytes.byteOffset, count)
        : new Int8Array(bytes.buffer, bytes.byteOffset, count);
  return { dtype: e.dtype, shape: e.shape, data };
}

/** The arrays the entries name, read from `source` at `regionAt` + each entry's offset. */
export function decodeArrays(
  source: ByteSource,
  regionAt: number,
  entries: readonly unknown[],
  name: string,
): SavedArray[] {
  return checkArrays(Math.max(0, source.size - regionAt), entries, name).map((e) =>
    arrayOf(e, source.read(regionAt + e.offset, e.bytes, SIZES[e.dtype])),
  );
}
