// A GGUF model read from a ByteSource in pieces: the header first (grown until it parses), then the tensors
// in runs of at most PIECE_BYTES, each run one read whose views become the tensors. Nothing holds the whole
// file at once beside the tensors themselves; progress is reported and an abort lands between pieces.
import type { ByteSource } from './byte-source.js';
import { GgufHeaderIncomplete, parseGguf, type GgufFile, type GgufTensorInfo } from './gguf-reader.js';
import { ggufModelFromParsed } from './gguf-model.js';
import type { LoadedModel } from '../types.js';

/** One read's most bytes (a tensor larger than this is read on its own). */
export const PIECE_BYTES = 64 * 2 ** 20;
const FIRST_HEADER_BYTES = 1 << 20;

export interface PieceProgress {
  loadedBytes: number;
  totalBytes: number;
}

export interface GgufSourceOptions {
  onProgress?: (p: PieceProgress) => void;
  signal?: AbortSignal;
}

/** The parsed header alone: tensor names, types, shapes and offsets, and the metadata. */
export async function readGgufHeader(src: ByteSource, o: GgufSourceOptions = {}): Promise<GgufFile> {
  for (let n = Math.min(src.size, FIRST_HEADER_BYTES); ; n = Math.min(src.size, n * 4)) {
    o.signal?.throwIfAborted();
    try {
      return parseGguf(await src.read(0, n), src.name, src.size);
    } catch (e) {
      if (!(e instanceof GgufHeaderIncomplete) || n >= src.size) throw e;
    }
  }
}

export async function readGgufSource(
  src: ByteSource,
  o: GgufSourceOptions = {},
): Promise<{ model: LoadedModel; header: GgufFile }> {
  const header = await readGgufHeader(src, o);
  const bytes = new Map<GgufTensorInfo, Uint8Array>();
  for (const run of runs(header.tensors)) {
    o.signal?.throwIfAborted();
    const begin = run[0].offset;
    const end = Math.max(...run.map((t) => t.offset + t.byteLength));
    const piece = await src.read(begin, end - begin);
    for (const t of run) bytes.set(t, piece.subarray(t.offset - begin, t.offset - begin + t.byteLength));
    o.onProgress?.({ loadedBytes: end, totalBytes: src.size });
  }
  // Bytes after the last tensor (padding) are never read; the file counts as read once its tensors are.
  o.onProgress?.({ loadedBytes: src.size, totalBytes: src.size });
  return { model: ggufModelFromParsed(header, src.name, (t) => bytes.get(t)!), header };
}

/** Tensors in file order, grouped into runs that one read of at most PIECE_BYTES covers. */
function runs(tensors: readonly GgufTensorInfo[]): GgufTensorInfo[][] {
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  const out: GgufTensorInfo[][] = [];
  let run: GgufTensorInfo[] = [];
  for (const t of sorted) {
    if (run.length > 0 && t.offset + t.byteLength - run[0].offset > PIECE_BYTES) {
      out.push(run);
      run = [];
    }
    run.push(t);
  }
  if (run.length > 0) out.push(run);
  return out;
}
