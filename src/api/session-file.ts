// Saved sessions: a header (format version, the model's fingerprint, attention method, positions, context
// size, token count), the context's token ids, then (version 2) the decoder's state: each layer's cache as
// host arrays and the last token's logits, so loading restores the caches instead of running a prefill.
// Every layer kind hands its cache over: the kv layers their rows (attention/layers/kv-cache-state.ts), CCA its
// pooled cores and raw ring (cca-cache-state.ts), DSA its rows and index keys (dsa-cache-state.ts; int8 ones
// as i8 arrays), the positioned layers their unrotated rows; but Self-Extend and dual-chunk on WebGPU (keys
// cached rotated per part), whose models are saved with `caches: null`: loading replays the saved tokens
// through the prefill (exact, as fast as a prefill). So does a layer that refuses a state (restoreCache
// false: a ring that lacks rows, int8 index keys on the CPU).
//
// A file can pass 4 GiB (a 1B model's f16 cache at 128K tokens), more than one typed array holds in Node: it
// is written head then array by array and read back the same way (api/session-stream.ts), never as one buffer.
//
// File: "LCTXSESS" | u32 version | u32 header bytes | header JSON | pad to 8 | u32 ids [tokenCount] | pad to 8 |
//       arrays (each at its header offset from here, 8-aligned)
// Every size the header declares is checked against the file and the model before anything is allocated.
import { InputError } from '../errors.js';
import type { LoadedModel, RopeScaling } from '../model/types.js';
import type { SavedCaches } from '../model/forward/decoder-cpu.js';
import type { LayerCacheState, SavedArray } from '../attention/layer.js';
import { SessionMismatchError } from './errors.js';
import {
  arrayBytes,
  arrayOf,
  bytesSource,
  checkArrays,
  entryElementBytes,
  layoutArrays,
  type ArrayEntry,
  type ByteSource,
} from './session-arrays.js';

export type { LayerCacheState } from '../attention/layer.js';

export const SESSION_MAGIC = 'LCTXSESS';
export const SESSION_VERSION = 2;
/** Versions this build reads: 1 (tokens only: replayed) and 2. */
const READS = [1, 2];

/** The decoder's state after the saved tokens, and the logits of the last one (the next token's). */
export interface SavedContext {
  caches: SavedCaches;
  logits: Float32Array;
}

/** Where the saved state's arrays lie in the file. */
export interface CachesHeader {
  promptTokens?: number;
  logits: ArrayEntry;
  layers: Array<Omit<LayerCacheState, 'arrays'> & { arrays: Record<string, ArrayEntry> }>;
}

export interface SessionPositions {
  rope: RopeScaling;
  ropeTheta: number;
  ropeLayout: 'interleaved' | 'half';
  /** A training-free position method (`generate --positions`), when one is used. */
  method?: string;
}

export interface SessionHeader {
  format: 'longctx-session';
  version: number;
  model: { fingerprint: string; source: string; architecture: string; layers: number; vocabSize: number };
  attention: string;
  positions: SessionPositions;
  contextSize: number;
  tokenCount: number;
  /** Per-layer cache states (offsets into the file's arrays), or null: the tokens are replayed on load. */
  caches: CachesHeader | null;
}

/** A fingerprint of the weights: the config, every tensor's name, type and shape, and 3 KiB of each tensor's
 * bytes (start, middle, end). Cheap at any model size; a re-quantisation, another checkpoint or a fine-tune
 * changes it (every weight of a fine-tune moves). */
export async function modelFingerprint(m: LoadedModel): Promise<string> {
  const { createHash } = await import('node:crypto');
  const h = createHash('sha256');
  const { rope: _rope, ...config } = m.config; // positions are checked on their own
  h.update(JSON.stringify(config));
  h.update(String(m.tokenizer.vocabSize));
  const w = m.weights;
  const tensors = [w.tokenEmbedding, w.outputNorm, ...(w.output ? [w.output] : [])];
  for (const l of w.layers) for (const t of Object.values(l)) if (t && 'bytes' in t) tensors.push(t);
  for (const t of tensors) {
    h.update(`${t.name}|${t.dtype}|${t.shape.join('x')}|${t.bytes.byteLength}|`);
    const b = t.bytes;
    const take = (at: number) => h.update(b.subarray(Math.max(0, at), Math.min(b.byteLength, at + 1024)));
    take(0);
    take(Math.floor(b.byteLength / 2) - 512);
    take(b.byteLength - 1024);
  }
  return h.digest('hex');
}

const align8 = (n: number) => Math.ceil(n / 8) * 8;

