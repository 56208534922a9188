// Session files of any size the limit allows, without a buffer of the whole file: a Node typed array stops at
// 4 GiB, and a 1B model's f16 cache at 128K tokens is 4 GiB by itself. Writing sends the head, then each array
// as a view of its own bytes (nothing copied); reading checks the file's size, reads the head, checks every
// entry it declares, then reads each array straight into its own typed array. `maxBuffer` is the largest
// buffer either makes (a test sets it small to prove no whole-file buffer is made).
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { DeviceError, InputError, OutOfMemoryError } from '../errors.js';
import { bytesSource, type ByteSource } from './session-arrays.js';
import {
  decodeSession,
  SESSION_MAGIC,
  type DecodedSession,
  type SessionFilePlan,
  type SessionHeader,
} from './session-file.js';
import type { ArrayEntry } from './session-arrays.js';
import { readBounded } from '../io/bounded-read.js';
import { hostMemoryBudget } from '../io/host-memory.js';
import { formatBytes, limit } from '../io/limits.js';

/** The most bytes one typed array holds in Node 20 (2^32 - 1 would do; a page less keeps clear of it). */
export const MAX_BUFFER = 2 ** 32 - 4096;
/** The most bytes one readSync/writeSync call moves (Node's limit is 2^31 - 1). */
const PIECE = 1 << 30;

export interface StreamOptions {
  /** The largest buffer made (default MAX_BUFFER). */
  maxBuffer?: number;
}

const ENV = 'LONGCTX_MAX_SESSION_BYTES';

function tooBig(what: string, bytes: number, max: number, name: string): InputError {
  return new InputError(`${name}: ${what} is ${formatBytes(bytes)}, more than one buffer of ${formatBytes(max)}`);
}

/** Writes the plan to `path`; returns the file's bytes. A full disk is a DeviceError, a bad path an InputError. */
export function writeSessionStream(path: string, plan: SessionFilePlan, o: StreamOptions = {}): number {
  const max = o.maxBuffer ?? MAX_BUFFER;
  if (plan.head.length > max) throw tooBig('the header and token ids', plan.head.length, max, path);
  if (plan.total > limit('SESSION_BYTES'))
    throw new InputError(`${path}: the session is ${formatBytes(plan.total)}, more than the limit (raise ${ENV})`);
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (e) {
    throw new InputError(`cannot write session ${path}: ${(e as Error).message}`);
  }
  try {
    let at = 0;
    const put = (bytes: Uint8Array, pos: number) => {
      for (let done = 0; done < bytes.length; ) {
        const n = Math.min(PIECE, bytes.length - done);
        done += writeSync(fd, bytes, done, n, pos + done);
      }
      at = pos + bytes.length;
    };
    put(plan.head, 0);
    plan.arrays.forEach((a, i) => {
      put(
        new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength),
        plan.head.length + plan.entries[i].offset,
      );
    });
    // The last array's padding to 8, so the file is the plan's size.
    if (at < plan.total) put(new Uint8Array(plan.total - at), at);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const message = `cannot write session ${path}: ${(e as Error).message}`;
    throw code === 'ENOSPC' || code === 'EIO' || code === 'EDQUOT' ? new DeviceError(message) : new InputError(message);
  } finally {
    closeSync(fd);
  }
  return plan.total;
}

/** A regular file as a ByteSource: each read is a fresh buffer (at most `max` bytes) filled from the file. */
function fileSource(fd: number, size: number, path: string, max: number): ByteSource {
  return {
    size,
    read(at, bytes) {
      if (bytes > max) throw tooBig(`an array of the file`, bytes, max, path);
      const out = new Uint8Array(bytes); // offset 0: aligned for any element size
      for (let done = 0; done < bytes; ) {
        const n = readSync(fd, out, done, Math.min(PIECE, bytes - done), at + done);
        if (n === 0) throw new InputError(`${path}: the file ended at ${at + done} bytes (truncated while read?)`);
        done += n;
      }
      return out;
    },
  };
}

