// loadSession(model, file): a saved context back in a new session, after checking that the file was made with
// this model, attention method and position scheme (SessionMismatchError otherwise): from its saved caches
// where the session's layers take them, else by replaying its tokens. A file's layers are read while the layer
// before them restores (session-prefetch.ts); bytes in memory are used where they lie.
import { InputError } from '../errors.js';
import type { Model, SessionOptions } from './model.js';
import type { PrefillOptions, Session } from './session.js';
import {
  checkHeader,
  decodeSession,
  decodeSessionFile,
  decodeSessionLayout,
  type SessionHeader,
} from './session-file.js';
import type { PendingCaches } from '../model/forward/decoder-cpu.js';
import { arrayOf, entryElementBytes } from './session-arrays.js';
import type { PrefetchedCaches } from './session-prefetch.js';
import { parseRopeSpec } from '../model/positions/rope-scaling.js';

export interface LoadSessionOptions extends PrefillOptions {
  /** Context of the new session (default: the saved one). */
  contextSize?: number;
  /** Must equal the saved method when given (default: the saved one). */
  attention?: string;
  rope?: SessionOptions['rope'];
  chunk?: number;
  /**
   * Filled in when given. readSeconds: reading and checking the head, plus the seconds during which a read of the
   * layers' arrays was under way; restoreSeconds: creating the session and restoring it, less the seconds it
   * waited for those reads. The layers are read while the layer before restores, so the two can add up to more
   * than the load took; the load is at least the larger of them.
   */
  timings?: { readSeconds?: number; restoreSeconds?: number };
}

/** A session file's head, and its saved caches where it has them (layers read as the restore asks for them). */
export interface LoadedSession {
  header: SessionHeader;
  ids: number[];
  saved?: { caches: PendingCaches; logits: Float32Array };
  /** The layers' reads (a file on disk): start() before the restore asks for layer 0. */
  prefetch?: PrefetchedCaches;
}

export async function loadSession(
  model: Model,
  source: string | Uint8Array,
  o: LoadSessionOptions = {},
): Promise<Session> {
  const t0 = performance.now();
  if (typeof source !== 'string') return restore(model, decodeSessionFile(source, 'the session'), 'the session', o, t0);
  return withSessionLoad(source, (loaded) => restore(model, loaded, source, o, t0));
}

/**
 * Opens the session file at `path` (its size checked against the limit before reading), reads and checks its head
 * and gives it to `use`, with the caches' layers to be read while the layer before restores; the file stays open
 * until `use` has settled and no read of it is under way. A pipe is read whole.
 */
export async function withSessionLoad<T>(path: string, use: (loaded: LoadedSession) => Promise<T>): Promise<T> {
  // Node-only modules, loaded here (the package's browser build has no file system).
  const { MAX_BUFFER, withSessionFile } = await import('./session-stream.js');
  const { prefetchCaches } = await import('./session-prefetch.js');
  return withSessionFile(path, {}, (bytes, fd) => {
    if (fd < 0) return use(decodeSession(bytes, path)); // a pipe, read whole
    const layout = decodeSessionLayout(bytes, path);
    const { header, ids, caches } = layout;
    if (!caches) return use({ header, ids });
    const logits = caches.logits;
    const read = bytes.read(caches.regionAt + logits.offset, logits.bytes, entryElementBytes(logits));
    const prefetch = prefetchCaches(fd, { header, ids, caches }, path, MAX_BUFFER);
    const saved = { caches: prefetch.caches, logits: arrayOf(logits, read).data as Float32Array };
    // The file closes once no read of it is under way, whatever `use` did.
    return use({ header, ids, saved, prefetch }).finally(() => prefetch.settled());
  });
}

async function restore(model: Model, loaded: LoadedSession, name: string, o: LoadSessionOptions, t0: number) {
  const { header, ids, saved, prefetch } = loaded;
  const c = model.config;
  const contextSize = o.contextSize ?? header.contextSize;
  const attention = o.attention ?? header.attention;
  const rope = typeof o.rope === 'string' ? parseRopeSpec(o.rope) : (o.rope ?? c.rope);
  // Checked before the session's caches are allocated and before any layer is read.
  checkHeader(
    header,
    {
      model: {
        fingerprint: await model.fingerprint(),
        source: model.source,
        architecture: c.architecture,
        layers: c.layers,
        vocabSize: c.vocabSize,
      },
      attention,
      positions: { rope, ropeTheta: c.ropeTheta, ropeLayout: c.ropeLayout },
      contextSize,
    },
    name,
  );
  const bad = ids.find((id) => id >= c.vocabSize);
  if (bad !== undefined) throw new InputError(`${name}: token id ${bad} is outside the vocabulary of ${c.vocabSize}`);
  const headSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  prefetch?.start(); // layer 0 is read while the session's caches are made
  const session = await model.createSession({ contextSize, attention, rope, chunk: o.chunk });
  try {
    await session.restore(ids, o, saved);
    if (o.timings) {
      o.timings.readSeconds = headSeconds + (prefetch?.readSeconds ?? 0);
      o.timings.restoreSeconds = (performance.now() - t1) / 1000 - (prefetch?.waitSeconds ?? 0);
    }
    return session;
  } catch (e) {
    session.dispose();
    throw e;
  }
}
