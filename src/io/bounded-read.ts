// Reading and writing files as one bounded step with typed errors. A regular file is checked by size before
// it is read; anything else (/dev/zero, a pipe, /dev/stdin) is streamed in chunks and refused as soon as it
// passes the cap, so no input can make the process read without end. System errors (ENOENT, EISDIR,
// EACCES, ENOSPC) become one line naming the file.
import { closeSync, fstatSync, openSync, readSync, writeFileSync } from 'node:fs';
import { DeviceError, InputError, OutOfMemoryError } from '../errors.js';
import { formatBytes } from './limits.js';
import { hostMemoryBudget } from './host-memory.js';

const CHUNK = 1 << 20;

function systemMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const why: Record<string, string> = {
    ENOENT: 'no such file or folder',
    EISDIR: 'is a folder, not a file',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    ENOTDIR: 'a part of the path is not a folder',
    ENOSPC: 'no space left on the device',
    EROFS: 'read-only file system',
    EMFILE: 'too many open files',
  };
  return (err.code && why[err.code]) ?? err.message;
}

/**
 * The whole file, at most `maxBytes` (and within the host memory budget); `what` names it in errors.
 * `declaredBytes`, given the bytes read so far, returns the file's size once its header says it, so a
 * stream that runs past what its header declares stops there; a negative answer stops reading at once
 * (the header is bad: the parser of what was read names why); null: the header is good but says no size
 * (read on to the cap); undefined: not enough read yet (asked again when what is read has doubled).
 */
export function readBounded(
  path: string,
  maxBytes: number,
  what: string,
  envName?: string,
  declaredBytes?: (head: Buffer) => number | null | undefined,
): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new InputError(`cannot read ${what} ${path}: ${systemMessage(e)}`);
  }
  const raise = envName ? ` (raise it with ${envName})` : '';
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new InputError(`cannot read ${what} ${path}: it is a folder, not a file`);
    if (st.isFile()) {
      if (st.size > maxBytes)
        throw new InputError(
          `${what} ${path} is ${formatBytes(st.size)}, more than the limit of ${formatBytes(maxBytes)}${raise}`,
        );
      const budget = hostMemoryBudget();
      if (st.size > budget)
        throw new OutOfMemoryError(
          `${what} ${path} is ${formatBytes(st.size)}, more than the ${formatBytes(budget)} of host memory available`,
          st.size,
          budget,
        );
    }
    // Streamed even for regular files: a file that grows while read still stops at the cap.
    const chunks: Buffer[] = [];
    let total = 0;
    let declared: number | undefined;
    let ask = declaredBytes;
    let askAt = 1;
    const cap = Math.min(maxBytes, hostMemoryBudget());
    for (;;) {
      if (ask && total >= askAt) {
        const d = ask(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total));
        askAt = 2 * total; // the head is joined again only once it has doubled: linear in all
        if (d !== undefined) ask = undefined;
        if (d !== undefined && d !== null && d < 0) break;
        if (d !== undefined && d !== null && d > cap)
          throw new InputError(
            `${what} ${path}: its header declares ${formatBytes(d)}, more than the limit of ${formatBytes(cap)}${raise}`,
          );
        if (d !== null) declared = d;
      }
      if (declared !== undefined && total > declared)
        throw new InputError(`${what} ${path} has more bytes than its header declares (${declared})`);
      const chunk = Buffer.allocUnsafe(
        Math.min(CHUNK, cap + 1 - total, declared === undefined ? CHUNK : declared + 1 - total),
      );
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      total += n;
      if (total > cap)
        throw new InputError(
          `${what} ${path} gives more than the limit of ${formatBytes(cap)}${raise} (a device or pipe without end?)`,
        );
    }
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
  } catch (e) {
    if (e instanceof InputError || e instanceof OutOfMemoryError) throw e;
    throw new InputError(`cannot read ${what} ${path}: ${systemMessage(e)}`);
  } finally {
    closeSync(fd);
  }
}

/** Writes a whole file; a missing folder or a full disk is one typed line (InputError, DeviceError). */
export function writeChecked(path: string, bytes: Uint8Array | string, what = 'output'): void {
  try {
    writeFileSync(path, bytes);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const message = `cannot write ${what} ${path}: ${systemMessage(e)}`;
    // A full or failing disk is the machine's problem (exit 1); a bad path is the caller's (exit 2).
    if (code === 'ENOSPC' || code === 'EIO' || code === 'EDQUOT') throw new DeviceError(message);
    throw new InputError(message);
  }
}
