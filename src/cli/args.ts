// Command-line parsing shared by the subcommands: node's parseArgs, with usage errors as typed errors.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InputError } from '../errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(argv: string[], options: Options): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | undefined
    >;
  } catch (e) {
    throw new InputError((e as Error).message);
  }
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
  return n;
}

export function intList(values: Record<string, unknown>, name: string, fallback: number[]): number[] {
  const v = values[name];
  if (v === undefined) return fallback;
  const list = String(v)
    .split(',')
    .map((s) => {
      const m = /^(\d+)([kK]?)$/.exec(s.trim());
      if (!m) throw new InputError(`--${name}: '${s}' is not a positive integer (1024 or 1K)`);
      return Number(m[1]) * (m[2] ? 1024 : 1);
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
