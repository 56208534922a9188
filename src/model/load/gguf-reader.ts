// GGUF v2/v3 container reader: header, metadata key/values (all types, arrays included), tensor infos
// and the aligned data section, as slices of one Uint8Array (a Node Buffer or browser bytes alike). Every count
// and size is checked against the bytes that remain before anything is allocated from it, so a corrupt file
// gives an InputError. The header alone parses too (`fileBytes` then says how long the whole file is).
// Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
import { InputError, UnsupportedError } from '../../errors.js';

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] = ne0 (contiguous, "in"), dims[1] = ne1 ("out"). */
  dims: number[];
  /** ggml type id (0 F32, 1 F16, 8 Q8_0, 30 BF16, ...). */
  type: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  byteLength: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  dataOffset: number;
  /** The bytes parsed: the whole file, or only its header when parseGguf was given `fileBytes`. */
  buffer: Uint8Array;
}

/** ggml type id -> name, block size (elements) and bytes per block, for sizes and messages. */
export const GGML_TYPES: Record<number, { name: string; block: number; bytes: number }> = {
  0: { name: 'F32', block: 1, bytes: 4 },
  1: { name: 'F16', block: 1, bytes: 2 },
  2: { name: 'Q4_0', block: 32, bytes: 18 },
  3: { name: 'Q4_1', block: 32, bytes: 20 },
  6: { name: 'Q5_0', block: 32, bytes: 22 },
  7: { name: 'Q5_1', block: 32, bytes: 24 },
  8: { name: 'Q8_0', block: 32, bytes: 34 },
  9: { name: 'Q8_1', block: 32, bytes: 36 },
  10: { name: 'Q2_K', block: 256, bytes: 84 },
  11: { name: 'Q3_K', block: 256, bytes: 110 },
  12: { name: 'Q4_K', block: 256, bytes: 144 },
  13: { name: 'Q5_K', block: 256, bytes: 176 },
  14: { name: 'Q6_K', block: 256, bytes: 210 },
  15: { name: 'Q8_K', block: 256, bytes: 292 },
  24: { name: 'I8', block: 1, bytes: 1 },
  25: { name: 'I16', block: 1, bytes: 2 },
  26: { name: 'I32', block: 1, bytes: 4 },
  27: { name: 'I64', block: 1, bytes: 8 },
  28: { name: 'F64', block: 1, bytes: 8 },
  30: { name: 'BF16', block: 1, bytes: 2 },
};

export function ggmlTypeName(type: number): string {
  return GGML_TYPES[type]?.name ?? `type ${type}`;
}

const MAGIC = 0x46554747; // "GGUF" little-endian
/** Smallest encoded size of a value of each metadata type, to bound array counts before reading. */
const MIN_VALUE_BYTES: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  8: 8,
  9: 12,
  10: 8,
  11: 8,
  12: 8,
};
const MAX_DIMS = 4;

const utf8 = new TextDecoder('utf-8');

/** The header runs past the bytes given, which are only the file's beginning: read more and parse again. */
export class GgufHeaderIncomplete extends InputError {}

