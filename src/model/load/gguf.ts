// A GGUF model from a file in Node: the file read whole into one Buffer (tensors are views into it), at most
// Node's largest Buffer and the host's memory; the model itself is built by gguf-model.ts.
import { constants } from 'node:buffer';
import { basename } from 'node:path';
import { readBounded } from '../../io/bounded-read.js';
import { ggufModel } from './gguf-model.js';
import type { LoadedModel } from '../types.js';

export { ggufModel, ggufModelFromParsed, type TensorBytes } from './gguf-model.js';

/** For a pipe or device (a regular file's size is checked up front): stop at once when it is no GGUF. */
const ggufMagic = (head: Buffer): number | null | undefined =>
  head.length < 4 ? undefined : head.toString('latin1', 0, 4) === 'GGUF' ? null : -1;

export function loadGguf(path: string): LoadedModel {
  const buf = readBounded(path, constants.MAX_LENGTH, 'model', undefined, ggufMagic);
  return ggufModel(buf, basename(path));
}
