// Writing trained indexers where the loaders read them: a copy of a GGUF model with blk.N.indexer.* added
// (its metadata bytes copied verbatim, every tensor re-laid in the aligned data section; older indexer
// tensors replaced), or an indexer.safetensors beside a Hugging Face model's weights (model/load/hf-weights.ts
// picks it up). GGUF format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md; safetensors: an
// 8-byte header length, a JSON header, then the data.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { parseGguf } from '../model/load/gguf-reader.js';
import type { WeightTensor } from '../model/types.js';

/** Bytes of the metadata value of `type` at buf[pos..]: its end. */
function skipValue(buf: Buffer, pos: number, type: number, file: string): number {
  const fixed: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  if (fixed[type] !== undefined) return pos + fixed[type];
  if (type === 8) return pos + 8 + Number(buf.readBigUInt64LE(pos));
  if (type === 9) {
    const itemType = buf.readUInt32LE(pos);
    const count = Number(buf.readBigUInt64LE(pos + 4));
    let at = pos + 12;
    if (fixed[itemType] !== undefined) return at + count * fixed[itemType];
    for (let i = 0; i < count; i++) at = skipValue(buf, at, itemType, file);
    return at;
  }
  throw new InputError(`${file}: unknown metadata value type ${type}`);
}

const GGML_F32 = 0;

/** A copy of the GGUF at `source` with `added` tensors (f32, any earlier tensors of the same names dropped), at `out`. */
export function writeGgufWithTensors(source: string, out: string, added: WeightTensor[]): void {
  const buf = readFileSync(source);
  const g = parseGguf(buf, source); // validates everything before we copy
  let pos = 24;
  for (let i = 0; i < g.metadata.size; i++) {
    pos += 8 + Number(buf.readBigUInt64LE(pos)); // key
    const type = buf.readUInt32LE(pos);
    pos = skipValue(buf, pos + 4, type, source);
  }
  const metadataBytes = buf.subarray(24, pos);
  const names = new Set(added.map((t) => t.name));
  const kept = g.tensors.filter((t) => !names.has(t.name));
  const all = [
    ...kept.map((t) => ({
      name: t.name,
      dims: t.dims,
      type: t.type,
      data: buf.subarray(t.offset, t.offset + t.byteLength),
    })),
    ...added.map((t) => {
      if (t.dtype !== 'f32') throw new InputError(`${t.name}: only f32 indexer tensors are written, got ${t.dtype}`);
      return { name: t.name, dims: [...t.shape].reverse(), type: GGML_F32, data: t.bytes };
    }),
  ];
  const align = (n: number) => Math.ceil(n / g.alignment) * g.alignment;
  const infos: Buffer[] = [];
  let offset = 0;
  for (const t of all) {
    const name = Buffer.from(t.name, 'utf8');
    const info = Buffer.alloc(8 + name.length + 4 + 8 * t.dims.length + 4 + 8);
    let at = info.writeBigUInt64LE(BigInt(name.length), 0);
    at += name.copy(info, at);
    at = info.writeUInt32LE(t.dims.length, at);
    for (const d of t.dims) at = info.writeBigUInt64LE(BigInt(d), at);
    at = info.writeUInt32LE(t.type, at);
    info.writeBigUInt64LE(BigInt(offset), at);
    infos.push(info);
    offset = align(offset + t.data.length);
  }
  const header = Buffer.alloc(24);
  header.writeUInt32LE(buf.readUInt32LE(0), 0); // magic
  header.writeUInt32LE(g.version, 4);
  header.writeBigUInt64LE(BigInt(all.length), 8);
  header.writeBigUInt64LE(BigInt(g.metadata.size), 16);
  const head = Buffer.concat([header, metadataBytes, ...infos]);
  const dataStart = align(head.length);
  const file = Buffer.alloc(dataStart + offset);
  head.copy(file, 0);
  let at = dataStart;
  for (const t of all) {
    file.set(t.data, at);
    at = dataStart + align(at - dataStart + t.data.length);
  }
  writeAtomically(out, file);
}

export interface RawTensor {
  name: string;
  dtype: 'F32' | 'F64';
  shape: number[];
  data: Float32Array | Float64Array;
}

/** A safetensors file of f32/f64 tensors with string metadata. */
export function writeSafetensors(path: string, tensors: RawTensor[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keeps the data 8-byte aligned for F64 views
  const jsonBytes = Buffer.from(json, 'utf8');
  const file = Buffer.alloc(8 + jsonBytes.length + offset);
  file.writeBigUInt64LE(BigInt(jsonBytes.length), 0);
  jsonBytes.copy(file, 8);
  let at = 8 + jsonBytes.length;
  for (const t of tensors) {
    file.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  writeAtomically(path, file);
}

/** Writes beside the target, then renames: a crash mid-write never leaves half a model or checkpoint. */
function writeAtomically(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.partial`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

/** The float32 tensors of WeightTensors as safetensors entries. */
export function rawF32(t: WeightTensor): RawTensor {
  const data = new Float32Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.byteLength));
  return { name: t.name, dtype: 'F32', shape: [...t.shape], data };
}