class Cursor {
  pos = 0;
  readonly view: DataView;
  constructor(
    readonly buf: Uint8Array,
    readonly file: string,
    /** The whole file's size (more than buf's when buf holds only its beginning). */
    readonly fileBytes = buf.length,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Ran out of bytes: the file is truncated, or (when buf is only its beginning) more must be read. */
  short(what: string): never {
    if (this.buf.length < this.fileBytes)
      throw new GgufHeaderIncomplete(`${this.file}: the header runs past the first ${this.buf.length} bytes`);
    this.fail(what);
  }

  fail(what: string): never {
    throw new InputError(`${this.file}: not a valid GGUF file: ${what} (at byte ${this.pos} of ${this.buf.length})`);
  }

  need(bytes: number, what: string): void {
    if (bytes < 0 || this.pos + bytes > this.buf.length)
      this.short(`truncated while reading ${what} (needs ${bytes} bytes)`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.pos++);
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** A u64 that must fit a JS number (counts, lengths, offsets). */
  count(what: string): number {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${v}, beyond any real file`);
    return Number(v);
  }

  string(what: string): string {
    const len = this.count(`length of ${what}`);
    this.need(len, what);
    const s = utf8.decode(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }

  value(type: number, what: string, depth = 0): GgufValue {
    const b = this.view;
    const take = <T>(n: number, read: (at: number) => T): T => {
      this.need(n, what);
      const v = read(this.pos);
      this.pos += n;
      return v;
    };
    switch (type) {
      case 0:
        return take(1, (p) => b.getUint8(p));
      case 1:
        return take(1, (p) => b.getInt8(p));
      case 2:
        return take(2, (p) => b.getUint16(p, true));
      case 3:
        return take(2, (p) => b.getInt16(p, true));
      case 4:
        return take(4, (p) => b.getUint32(p, true));
      case 5:
        return take(4, (p) => b.getInt32(p, true));
      case 6:
        return take(4, (p) => b.getFloat32(p, true));
      case 7:
        return take(1, (p) => b.getUint8(p) !== 0);
      case 8:
        return this.string(what);
      case 9: {
        if (depth > 2) this.fail(`${what}: arrays nested too deeply`);
        const itemType = this.u32(`item type of ${what}`);
        const min = MIN_VALUE_BYTES[itemType];
        if (min === undefined) this.fail(`${what}: unknown array item type ${itemType}`);
        const n = this.count(`length of array ${what}`);
        if (n * min > this.buf.length - this.pos)
          this.short(`${what}: array of ${n} items cannot fit in the ${this.buf.length - this.pos} bytes left`);
        const out: GgufValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(itemType, what, depth + 1);
        return out;
      }
      case 10:
        return take(8, (p) => b.getBigUint64(p, true));
      case 11:
        return take(8, (p) => b.getBigInt64(p, true));
      case 12:
        return take(8, (p) => b.getFloat64(p, true));
      default:
        return this.fail(`${what}: unknown metadata value type ${type}`);
    }
  }
}

/** Parses the container. `file` names the file in messages. `fileBytes`: the whole file's size when `buf`
 * holds only its beginning (tensor data is then checked against the file, not against `buf`). */
export function parseGguf(buf: Uint8Array, file: string, fileBytes = buf.length): GgufFile {
  const c = new Cursor(buf, file, fileBytes);
  if (buf.length < 4 || c.view.getUint32(0, true) !== MAGIC) {
    throw new InputError(`${file}: not a GGUF file (the first 4 bytes are not "GGUF")`);
  }
  c.pos = 4;
  const version = c.u32('version');
  if (version === 1)
    throw new UnsupportedError(
      `${file}: GGUF version 1 is not supported (only 2 and 3); re-convert it with a current llama.cpp`,
    );
  if (version !== 2 && version !== 3)
    c.fail(`version ${version} is unknown (expected 2 or 3; a big-endian file is not supported)`);
  const tensorCount = c.count('tensor count');
  const kvCount = c.count('metadata count');
  // The smallest key/value is 8 (key length) + 4 (type) + 1 byte; the smallest tensor info 8 + 4 + 4 + 8.
  if (kvCount * 13 > fileBytes) c.fail(`metadata count ${kvCount} cannot fit in a file of ${fileBytes} bytes`);
  if (tensorCount * 24 > fileBytes) c.fail(`tensor count ${tensorCount} cannot fit in a file of ${fileBytes} bytes`);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`key of metadata entry ${i}`);
    const type = c.u32(`type of ${key}`);
    if (metadata.has(key)) c.fail(`metadata key ${key} appears twice`);
    // The spec makes general.alignment a uint32; any integer type is accepted, a string or float is not.
    if (key === 'general.alignment' && ![0, 1, 2, 3, 4, 5, 10, 11].includes(type))
      c.fail(`general.alignment has value type ${type}, not an integer`);
    metadata.set(key, c.value(type, key));
  }
  const alignValue = metadata.get('general.alignment') ?? 32;
  const alignment = Number(alignValue);
  if (!Number.isInteger(alignment) || alignment < 1 || alignment > 1 << 20 || (alignment & (alignment - 1)) !== 0) {
    c.fail(`general.alignment ${String(alignValue)} is not a power of two`);
  }

  const raw: Array<Omit<GgufTensorInfo, 'offset'> & { relative: number }> = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`name of tensor ${i}`);
    if (names.has(name)) c.fail(`tensor ${name} is listed twice`);
    names.add(name);
    const nDims = c.u32(`dimension count of ${name}`);
    if (nDims < 1 || nDims > MAX_DIMS) c.fail(`tensor ${name} has ${nDims} dimensions (1 to ${MAX_DIMS} allowed)`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(c.count(`dimension ${d} of ${name}`));
    const type = c.u32(`type of ${name}`);
    const relative = c.count(`offset of ${name}`);
    const info = GGML_TYPES[type];
    const elements = dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(elements) || elements > fileBytes * 8)
      c.fail(`tensor ${name} of shape [${dims}] is larger than the file`);
    let byteLength = 0;
    if (info) {
      if (dims[0] % info.block !== 0)
        c.fail(`tensor ${name}: row length ${dims[0]} is not a multiple of ${info.name}'s block of ${info.block}`);
      byteLength = (elements / info.block) * info.bytes;
    }
    raw.push({ name, dims, type, relative, byteLength });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors = raw.map(({ relative, ...t }) => {
    if (relative % alignment !== 0) c.fail(`tensor ${t.name}: offset ${relative} is not aligned to ${alignment}`);
    const offset = dataOffset + relative;
    if (offset + t.byteLength > fileBytes) {
      throw new InputError(
        `${file}: not a valid GGUF file: tensor ${t.name} (${ggmlTypeName(t.type)} [${t.dims}]) lies at bytes ` +
          `${offset}..${offset + t.byteLength}, beyond the end of the file (${fileBytes} bytes; truncated?)`,
      );
    }
    return { ...t, offset };
  });
  return { version, metadata, tensors, alignment, dataOffset, buffer: buf };
}
