// Saved sessions: a header (format version, the model's fingerprint, attention method, positions, context
// size, token count) and the context's token ids, then room for each layer's cache state. Today's decoders
// expose no cache state through the Decoder interface, so loading replays the saved tokens through the
// prefill (exact, and as fast as a prefill); when the layer objects (src/attention/layer.ts) can save and
// restore their caches (LayerCacheState below), `caches` carries them and loading restores instead.
//
// File: "LCTXSESS" | u32 version | u32 header bytes | header JSON | pad to 8 | u32 ids [tokenCount] | caches
import { InputError } from '../errors.js';
import type { LoadedModel, RopeScaling } from '../model/types.js';
import { SessionMismatchError } from './errors.js';

export const SESSION_MAGIC = 'LCTXSESS';
export const SESSION_VERSION = 1;

/** The state one layer object would hand over to be saved, and take back to restore (not produced yet). */
export interface LayerCacheState {
  /** The layer's method spec; restoring into a layer of another method is a mismatch. */
  spec: string;
  /** Tokens the cache has seen (ring caches keep fewer rows). */
  tokens: number;
  /** Named host copies of what the cache holds, e.g. dense `k`, `v` [Hkv, n, D]; a ring's `k`, `v`, `head`;
   * CCA's `coreK`, `coreV`, `rawK`, `rawV`, `rawHead`; DSA's `k`, `v`, `indexKeys`, `indexScales`. */
  arrays: Record<string, { dtype: 'f32' | 'f16' | 'i8' | 'i32' | 'u32'; shape: number[]; bytes: Uint8Array }>;
}

export interface SessionPositions {
  rope: RopeScaling;
  ropeTheta: number;
  ropeLayout: 'interleaved' | 'half';
}

export interface SessionHeader {
  format: 'longctx-session';
  version: number;
  model: { fingerprint: string; source: string; architecture: string; layers: number; vocabSize: number };
  attention: string;
  positions: SessionPositions;
  contextSize: number;
  tokenCount: number;
  /** Per-layer cache states (offsets into the file), or null: the tokens are replayed on load. */
  caches: null;
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

export function encodeSessionFile(header: SessionHeader, ids: readonly number[]): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const start = Math.ceil((16 + json.length) / 8) * 8;
  const out = new Uint8Array(start + 4 * ids.length);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(SESSION_MAGIC), 0);
  view.setUint32(8, SESSION_VERSION, true);
  view.setUint32(12, json.length, true);
  out.set(json, 16);
  ids.forEach((id, i) => view.setUint32(start + 4 * i, id, true));
  return out;
}

export function decodeSessionFile(bytes: Uint8Array, name: string): { header: SessionHeader; ids: number[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 16 || new TextDecoder().decode(bytes.subarray(0, 8)) !== SESSION_MAGIC)
    throw new InputError(`${name} is not a longctx session file (it does not start with ${SESSION_MAGIC})`);
  const version = view.getUint32(8, true);
  if (version !== SESSION_VERSION)
    throw new SessionMismatchError(
      `${name} is a version ${version} session file; this longctx reads version ${SESSION_VERSION}`,
    );
  const length = view.getUint32(12, true);
  if (16 + length > bytes.length)
    throw new InputError(`${name}: the header runs past the end of the file (truncated?)`);
  let header: SessionHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + length))) as SessionHeader;
  } catch (e) {
    throw new InputError(`${name}: the header is not JSON: ${(e as Error).message}`);
  }
  const n = header.tokenCount;
  const start = Math.ceil((16 + length) / 8) * 8;
  if (!Number.isSafeInteger(n) || n < 0 || start + 4 * n > bytes.length)
    throw new InputError(`${name}: ${n} tokens do not fit the file's ${bytes.length} bytes (truncated?)`);
  const ids: number[] = new Array(n);
  for (let i = 0; i < n; i++) ids[i] = view.getUint32(start + 4 * i, true);
  return { header, ids };
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
}