/** A session file in two parts: `head` (magic, version, header JSON, ids, padded to 8), then `arrays`, each
 * at its entry's offset past the head; the streamed writer (api/session-stream.ts) writes them without joining. */
export interface SessionFilePlan {
  head: Uint8Array;
  arrays: SavedArray[];
  entries: ArrayEntry[];
  /** The whole file's bytes. */
  total: number;
}

export function planSessionFile(
  header: Omit<SessionHeader, 'caches' | 'version'>,
  ids: readonly number[],
  saved?: SavedContext,
): SessionFilePlan {
  let caches: CachesHeader | null = null;
  const arrays: SavedArray[] = [];
  let entries: ArrayEntry[] = [];
  let region = 0;
  if (saved) {
    // The logits first, then each layer's arrays in its order; entries[i] is where arrays[i] lies.
    arrays.push({ dtype: 'f32', shape: [saved.logits.length], data: saved.logits });
    for (const l of saved.caches.layers) arrays.push(...Object.values(l.arrays));
    ({ entries, total: region } = layoutArrays(arrays));
    let at = 1;
    caches = {
      promptTokens: saved.caches.promptTokens,
      logits: entries[0],
      layers: saved.caches.layers.map((l) => ({
        ...l,
        arrays: Object.fromEntries(Object.keys(l.arrays).map((key) => [key, entries[at++]])),
      })),
    };
  }
  const json = new TextEncoder().encode(JSON.stringify({ ...header, version: SESSION_VERSION, caches }));
  const head = assembleHead(json, ids);
  return { head, arrays, entries, total: head.length + region };
}

/** The whole file as one array (a session that fits one; a file past 4 GiB is streamed instead). */
export function encodeSessionFile(
  header: Omit<SessionHeader, 'caches' | 'version'>,
  ids: readonly number[],
  saved?: SavedContext,
): Uint8Array {
  const plan = planSessionFile(header, ids, saved);
  const out = new Uint8Array(plan.total);
  out.set(plan.head, 0);
  plan.arrays.forEach((a, i) => out.set(arrayBytes(a), plan.head.length + plan.entries[i].offset));
  return out;
}

function assembleHead(json: Uint8Array, ids: readonly number[]): Uint8Array {
  const idsAt = align8(16 + json.length);
  const out = new Uint8Array(align8(idsAt + 4 * ids.length));
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(SESSION_MAGIC), 0);
  view.setUint32(8, SESSION_VERSION, true);
  view.setUint32(12, json.length, true);
  out.set(json, 16);
  ids.forEach((id, i) => view.setUint32(idsAt + 4 * i, id, true));
  return out;
}

export interface DecodedSession {
  header: SessionHeader;
  ids: number[];
  /** The saved state (version 2 with caches), else undefined: replay the ids. */
  saved?: SavedContext;
}

/** A session's head read and checked, its arrays not yet read: where each lies (checked against the file). */
export interface SessionLayout {
  header: SessionHeader;
  ids: number[];
  caches?: {
    /** Where the array region starts in the file. */
    regionAt: number;
    logits: ArrayEntry;
    /** Each layer's state, less its arrays, and where its arrays lie. */
    layers: Array<{ state: Omit<LayerCacheState, 'arrays'>; arrays: Record<string, ArrayEntry> }>;
  };
}

export function decodeSessionFile(bytes: Uint8Array, name: string): DecodedSession {
  return decodeSession(bytesSource(bytes), name);
}

/** A session from `source`: the head first, checked, then each array read into its own typed array. */
export function decodeSession(source: ByteSource, name: string): DecodedSession {
  const { header, ids, caches } = decodeSessionLayout(source, name);
  if (!caches) return { header, ids };
  const read = (e: ArrayEntry) => arrayOf(e, source.read(caches.regionAt + e.offset, e.bytes, entryElementBytes(e)));
  const layers: LayerCacheState[] = caches.layers.map((l) => ({
    ...l.state,
    arrays: Object.fromEntries(Object.entries(l.arrays).map(([key, e]) => [key, read(e)])),
  }));
  return {
    header,
    ids,
    saved: {
      caches: { position: ids.length, promptTokens: header.caches?.promptTokens, layers },
      logits: read(caches.logits).data as Float32Array,
    },
  };
}

/** The head of the session in `source` (magic, version, header, ids) and its array entries, every one checked
 * against the others and the file's size; no array is read. */
