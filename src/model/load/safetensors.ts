// Reader for safetensors files (Hugging Face): an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}, then the data, offsets relative to its
// start. Sharded checkpoints add model.safetensors.index.json {weight_map: {name: file}}.
// Everything is validated before anything is allocated from it: the header length against the file size,
// each tensor's byte range against the data size, and shape x dtype size against that range.
import { closeSync, fstatSync, openSync, readSync, existsSync, readdirSync } from 'node:fs';
import { readBounded } from '../../io/bounded-read.js';
import { limit } from '../../io/limits.js';
import { basename, join } from 'node:path';
import { InputError, UnsupportedError } from '../../errors.js';
import type { WeightDType, WeightTensor } from '../types.js';

/** Bytes per element of every dtype the format defines (so that sizes of all tensors can be checked). */
const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  I64: 8,
  U64: 8,
  F32: 4,
  I32: 4,
  U32: 4,
  F16: 2,
  BF16: 2,
  I16: 2,
  U16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I8: 1,
  U8: 1,
  BOOL: 1,
};
const SUPPORTED: Record<string, WeightDType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** The safetensors library refuses headers above 100 MB; so do we, before allocating one. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** One read call moves at most this much (readSync takes at most 2 GiB). */
const READ_CHUNK_BYTES = 1 << 30;

export interface SafetensorsEntry {
  readonly name: string;
  readonly file: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte range in the file. */
  readonly begin: number;
  readonly end: number;
}

/** One .safetensors file: its validated header; tensor bytes are read on demand. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly entries: ReadonlyMap<string, SafetensorsEntry>,
    readonly metadata: Record<string, string>,
  ) {}

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new InputError(`cannot open ${path}: ${(e as Error).message}`);
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw new InputError(`${path} is not a file (a safetensors file was expected there)`);
      const fileBytes = stat.size;
      if (fileBytes < 8)
        throw new InputError(
          `${path}: ${fileBytes} bytes is too short for a safetensors file (8-byte header length first)`,
        );
      const lengthBytes = readExactly(fd, path, 0, 8);
      const headerLength = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true);
      if (headerLength > BigInt(fileBytes - 8))
        throw new InputError(
          `${path}: header length ${headerLength} runs past the end of the file (${fileBytes} bytes); truncated or not safetensors`,
        );
      if (headerLength > BigInt(MAX_HEADER_BYTES))
        throw new InputError(`${path}: header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      const headerBytes = Number(headerLength);
      const text = new TextDecoder('utf-8', { fatal: false }).decode(readExactly(fd, path, 8, headerBytes));
      let header: unknown;
      try {
        header = JSON.parse(text);
      } catch (e) {
        throw new InputError(`${path}: header is not JSON (${(e as Error).message})`);
      }
      return new SafetensorsFile(path, ...parseHeader(header, path, 8 + headerBytes, fileBytes));
    } finally {
      closeSync(fd);
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Reads the named tensors; one open file for all. */
  read(names: readonly string[]): Map<string, WeightTensor> {
    const out = new Map<string, WeightTensor>();
    const fd = openSync(this.path, 'r');
    try {
      for (const name of names) {
        const entry = this.entries.get(name);
        if (!entry) throw new InputError(`${this.path}: no tensor '${name}'`);
        const dtype = SUPPORTED[entry.dtype];
        if (!dtype)
          throw new UnsupportedError(`${this.path}: tensor '${name}' is ${entry.dtype}; supported: F32, F16, BF16`);
        out.set(name, {
          name,
          shape: entry.shape,
          dtype,
          bytes: readExactly(fd, this.path, entry.begin, entry.end - entry.begin),
        });
      }
    } finally {
      closeSync(fd);
    }
    return out;
  }
}

