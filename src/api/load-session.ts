// loadSession(model, file): a saved context back in a new session, after checking that the file was made with
// this model, attention method and position scheme (SessionMismatchError otherwise): from its saved caches
// where the session's layers take them, else by replaying its tokens.
import { InputError } from '../errors.js';
import type { Model, SessionOptions } from './model.js';
import type { PrefillOptions, Session } from './session.js';
import { checkHeader, decodeSessionFile, type DecodedSession } from './session-file.js';
import { parseRopeSpec } from '../model/positions/rope-scaling.js';

export interface LoadSessionOptions extends PrefillOptions {
  /** Context of the new session (default: the saved one). */
  contextSize?: number;
  /** Must equal the saved method when given (default: the saved one). */
  attention?: string;
  rope?: SessionOptions['rope'];
  chunk?: number;
  /** Filled in when given: seconds spent reading and checking the file, and restoring the session from it. */
  timings?: { readSeconds?: number; restoreSeconds?: number };
}

export async function loadSession(
  model: Model,
  source: string | Uint8Array,
  o: LoadSessionOptions = {},
): Promise<Session> {
  let decoded: DecodedSession;
  let name = 'the session';
  const t0 = performance.now();
  if (typeof source === 'string') {
    name = source;
    // Size checked against the limit before reading; read array by array (node-only module, loaded here).
    const { readSessionStream } = await import('./session-stream.js');
    decoded = readSessionStream(source);
  } else decoded = decodeSessionFile(source, name);
  const { header, ids, saved } = decoded;
  const c = model.config;
  const contextSize = o.contextSize ?? header.contextSize;
  const attention = o.attention ?? header.attention;
  const rope = typeof o.rope === 'string' ? parseRopeSpec(o.rope) : (o.rope ?? c.rope);
  // Checked before the session's caches are allocated.
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
  if (o.timings) o.timings.readSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const session = await model.createSession({ contextSize, attention, rope, chunk: o.chunk });
  try {
    await session.restore(ids, o, saved);
    if (o.timings) o.timings.restoreSeconds = (performance.now() - t1) / 1000;
    return session;
  } catch (e) {
    session.dispose();
    throw e;
  }
}
