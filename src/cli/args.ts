// Command-line parsing shared by the subcommands: node's parseArgs, with usage errors as typed errors.
// Numeric options are checked here by name (one table for every subcommand), so `--seed 1.5` or
// `--reps 0` fail as one line before anything runs; negative numbers are taken as values, not flags.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InputError } from '../errors.js';
import { MAX_HOSTS } from '../attention/spec.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** What a numeric option may hold: an integer or any finite number, within [min, max] (min exclusive if `above`). */
interface NumericRule {
  integer: boolean;
  min: number;
  max: number;
  above?: boolean;
}

const int = (min: number, max: number): NumericRule => ({ integer: true, min, max });
const real = (min: number, max: number, above = false): NumericRule => ({ integer: false, min, max, above });

/** Every numeric option of every subcommand; the bounds are sanity bounds, the device's own limits come later. */
export const NUMERIC_OPTIONS: Record<string, NumericRule> = {
  seed: int(0, 2 ** 32 - 1),
  scale: real(0, 1e4, true),
  temperature: real(0, 100),
  'top-p': real(0, 1, true),
  reps: int(1, 1e6),
  warmup: int(0, 1e6),
  'max-tokens': int(0, 2 ** 31 - 1),
  chunk: int(1, 1 << 16),
  heads: int(1, 4096),
  'kv-heads': int(1, 4096),
  'head-dim': int(1, 1 << 16),
  'budget-seconds': real(0, 1e7, true),
  timeout: real(0, 7 * 86400, true),
  'compute-timeout': real(0, 7 * 86400, true),
  hosts: int(1, MAX_HOSTS),
};

/** The largest token count a length list accepts (64M); beyond it no device here holds one head's scores. */
export const MAX_LENGTH_TOKENS = 1 << 26;

/** `--name -1` as `--name=-1`, so that parseArgs reads a negative number as the value of a string option. */
function joinNegativeValues(argv: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const name = a.startsWith('--') ? a.slice(2) : undefined;
    const next = argv[i + 1];
    if (name && options[name]?.type === 'string' && next !== undefined && /^-(\d|\.\d|Infinity)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

export function parse(argv: string[], options: Options): Record<string, string | boolean | undefined> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: false })
      .values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new InputError((e as Error).message);
  }
  for (const name of Object.keys(values)) if (Object.hasOwn(NUMERIC_OPTIONS, name)) numberOption(values, name);
  return values;
}

export function required(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new InputError(`--${name} is required`);
  return v;
}

export function numberOption(values: Record<string, unknown>, name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n))
    throw new InputError(`--${name} must be a number, got '${v}'`);
  const rule = Object.hasOwn(NUMERIC_OPTIONS, name) ? NUMERIC_OPTIONS[name] : undefined;
  if (rule) {
    const low = rule.above ? n <= rule.min : n < rule.min;
    if ((rule.integer && !Number.isInteger(n)) || low || n > rule.max) {
      const kind = rule.integer ? 'an integer' : 'a number';
      const range = rule.above ? `above ${rule.min} and at most ${rule.max}` : `from ${rule.min} to ${rule.max}`;
      throw new InputError(`--${name} must be ${kind} ${range}, got '${v}'`);
    }
  }
  return n;
}

export function intList(
  values: Record<string, unknown>,
  name: string,
  fallback: number[],
  max = MAX_LENGTH_TOKENS,
): number[] {
  const v = values[name];
  if (v === undefined) return fallback;
  const list = String(v)
    .split(',')
    .map((s) => {
      const m = /^(\d{1,15})([kKmM]?)$/.exec(s.trim());
      if (!m) throw new InputError(`--${name}: '${s}' is not a positive integer (1024, 1K or 1M)`);
      const n = Number(m[1]) * (m[2] === '' ? 1 : /[kK]/.test(m[2]) ? 1024 : 1024 * 1024);
      if (n > max) throw new InputError(`--${name}: ${s} is more than the limit of ${max} (${max / 1024 ** 2}M)`);
      return n;
    });
  if (list.some((n) => n < 1)) throw new InputError(`--${name}: values must be at least 1`);
  return list;
}

export function backendOption(values: Record<string, unknown>): 'cpu' | 'webgpu' | 'auto' {
  const b = (values.backend as string | undefined) ?? 'auto';
  if (b !== 'cpu' && b !== 'webgpu' && b !== 'auto')
    throw new InputError(`--backend must be cpu, webgpu or auto, got '${b}'`);
  return b;
}
