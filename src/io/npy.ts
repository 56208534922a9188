// Reads and writes numpy .npy files (format versions 1-3), little-endian float32 / float16, C order.
// Hand-written: the format is a 10-byte preamble and a Python-literal header, smaller than a dependency.
import { InputError } from '../errors.js';
import { tensor, type Tensor } from '../tensor.js';
import { readBounded, writeChecked } from './bounded-read.js';
import { limit } from './limits.js';

const MAGIC = '\x93NUMPY';

export function parseNpy(bytes: Uint8Array, name = 'array'): Tensor {
  const text = (a: number, b: number) => String.fromCharCode(...bytes.subarray(a, b));
  if (bytes.length < 10 || text(0, 6) !== MAGIC) throw new InputError(`${name} is not a .npy file (bad magic)`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  if (major < 1 || major > 3) throw new InputError(`${name}: unsupported .npy version ${major}`);
  if (start + headerLen > bytes.length) throw new InputError(`${name}: .npy header runs past the end of the file`);
  const header = text(start, start + headerLen);
  const fields = parseHeaderDict(header);
  if (!fields) throw new InputError(`${name}: malformed .npy header: ${JSON.stringify(header.trim().slice(0, 200))}`);
  const { descr, fortran, shapeText } = fields;
  if (fortran === 'True')
    throw new InputError(`${name}: Fortran-order arrays are not supported; save with np.ascontiguousarray`);
  const dtype = descr === '<f4' ? 'f32' : descr === '<f2' ? 'f16' : null;
  if (!dtype) throw new InputError(`${name}: dtype ${descr} is not supported; use float32 or float16`);
  const shape = shapeText === '' ? [] : shapeText.split(',').map((s) => Number(s.trim()));
  const count = shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(count)) throw new InputError(`${name}: shape (${shapeText}) is too large`);
  const itemBytes = dtype === 'f32' ? 4 : 2;
  const dataStart = start + headerLen;
  if (bytes.length - dataStart !== count * itemBytes) {
    throw new InputError(
      `${name}: shape (${shape}) needs ${count * itemBytes} data bytes, file has ${bytes.length - dataStart}`,
    );
  }
  // A real copy (Buffer#slice is a view into Node's shared pool), so the typed array starts aligned at 0.
  const copy = new Uint8Array(bytes.byteLength - dataStart);
  copy.set(bytes.subarray(dataStart));
  const data = dtype === 'f32' ? new Float32Array(copy.buffer, 0, count) : new Uint16Array(copy.buffer, 0, count);
  return tensor(shape, dtype, data);
}

/**
 * The header dict, exactly as numpy writes it: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`,
 * the three keys once each in any order, padded with spaces and a newline; anything else is refused.
 * Shapes are decimal integers separated by single commas (`(4,)`, `()`), never `(4,,8)`, `0x4` or `4.0`.
 */
function parseHeaderDict(header: string): { descr: string; fortran: string; shapeText: string } | undefined {
  const value = String.raw`'[^']*'|True|False|\(\s*(?:\d+\s*,\s*)*(?:\d+\s*,?\s*)?\)`;
  const entry = String.raw`'(descr|fortran_order|shape)'\s*:\s*(${value})`;
  const whole = new RegExp(String.raw`^\{\s*${entry}\s*,\s*${entry}\s*,\s*${entry}\s*,?\s*\}[ \n]*$`);
  const m = whole.exec(header);
  if (!m) return undefined;
  const got = new Map<string, string>();
  for (let i = 1; i < m.length; i += 2) {
    if (got.has(m[i])) return undefined;
    got.set(m[i], m[i + 1]);
  }
  const descr = got.get('descr')!;
  const shape = got.get('shape')!;
  if (!descr.startsWith("'") || !shape.startsWith('(')) return undefined;
  const fortran = got.get('fortran_order')!;
  if (fortran !== 'True' && fortran !== 'False') return undefined;
  const shapeText = shape.slice(1, -1).trim().replace(/,\s*$/, '');
  return { descr: descr.slice(1, -1), fortran, shapeText };
}

export function encodeNpy(t: Tensor): Uint8Array {
  const descr = t.dtype === 'f32' ? '<f4' : '<f2';
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + t.data.byteLength);
  for (let i = 0; i < 6; i++) out[i] = MAGIC.charCodeAt(i);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), 10 + header.length);
  return out;
}

/** The file size a .npy header declares, once `head` holds the header (undefined before, or when it is bad). */
function npyDeclaredBytes(head: Uint8Array): number | undefined {
  if (head.length < 12) return undefined;
  if (String.fromCharCode(...head.subarray(0, 6)) !== MAGIC || head[6] < 1 || head[6] > 3) return -1;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const start = head[6] === 1 ? 10 : 12;
  const headerLen = head[6] === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (head.length < start + headerLen) return undefined;
  const fields = parseHeaderDict(String.fromCharCode(...head.subarray(start, start + headerLen)));
  if (!fields) return -1; // parseNpy names what is wrong
  const count = fields.shapeText === '' ? 1 : fields.shapeText.split(',').reduce((a, s) => a * Number(s), 1);
  return start + headerLen + count * (fields.descr === '<f2' ? 2 : 4);
}

/** Reads a .npy file of at most LONGCTX_MAX_NPY_BYTES, streamed and stopped at what its header declares. */
export function readNpy(path: string): Tensor {
  return parseNpy(readBounded(path, limit('NPY_BYTES'), '.npy file', 'LONGCTX_MAX_NPY_BYTES', npyDeclaredBytes), path);
}

export function writeNpy(path: string, t: Tensor): void {
  writeChecked(path, encodeNpy(t), '.npy file');
}