/** The validated entries and metadata of a parsed header (`dataStart`: 8 + its length; `fileBytes`: the file's). */
export function parseHeader(
  header: unknown,
  path: string,
  dataStart: number,
  fileBytes: number,
): [Map<string, SafetensorsEntry>, Record<string, string>] {
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new InputError(`${path}: header must be a JSON object`);
  const dataBytes = fileBytes - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) metadata = raw as Record<string, string>;
      continue;
    }
    const bad = (why: string): InputError => new InputError(`${path}: tensor '${name}': ${why}`);
    if (typeof raw !== 'object' || raw === null) throw bad('entry is not an object');
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype))
      throw bad(`unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0))
      throw bad(`data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataBytes)
      throw bad(`data_offsets [${begin}, ${end}] fall outside the ${dataBytes} data bytes (truncated file?)`);
    // Element count in BigInt: an absurd shape must not overflow into a plausible size.
    const expected = (shape as number[]).reduce((n, d) => n * BigInt(d), 1n) * BigInt(DTYPE_BYTES[dtype]);
    if (expected !== BigInt(end - begin))
      throw bad(
        `shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes, but data_offsets span ${end - begin}`,
      );
    entries.set(name, {
      name,
      file: path,
      dtype,
      shape: shape as number[],
      begin: dataStart + begin,
      end: dataStart + end,
    });
  }
  // Tensors must not share bytes, and (as the safetensors library requires) they cover the data exactly:
  // a gap or a tail means the header length or the offsets are wrong, and every read would be shifted.
  const sorted = [...entries.values()].filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  let covered = dataStart;
  for (let i = 0; i < sorted.length; i++) {
    if (i > 0 && sorted[i].begin < sorted[i - 1].end)
      throw new InputError(`${path}: tensors '${sorted[i - 1].name}' and '${sorted[i].name}' overlap`);
    if (sorted[i].begin !== covered)
      throw new InputError(
        `${path}: bytes ${covered - dataStart}..${sorted[i].begin - dataStart} of the data belong to no tensor (wrong header length or offsets?)`,
      );
    covered = sorted[i].end;
  }
  if (covered !== fileBytes)
    throw new InputError(
      `${path}: the tensors end at data byte ${covered - dataStart} but the file has ${dataBytes} data bytes ` +
        `(wrong header length, or trailing bytes?)`,
    );
  return [entries, metadata];
}

function readExactly(fd: number, path: string, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, Math.min(READ_CHUNK_BYTES, length - done), position + done);
    if (n === 0)
      throw new InputError(
        `${path}: file ended at byte ${position + done}, expected ${length - done} more (truncated?)`,
      );
    done += n;
  }
  return out;
}

/** All tensors of a checkpoint directory: sharded through model.safetensors.index.json, or every *.safetensors. */
export class SafetensorsStore {
  private constructor(
    readonly dir: string,
    private readonly files: SafetensorsFile[],
    private readonly owner: Map<string, SafetensorsFile>,
  ) {}

  static openDirectory(dir: string): SafetensorsStore {
    const index = join(dir, 'model.safetensors.index.json');
    let fileNames: string[];
    let weightMap: Record<string, string> | undefined;
    if (existsSync(index)) {
      weightMap = readIndex(index);
      fileNames = [...new Set(Object.values(weightMap))].sort();
    } else {
      fileNames = readdirSync(dir)
        .filter((f) => f.endsWith('.safetensors'))
        .sort();
      if (fileNames.length === 0) throw new InputError(`${dir}: no *.safetensors files`);
    }
    const files = fileNames.map((f) => SafetensorsFile.open(join(dir, f)));
    const owner = new Map<string, SafetensorsFile>();
    for (const file of files) {
      for (const name of file.entries.keys()) {
        const prior = owner.get(name);
        if (prior) throw new InputError(`tensor '${name}' is in both ${prior.path} and ${file.path}`);
        owner.set(name, file);
      }
    }
    if (weightMap) {
      for (const [name, f] of Object.entries(weightMap)) {
        if (owner.get(name)?.path !== join(dir, f))
          throw new InputError(`${index}: tensor '${name}' should be in ${f}, but that file does not hold it`);
      }
    }
    return new SafetensorsStore(dir, files, owner);
  }

  static openFile(path: string): SafetensorsStore {
    const file = SafetensorsFile.open(path);
    return new SafetensorsStore(path, [file], new Map([...file.entries.keys()].map((n) => [n, file])));
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  entry(name: string): SafetensorsEntry | undefined {
    return this.owner.get(name)?.entries.get(name);
  }

  get names(): string[] {
    return [...this.owner.keys()];
  }

  /** Reads the named tensors, grouped by file. */
  read(names: readonly string[]): Map<string, WeightTensor> {
    const byFile = new Map<SafetensorsFile, string[]>();
    for (const name of names) {
      const file = this.owner.get(name);
      if (!file)
        throw new InputError(
          `${this.dir}: no tensor '${name}' in ${this.files.map((f) => basename(f.path)).join(', ')}`,
        );
      byFile.set(file, [...(byFile.get(file) ?? []), name]);
    }
    const out = new Map<string, WeightTensor>();
    for (const [file, group] of byFile) for (const [n, t] of file.read(group)) out.set(n, t);
    return out;
  }
}

function readIndex(path: string): Record<string, string> {
  let json: unknown;
  const text = readBounded(path, limit('JSON_BYTES'), 'index', 'LONGCTX_MAX_JSON_BYTES').toString('utf8');
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path}: ${(e as Error).message}`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map))
    throw new InputError(`${path}: no weight_map object`);
  for (const [name, f] of Object.entries(map)) {
    // Shards live beside the index; a path elsewhere is refused rather than followed.
    if (typeof f !== 'string' || f !== basename(f) || f === '..' || !f.endsWith('.safetensors')) {
      throw new InputError(
        `${path}: tensor '${name}' maps to ${JSON.stringify(f)}, not a .safetensors file beside the index`,
      );
    }
  }
  return map as Record<string, string>;
}
