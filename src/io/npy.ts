// Reads and writes numpy .npy files (format versions 1-3), little-endian float32 / float16, C order.
// Hand-written: the format is a 10-byte preamble and a Python-literal header, smaller than a dependency.
import { readFileSync, writeFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { tensor, type Tensor } from '../tensor.js';

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
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined)
    throw new InputError(`${name}: malformed .npy header: ${header.trim()}`);
  if (fortran === 'True')
    throw new InputError(`${name}: Fortran-order arrays are not supported; save with np.ascontiguousarray`);
  const dtype = descr === '<f4' ? 'f32' : descr === '<f2' ? 'f16' : null;
  if (!dtype) throw new InputError(`${name}: dtype ${descr} is not supported; use float32 or float16`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new InputError(`${name}: bad shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
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

export function readNpy(path: string): Tensor {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new InputError(`cannot read ${path}: ${(e as Error).message}`);
  }
  return parseNpy(bytes, path);
}

export function writeNpy(path: string, t: Tensor): void {
  writeFileSync(path, encodeNpy(t));
}