/** The session at `path`, its size checked against LONGCTX_MAX_SESSION_BYTES and host memory before reading. */
export function readSessionStream(path: string, o: StreamOptions = {}): DecodedSession {
  return withSessionFile(path, o, (source) => decodeSession(source, path));
}

/**
 * Opens the session at `path`, checks its size (LONGCTX_MAX_SESSION_BYTES, host memory) and calls `use` with it as
 * a ByteSource and its descriptor (-1 for a pipe or device, read whole, bounded, and only as far as its head says).
 * The file is closed when `use` returns or its promise settles. A failure of the checks or of a synchronous `use`
 * that is not typed is an InputError; a promise's rejection is left as it is (`use` types its own reads' failures:
 * a restore's ShapeError or DeviceError is no fault of the file).
 */
export function withSessionFile<T>(path: string, o: StreamOptions, use: (source: ByteSource, fd: number) => T): T {
  const maxBytes = limit('SESSION_BYTES');
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(
      `cannot read session ${path}: ${code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`,
    );
  }
  let later = false; // true once `use` returned a promise: the file closes when it settles
  try {
    const st = fstatSync(fd);
    // A pipe or device has no size to check: read it whole, bounded, and only as far as its head says.
    if (!st.isFile()) return use(bytesSource(readBounded(path, maxBytes, 'session', ENV, sessionDeclaredBytes)), -1);
    if (st.size > maxBytes)
      throw new InputError(
        `session ${path} is ${formatBytes(st.size)}, more than the limit of ${formatBytes(maxBytes)} (raise it with ${ENV})`,
      );
    const budget = hostMemoryBudget();
    if (st.size > budget)
      throw new OutOfMemoryError(
        `session ${path} is ${formatBytes(st.size)}, more than the ${formatBytes(budget)} of host memory available`,
        st.size,
        budget,
      );
    const out = use(fileSource(fd, st.size, path, o.maxBuffer ?? MAX_BUFFER), fd);
    if (!(out instanceof Promise)) return out;
    later = true;
    const f = fd;
    return out.finally(() => closeSync(f)) as T;
  } catch (e) {
    if (e instanceof InputError || e instanceof OutOfMemoryError) throw e; // SessionMismatchError is an InputError
    throw new InputError(`cannot read session ${path}: ${(e as Error).message}`);
  } finally {
    if (!later) closeSync(fd);
  }
}

const align8 = (n: number) => Math.ceil(n / 8) * 8;

/**
 * The size of a session whose first bytes are `head`, as its writer laid it out (planSessionFile): -1 when
 * it is no session (/dev/zero stops at its first chunk, not at the cap) or its header is broken (decodeSession
 * names what is wrong), undefined until the header JSON is all there.
 */
export function sessionDeclaredBytes(head: Buffer): number | undefined {
  const magic = head.toString('latin1', 0, Math.min(8, head.length));
  if (magic !== SESSION_MAGIC.slice(0, magic.length)) return -1;
  if (head.length < 16) return undefined;
  const length = head.readUInt32LE(12);
  if (head.length < 16 + length) return undefined;
  try {
    const h = JSON.parse(head.toString('utf8', 16, 16 + length)) as Partial<SessionHeader>;
    const headBytes = align8(align8(16 + length) + 4 * (h.tokenCount as number));
    const version = head.readUInt32LE(8);
    const caches = version >= 2 ? h.caches : null;
    if (!caches) return Number.isSafeInteger(headBytes) ? headBytes : -1;
    const entries: ArrayEntry[] = [caches.logits, ...caches.layers.flatMap((l) => Object.values(l.arrays))];
    const end = Math.max(...entries.map((e) => e.offset + align8(e.bytes)));
    return Number.isSafeInteger(headBytes + end) ? headBytes + end : -1;
  } catch {
    return -1;
  }
}
