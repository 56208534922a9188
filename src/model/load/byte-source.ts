// Where a model file's bytes come from, read in pieces: a Blob (a File the browser picked: disk-backed, so a
// piece read from it is the only copy in memory) or bytes already held. Loaders ask for ranges, never for the
// whole file, so a model larger than one ArrayBuffer, or than a GPU binding, still loads tensor by tensor.
import { InputError } from '../../errors.js';

export interface ByteSource {
  /** Names the file in messages. */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes from `offset` (an InputError when the source ends first). */
  read(offset: number, length: number): Promise<Uint8Array>;
}

export function blobSource(blob: Blob, name: string): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset, length) {
      const bytes = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
      if (bytes.length !== length)
        throw new InputError(
          `${name} ended at byte ${offset + bytes.length} while ${length} bytes were read at ${offset}`,
        );
      return bytes;
    },
  };
}

/** Bytes already in memory: pieces are views, no copy. */
export function bytesSource(bytes: Uint8Array, name: string): ByteSource {
  return {
    name,
    size: bytes.length,
    async read(offset, length) {
      if (offset < 0 || offset + length > bytes.length)
        throw new InputError(`${name}: bytes ${offset}..${offset + length} are beyond its ${bytes.length} bytes`);
      return bytes.subarray(offset, offset + length);
    },
  };
}
