// Test support: writes GGUF v2/v3 files (metadata of any type, tensors in F32, F16, BF16, Q8_0, and Q4_0,
// Q4_K, Q5_K, Q6_K through quant-encode.ts), and
// re-encodes a loaded model's tensors, so loaders and dequantisation are tested on files we control.
import { toHalfBits } from '../src/f16.js';
import { QUANTISERS, quantise } from '../src/weights/quant-encode.js';

export type MetaValue =
  | { type: 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64'; value: number | string | boolean }
  | { type: 'array'; items: 'string' | 'f32' | 'i32'; value: Array<string | number> };

export interface BuilderTensor {
  name: string;
  dims: number[];
  type: number;
  data: Uint8Array;
}

export function encodeTensor(values: Float32Array, type: number): Uint8Array {
  if (type === 0) return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  if (type === 1 || type === 30) {
    const out = new Uint16Array(values.length);
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i < values.length; i++) {
      if (type === 1) out[i] = toHalfBits(values[i]);
      else {
        f[0] = values[i];
        out[i] = (u[0] + 0x7fff + ((u[0] >> 16) & 1)) >>> 16;
      }
    }
    return new Uint8Array(out.buffer);
  }
  if (type === 8) {
    const blocks = values.length / 32;
    const out = Buffer.alloc(blocks * 34);
    for (let b = 0; b < blocks; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[b * 32 + j]));
      const d = amax / 127;
      out.writeUInt16LE(toHalfBits(d), b * 34);
      for (let j = 0; j < 32; j++) out.writeInt8(d === 0 ? 0 : Math.round(values[b * 32 + j] / d), b * 34 + 2 + j);
    }
    return new Uint8Array(out);
  }
  if (QUANTISERS[type]) return quantise(values, type);
  throw new Error(`builder cannot encode type ${type}`);
}

export function buildGguf(
  meta: Array<[string, MetaValue]>,
  tensors: BuilderTensor[],
  version = 3,
  alignment = 32,
): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    parts.push(b);
  };
  const u64 = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    parts.push(b);
  };
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    u64(b.length);
    parts.push(b);
  };
  const TYPES = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10 } as const;
  const scalar = (type: string, v: number | string | boolean) => {
    if (type === 'u32') u32(v as number);
    else if (type === 'i32') {
      const b = Buffer.alloc(4);
      b.writeInt32LE(v as number);
      parts.push(b);
    } else if (type === 'f32') {
      const b = Buffer.alloc(4);
      b.writeFloatLE(v as number);
      parts.push(b);
    } else if (type === 'bool') parts.push(Buffer.from([v ? 1 : 0]));
    else if (type === 'string') str(v as string);
    else if (type === 'u64') u64(v as number);
  };
  parts.push(Buffer.from('GGUF'));
  u32(version);
  u64(tensors.length);
  u64(meta.length);
  for (const [key, m] of meta) {
    str(key);
    u32(TYPES[m.type]);
    if (m.type === 'array') {
      u32(TYPES[m.items]);
      u64(m.value.length);
      for (const v of m.value) scalar(m.items, v);
    } else scalar(m.type, m.value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    offset = Math.ceil((offset + t.data.length) / alignment) * alignment;
  }
  tensors.forEach((t, i) => {
    str(t.name);
    u32(t.dims.length);
    for (const d of t.dims) u64(d);
    u32(t.type);
    u64(offsets[i]);
  });
  const header = Buffer.concat(parts);
  const dataStart = Math.ceil(header.length / alignment) * alignment;
  const out = Buffer.alloc(dataStart + offset);
  header.copy(out);
  tensors.forEach((t, i) => out.set(t.data, dataStart + offsets[i]));
  return out;
}

import { parseGguf, type GgufValue } from '../src/model/load/gguf-reader.js';
import { WeightMatrix } from '../src/weights/weight-matrix.js';

/** The same model with each matrix re-encoded as `typeFor(name)` (vectors stay F32). */
export function reencodeGguf(buf: Buffer, typeFor: (name: string) => number, version = 3): Buffer {
  const g = parseGguf(buf, 'source');
  const meta: Array<[string, MetaValue]> = [...g.metadata].map(([k, v]) => [k, metaValue(v)]);
  const tensors = g.tensors.map((t) => {
    const asked = t.dims.length === 2 ? typeFor(t.name) : 0;
    const block = QUANTISERS[asked]?.[0] ?? (asked === 8 ? 32 : 1);
    const type = t.dims[0] % block !== 0 ? 0 : asked; // quantised rows must hold whole blocks
    const logical = [...t.dims].reverse();
    const values = new WeightMatrix({
      name: t.name,
      shape: logical,
      dtype: 'f32',
      bytes: buf.subarray(t.offset, t.offset + t.byteLength),
    }).toFloat32();
    return { name: t.name, dims: t.dims, type, data: encodeTensor(values, type) };
  });
  return buildGguf(meta, tensors, version);
}

/** A parsed GGUF metadata value as the builder writes it back. */
export function metaValue(v: GgufValue): MetaValue {
  if (typeof v === 'string') return { type: 'string', value: v };
  if (typeof v === 'boolean') return { type: 'bool', value: v };
  if (typeof v === 'bigint') return { type: 'u64', value: Number(v) };
  if (Array.isArray(v)) {
    if (typeof v[0] === 'string') return { type: 'array', items: 'string', value: v as string[] };
    return { type: 'array', items: (v as number[]).every(Number.isInteger) ? 'i32' : 'f32', value: v as number[] };
  }
  return Number.isInteger(v) ? { type: 'u32', value: v } : { type: 'f32', value: v };
}
