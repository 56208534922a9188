// Saved sessions for `longctx generate` (--session F, --save-session F): the library's session file
// (api/session-file.ts), streamed array by array (api/session-stream.ts), its size checked before it is read and its header checked against the
// model, method and positions before the decoder is allocated; restored from its saved caches where every
// layer takes them, else by replaying its tokens.
import { InputError } from '../errors.js';
import { readSessionStream, writeSessionStream } from '../api/session-stream.js';
import {
  checkHeader,
  modelFingerprint,
  planSessionFile,
  type DecodedSession,
  type SessionPositions,
} from '../api/session-file.js';
import type { Decoder } from '../model/forward/decoder-cpu.js';
import type { LoadedModel } from '../model/types.js';

export interface RunIdentity {
  /** The run's method; for readSession absent: the saved one (--attention not given). */
  attention: string;
  /** The training-free position method, when one is used. */
  positionMethod?: string;
}

function identity(model: LoadedModel, run: RunIdentity, fingerprint: string) {
  const c = model.config;
  const positions: SessionPositions = { rope: c.rope, ropeTheta: c.ropeTheta, ropeLayout: c.ropeLayout };
  if (run.positionMethod) positions.method = run.positionMethod;
  return {
    model: {
      fingerprint,
      source: model.source,
      architecture: c.architecture,
      layers: c.layers,
      vocabSize: c.vocabSize,
    },
    attention: run.attention,
    positions,
  };
}

/** The session file at `path`, checked against this model and run (SessionMismatchError, InputError). */
export async function readSession(
  path: string,
  model: LoadedModel,
  run: Partial<RunIdentity>,
): Promise<DecodedSession> {
  const decoded = readSessionStream(path);
  const attention = run.attention ?? decoded.header.attention;
  const now = identity(model, { ...run, attention }, await modelFingerprint(model));
  checkHeader(decoded.header, { ...now, contextSize: Number.MAX_SAFE_INTEGER }, path);
  const bad = decoded.ids.find((id) => id >= model.config.vocabSize);
  if (bad !== undefined) throw new InputError(`${path}: token id ${bad} is outside the vocabulary`);
  return decoded;
}

/** Puts the saved context into a fresh decoder; returns the logits after its last token and how it got them. */
export async function restoreSession(
  decoder: Decoder,
  s: DecodedSession,
  chunk: number,
  onProgress?: (tokens: number, total: number) => void,
): Promise<{ logits: Float32Array; from: 'caches' | 'replay' }> {
  if (s.saved && (await decoder.restoreCaches?.(s.saved.caches))) return { logits: s.saved.logits, from: 'caches' };
  let logits: Float32Array | undefined;
  for (let at = 0; at < s.ids.length; at += chunk) {
    logits = await decoder.forward(s.ids.slice(at, at + chunk));
    onProgress?.(Math.min(s.ids.length, at + chunk), s.ids.length);
  }
  if (!logits) throw new InputError('the session holds no tokens');
  return { logits, from: 'replay' };
}

/** Writes the decoder's context (its first decoder.position tokens of `ids`) as a session file. */
export async function writeSession(
  path: string,
  model: LoadedModel,
  run: RunIdentity,
  decoder: Decoder,
  ids: readonly number[],
  logits: Float32Array,
  contextSize: number,
): Promise<{ bytes: number; caches: boolean }> {
  const fed = ids.slice(0, decoder.position);
  const caches = await decoder.saveCaches?.();
  const header = {
    format: 'longctx-session' as const,
    ...identity(model, run, await modelFingerprint(model)),
    contextSize,
    tokenCount: fed.length,
  };
  const bytes = writeSessionStream(path, planSessionFile(header, fed, caches ? { caches, logits } : undefined));
  return { bytes, caches: caches !== undefined };
}
