// The host memory a Node process may plan to hold (node:os), apart from limits.ts so that the browser bundle,
// which has no such number, does not import Node.
import { freemem, totalmem } from 'node:os';
import { InputError } from '../errors.js';

/**
 * Bytes this process may plan to hold on the host: LONGCTX_HOST_MEMORY_BYTES, else 90% of the memory
 * the OS calls available (never more than 90% of the total).
 */
export function hostMemoryBudget(): number {
  // A browser has no such figure (node:os is a stub there): the page plans against its own.
  if (typeof process === 'undefined') return Number.POSITIVE_INFINITY;
  const raw = process.env.LONGCTX_HOST_MEMORY_BYTES;
  if (raw !== undefined && raw !== '') {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0)
      throw new InputError(`LONGCTX_HOST_MEMORY_BYTES must be a positive number, got '${raw}'`);
    return n;
  }
  return Math.floor(0.9 * Math.min(freemem(), totalmem()));
}