export function decodeSessionLayout(source: ByteSource, name: string): SessionLayout {
  const size = source.size;
  const start = source.read(0, Math.min(16, size), 1);
  const startView = new DataView(start.buffer, start.byteOffset, start.byteLength);
  if (size < 16 || new TextDecoder().decode(start.subarray(0, 8)) !== SESSION_MAGIC)
    throw new InputError(`${name} is not a longctx session file (it does not start with ${SESSION_MAGIC})`);
  const version = startView.getUint32(8, true);
  if (!READS.includes(version))
    throw new SessionMismatchError(
      `${name} is a version ${version} session file; this longctx reads versions ${READS.join(' and ')}`,
    );
  const length = startView.getUint32(12, true);
  if (16 + length > size) throw new InputError(`${name}: the header runs past the end of the file (truncated?)`);
  let header: SessionHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(source.read(16, length, 1))) as SessionHeader;
  } catch (e) {
    throw new InputError(`${name}: the header is not JSON: ${(e as Error).message}`);
  }
  const h = header as Partial<SessionHeader> | null;
  if (
    typeof h !== 'object' ||
    h === null ||
    typeof h.model?.fingerprint !== 'string' ||
    typeof h.attention !== 'string' ||
    typeof h.positions !== 'object' ||
    h.positions === null ||
    !Number.isSafeInteger(h.contextSize)
  )
    throw new InputError(`${name}: the header lacks the model, attention, positions or context size of a session`);
  const n = header.tokenCount;
  const idsAt = align8(16 + length);
  if (!Number.isSafeInteger(n) || n < 0 || idsAt + 4 * n > size)
    throw new InputError(`${name}: ${n} tokens do not fit the file's ${size} bytes (truncated?)`);
  const idBytes = source.read(idsAt, 4 * n, 4);
  const idView = new DataView(idBytes.buffer, idBytes.byteOffset, idBytes.byteLength);
  const ids: number[] = new Array(n);
  for (let i = 0; i < n; i++) ids[i] = idView.getUint32(4 * i, true);
  const caches = version >= 2 ? header.caches : null;
  header.caches = caches ?? null;
  if (!caches) return { header, ids };
  if (typeof caches !== 'object' || !Array.isArray(caches.layers))
    throw new InputError(`${name}: the header's caches are not a list of layers`);
  caches.layers.forEach((l, i) => {
    const ok = typeof l === 'object' && l !== null && typeof l.arrays === 'object' && l.arrays !== null;
    if (!ok || typeof l.spec !== 'string' || !Number.isSafeInteger(l.tokens) || typeof l.meta !== 'object' || !l.meta)
      throw new InputError(`${name}: layer ${i}'s saved cache has no spec, token count, meta or arrays`);
  });
  const regionAt = align8(idsAt + 4 * n);
  const entries = [caches.logits, ...caches.layers.flatMap((l) => Object.values(l.arrays))];
  const checked = checkArrays(Math.max(0, size - regionAt), entries, name);
  const logits = checked[0];
  if (logits.dtype !== 'f32' || logits.shape.length !== 1)
    throw new InputError(`${name}: the saved logits are not a vector of f32`);
  let at = 1;
  const layers = caches.layers.map(({ arrays, ...state }) => ({
    state,
    arrays: Object.fromEntries(Object.keys(arrays).map((key) => [key, checked[at++]])),
  }));
  return { header, ids, caches: { regionAt, logits, layers } };
}

/** Says how a saved header differs from the session that would load it; nothing when they agree. */
export function checkHeader(
  saved: SessionHeader,
  now: Omit<SessionHeader, 'tokenCount' | 'caches' | 'format' | 'version'>,
  name: string,
): void {
  const differ = (what: string, a: unknown, b: unknown) => {
    throw new SessionMismatchError(
      `${name} was saved with ${what} ${JSON.stringify(a)}, but this session has ${JSON.stringify(b)}`,
    );
  };
  if (saved.model.fingerprint !== now.model.fingerprint)
    differ(
      'model',
      `${saved.model.source} (fingerprint ${saved.model.fingerprint.slice(0, 12)})`,
      `${now.model.source} (fingerprint ${now.model.fingerprint.slice(0, 12)})`,
    );
  if (saved.attention !== now.attention) differ('attention', saved.attention, now.attention);
  if (JSON.stringify(saved.positions) !== JSON.stringify(now.positions))
    differ('positions', saved.positions, now.positions);
  if (saved.tokenCount > now.contextSize)
    throw new SessionMismatchError(
      `${name} holds ${saved.tokenCount} tokens, more than this session's context of ${now.contextSize}`,
    );
  const c = saved.caches;
  if (c && c.layers.length !== now.model.layers) differ('layers', c.layers.length, now.model.layers);
  if (c && c.logits.shape[0] !== now.model.vocabSize) differ('a vocabulary of', c.logits.shape[0], now.model.vocabSize);
}
