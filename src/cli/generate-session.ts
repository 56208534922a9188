// Saved sessions for `longctx generate` (--session F, --save-session F): the library's session file
// (api/session-file.ts), its size checked before it is read and its header checked against the model, method and
// positions before the decoder is allocated; restored from its saved caches where every layer takes them, read
// layer by layer while the layer before restores (api/session-prefetch.ts), else by replaying its tokens.
import { InputError } from '../errors.js';
import { writeSessionStream } from '../api/session-stream.js';
import { withSessionLoad, type LoadedSession } from '../api/load-session.js';
import { checkHeader, modelFingerprint, planSessionFile, type SessionPositions } from '../api/session-file.js';
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

/**
 * Opens the session file at `path`, checks its head against this model and run (SessionMismatchError, InputError)
 * before anything is allocated for it, and gives it to `use`; its caches' layers are read from the file while
 * the layer before them restores (restoreSession), never the whole file at once. The file closes after `use`.
 */
export async function withSession<T>(
  path: string,
  model: LoadedModel,
  run: Partial<RunIdentity>,
  use: (s: LoadedSession) => Promise<T>,
): Promise<T> {
  const fingerprint = await modelFingerprint(model);
  return withSessionLoad(path, async (loaded) => {
    const attention = run.attention ?? loaded.header.attention;
    const now = identity(model, { ...run, attention }, fingerprint);
    checkHeader(loaded.header, { ...now, contextSize: Number.MAX_SAFE_INTEGER }, path);
    const bad = loaded.ids.find((id) => id >= model.config.vocabSize);
    if (bad !== undefined) throw new InputError(`${path}: token id ${bad} is outside the vocabulary`);
    return use(loaded);
  });
}

/** Puts the saved context into a fresh decoder; returns the logits after its last token and how it got them. */
export async function restoreSession(
  decoder: Decoder,
  s: LoadedSession,
  chunk: number,
  onProgress?: (tokens: number, total: number) => void,
): Promise<{ logits: Float32Array; from: 'caches' | 'replay' }> {
  s.prefetch?.start();
  const fromCaches =
    s.saved && s.saved.caches.position === s.ids.length && (await decoder.restoreCaches?.(s.saved.caches));
  s.prefetch?.release(); // generation goes on after this: the two layers' read buffers are not kept for it
  if (fromCaches) return { logits: s.saved!.logits, from: 'caches' };
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
