// The limits every input is checked against before anything is read or allocated from it, in one place.
// Each can be raised (or lowered) with an environment variable of its name, LONGCTX_MAX_<NAME> (bytes or a
// count), so a real model past a bound needs no code change; README "Limits" lists them. Free of Node (the
// browser bundle checks models against the same limits); the host memory budget is in host-memory.ts.
import { InputError } from '../errors.js';

/** name -> [default, what it bounds]. Bytes where the name ends in _BYTES. */
const DEFAULTS = {
  /** One .npy array (q, k, v, indexer inputs): a 128K x 32-head x 128 f32 tensor is 2 GiB. */
  NPY_BYTES: [4 * 2 ** 30, '.npy file'],
  /** --prompt-file: 64 MiB of text is about 16M tokens. */
  PROMPT_BYTES: [64 * 2 ** 20, 'prompt file'],
  /** config.json, tokenizer.json, tokenizer_config.json, model.safetensors.index.json. */
  JSON_BYTES: [256 * 2 ** 20, 'JSON file'],
  /** A saved session: the KV caches of a 1B model at 128K in f32 are about 8 GiB. */
  SESSION_BYTES: [64 * 2 ** 30, 'session file'],
  LAYERS: [1024, 'layers'],
  HEADS: [1024, 'attention heads'],
  HEAD_DIM: [4096, 'head dim'],
  HIDDEN: [1 << 17, 'hidden size'],
  INTERMEDIATE: [1 << 20, 'intermediate (MLP) size'],
  VOCAB: [1 << 22, 'vocabulary size'],
  CONTEXT: [1 << 27, 'context length'],
} as const satisfies Record<string, readonly [number, string]>;

export type LimitName = keyof typeof DEFAULTS;

/** The process environment in Node; none in a browser (the defaults hold there). */
export function environment(): Record<string, string | undefined> {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
}

/** The limit in force: LONGCTX_MAX_<NAME> if set to a positive number, else the default. */
export function limit(name: LimitName): number {
  const raw = environment()[`LONGCTX_MAX_${name}`];
  if (raw === undefined || raw === '') return DEFAULTS[name][0];
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0)
    throw new InputError(`LONGCTX_MAX_${name} must be a positive number, got '${raw}'`);
  return n;
}

/** `value` within [1, limit(name)], or an InputError naming the field, the bound and how to raise it. */
export function checkBound(name: LimitName, value: number, where: string): void {
  const max = limit(name);
  if (value > max)
    throw new InputError(
      `${where} is ${value}, beyond the ${DEFAULTS[name][1]} limit of ${max} (raise it with LONGCTX_MAX_${name})`,
    );
}

/** Bytes in binary units with `digits` decimals ("512 B", "1.5 MiB"): the one formatter of limits, plans and reports. */
export function formatBytes(bytes: number, digits = 1): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} B` : `${v.toFixed(digits)} ${units[u]}`;
}
