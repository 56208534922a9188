// Where a model comes from: a GGUF file or a Hugging Face directory (Node), or the bytes of a GGUF
// (ArrayBuffer, Uint8Array, Blob). Files are read in slices so that progress is reported and an abort
// lands between slices; the chat template and special tokens are read beside the weights.
import { InputError, UnsupportedError } from '../errors.js';
import { ggufModel } from '../model/load/gguf-model.js';
import { parseGguf, type GgufValue } from '../model/load/gguf-reader.js';
import { blobSource } from '../model/load/byte-source.js';
import { readGgufSource } from '../model/load/gguf-source.js';
import type { LoadedModel } from '../model/types.js';
import { type SpecialTokens, templateFromConfig, tokenText } from './chat.js';

export type ModelSource = string | ArrayBuffer | Uint8Array | Blob;

export interface LoadProgress {
  phase: 'read' | 'parse' | 'weights';
  loadedBytes: number;
  totalBytes: number;
}

export interface ModelFiles {
  model: LoadedModel;
  chatTemplate?: string;
  special: SpecialTokens;
  /** The GGUF bytes (hashed for saved sessions), absent for a Hugging Face directory. */
  gguf?: Uint8Array;
  /** A Hugging Face directory, hashed by its config and tensor headers. */
  directory?: string;
}

export interface ReadOptions {
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
}

const SLICE_BYTES = 64 * 2 ** 20;

export async function readModelFiles(source: ModelSource, o: ReadOptions): Promise<ModelFiles> {
  o.signal?.throwIfAborted();
  if (typeof source === 'string') return readPath(source, o);
  if (typeof Blob !== 'undefined' && source instanceof Blob) return fromGgufBlob(source, o);
  if (source instanceof ArrayBuffer) return fromGgufBytes(new Uint8Array(source), 'model.gguf', o);
  if (source instanceof Uint8Array) return fromGgufBytes(source, 'model.gguf', o);
  throw new InputError('loadModel takes a path, an ArrayBuffer, a Uint8Array or a Blob holding a GGUF file');
}

async function readPath(path: string, o: ReadOptions): Promise<ModelFiles> {
  const { stat } = await import('node:fs/promises');
  const info = await stat(path).catch((e: Error) => {
    throw new InputError(`model ${path} does not exist or cannot be read: ${e.message}`);
  });
  if (info.isDirectory()) return readHfDirectory(path, o);
  if (!path.toLowerCase().endsWith('.gguf'))
    throw new InputError(
      `model ${path}: expected a .gguf file or a Hugging Face directory (config.json, *.safetensors, tokenizer.json)`,
    );
  const { basename } = await import('node:path');
  return fromGgufBytes(await readFileInSlices(path, info.size, o), basename(path), o);
}

async function readFileInSlices(path: string, size: number, o: ReadOptions): Promise<Uint8Array> {
  const { constants } = await import('node:buffer');
  if (size > constants.MAX_LENGTH)
    throw new UnsupportedError(
      `model ${path} is ${size} bytes; this Node holds at most ${constants.MAX_LENGTH} in one buffer`,
    );
  const { open } = await import('node:fs/promises');
  const file = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(size);
    for (let at = 0; at < size; ) {
      o.signal?.throwIfAborted();
      const { bytesRead } = await file.read(buf, at, Math.min(SLICE_BYTES, size - at), at);
      if (bytesRead === 0) throw new InputError(`model ${path} ended at byte ${at} of ${size} while being read`);
      at += bytesRead;
      o.onProgress?.({ phase: 'read', loadedBytes: at, totalBytes: size });
    }
    return buf;
  } finally {
    await file.close();
  }
}

/** A Blob (a File in the browser) read in pieces: the header, then runs of tensors; never one whole-file copy. */
async function fromGgufBlob(blob: Blob, o: ReadOptions): Promise<ModelFiles> {
  const name = typeof (blob as File).name === 'string' && (blob as File).name ? (blob as File).name : 'model.gguf';
  const onProgress = o.onProgress;
  const { model, header } = await readGgufSource(blobSource(blob, name), {
    signal: o.signal,
    onProgress: onProgress && ((p) => onProgress({ phase: 'read', ...p })),
  });
  o.signal?.throwIfAborted();
  return { model, ...templateAndSpecial(header.metadata) };
}

function fromGgufBytes(bytes: Uint8Array, name: string, o: ReadOptions): ModelFiles {
  o.signal?.throwIfAborted();
  o.onProgress?.({ phase: 'parse', loadedBytes: bytes.length, totalBytes: bytes.length });
  const model = ggufModel(bytes, name);
  return { model, ...templateAndSpecial(parseGguf(bytes, name).metadata), gguf: bytes };
}

function templateAndSpecial(meta: Map<string, GgufValue>): Pick<ModelFiles, 'chatTemplate' | 'special'> {
  const template = meta.get('tokenizer.chat_template');
  return {
    chatTemplate: typeof template === 'string' ? template : undefined,
    special: { bos: tokenAt(meta, 'tokenizer.ggml.bos_token_id'), eos: tokenAt(meta, 'tokenizer.ggml.eos_token_id') },
  };
}

function tokenAt(meta: Map<string, GgufValue>, key: string): string | undefined {
  const id = meta.get(key);
  const tokens = meta.get('tokenizer.ggml.tokens');
  if (typeof id !== 'number' || !Array.isArray(tokens)) return undefined;
  const t = tokens[id];
  return typeof t === 'string' ? t : undefined;
}

async function readHfDirectory(dir: string, o: ReadOptions): Promise<ModelFiles> {
  const { readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { loadHfModel } = await import('../model/load/load.js');
  o.onProgress?.({ phase: 'parse', loadedBytes: 0, totalBytes: 0 });
  const model = loadHfModel(dir);
  let config: Record<string, unknown> = {};
  const text = await readFile(join(dir, 'tokenizer_config.json'), 'utf8').catch(() => undefined);
  if (text !== undefined) {
    try {
      config = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new InputError(`${dir}/tokenizer_config.json is not JSON: ${(e as Error).message}`);
    }
  }
  const jinja = await readFile(join(dir, 'chat_template.jinja'), 'utf8').catch(() => undefined);
  return {
    model,
    chatTemplate: templateFromConfig(config.chat_template) ?? jinja,
    special: { bos: tokenText(config.bos_token), eos: tokenText(config.eos_token) },
    directory: dir,
  };
}
