// The method grammar shared by `attend`, the model runner and the benchmarks: `name` or
// `name:key=value,key=value`. Each method declares its keys; unknown names and keys are SpecErrors.
import { SpecError } from '../errors.js';
import { FLASH_VCHECK_DEFAULT, FLASH_VCHECKS, type FlashVCheck } from '../kernels/flash-tc-wgsl.js';

export interface MethodSpec {
  name: string;
  params: Record<string, string>;
}

/** Known methods and the keys each accepts (later methods add themselves here). */
export const METHOD_KEYS: Record<string, readonly string[]> = {
  dense: [],
  flash: ['variant', 'decode', 'vcheck'],
  window: ['left', 'right', 'variant', 'decode', 'vcheck'],
  sinks: ['tokens', 'left', 'right', 'variant', 'decode', 'vcheck'],
  /** A layer schedule; in a single attention call, `layer=N` picks that layer's method. */
  hybrid: ['every', 'window', 'layer'],
  /** Star Attention: blocks of B, anchor A (default B), the last Q positions are the query. */
  star: ['block', 'anchor', 'query', 'hosts'],
  /** Ring Attention: exact, KV shards around H hosts. */
  ring: ['hosts'],
  /** CCA-Attention: a core per G tokens plus a raw window of W (defaults 16, 1024). */
  cca: ['group', 'window', 'variant'],
  /** DeepSeek Sparse Attention: the indexer's top-k keys per token (default 2048); indexer int8 or float.
   * In a model also: sinks S and local window W always kept (4, 64), P rotary pairs per index head (4), the GPU
   * selection's decide step (kernels/topk-decide-wgsl.ts). */
  dsa: ['topk', 'indexer', 'sinks', 'local', 'pairs', 'decide'],
};

export function parseMethodSpec(text: string): MethodSpec {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  const name = colon < 0 ? trimmed : trimmed.slice(0, colon);
  const rest = colon < 0 ? '' : trimmed.slice(colon + 1);
  const keys = METHOD_KEYS[name];
  if (!keys) throw new SpecError(`unknown attention method '${name}'; known: ${Object.keys(METHOD_KEYS).join(', ')}`);
  const params: Record<string, string> = {};
  if (rest !== '') {
    for (const part of rest.split(',')) {
      const eq = part.indexOf('=');
      if (eq <= 0) throw new SpecError(`'${part}' in '${text}' is not key=value`);
      const key = part.slice(0, eq).trim();
      if (!keys.includes(key))
        throw new SpecError(`method '${name}' has no key '${key}'${keys.length ? `; keys: ${keys.join(', ')}` : ''}`);
      if (key in params) throw new SpecError(`key '${key}' given twice in '${text}'`);
      params[key] = part.slice(eq + 1).trim();
    }
  }
  return { name, params };
}

export function formatMethodSpec(spec: MethodSpec): string {
  const kv = Object.entries(spec.params).map(([k, v]) => `${k}=${v}`);
  return kv.length ? `${spec.name}:${kv.join(',')}` : spec.name;
}

/** Largest integer a spec accepts (2^30 tokens): kernels compare positions in i32 and add windows to them. */
export const MAX_SPEC_INT = 2 ** 30;
/** Most hosts a run spreads over (`--hosts`, `star:hosts=`, `ring:hosts=`): one process or emulated host each. */
export const MAX_HOSTS = 256;

/** A non-negative integer parameter (at most `max`), or the default when absent. */
export function intParam(spec: MethodSpec, key: string, fallback?: number, max = MAX_SPEC_INT): number {
  const raw = spec.params[key];
  if (raw === undefined) {
    if (fallback === undefined) throw new SpecError(`method '${spec.name}' needs ${key}=N`);
    return fallback;
  }
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0)
    throw new SpecError(`${spec.name}: ${key} must be a non-negative integer, got '${raw}'`);
  if (n > max) throw new SpecError(`${spec.name}: ${key}=${raw} is more than the limit of ${max}`);
  return n;
}

export function choiceParam<T extends string>(spec: MethodSpec, key: string, choices: readonly T[], fallback: T): T {
  const raw = spec.params[key];
  if (raw === undefined) return fallback;
  if (!(choices as readonly string[]).includes(raw))
    throw new SpecError(`${spec.name}: ${key} must be one of ${choices.join(', ')}, got '${raw}'`);
  return raw as T;
}

export type FlashVariant = 'auto' | 'portable' | 'subgroup-matrix' | 'tc2';
export const FLASH_VARIANTS: readonly FlashVariant[] = ['auto', 'portable', 'subgroup-matrix', 'tc2'];

/** The `vcheck=` of flash, window and sinks: where the tensor-core kernel tests V for NaN and infinities, once
 * per KV head before it (hoisted) or in every staged tile (tile, the default: FLASH_VCHECK_DEFAULT says why);
 * kernels/flash-tc-wgsl.ts says more. */
export function vcheckParam(spec: MethodSpec): FlashVCheck {
  return choiceParam(spec, 'vcheck', FLASH_VCHECKS, FLASH_VCHECK_DEFAULT);
}

/** The split-KV decoding kernels (attention/flash-decode.ts), side by side; auto takes the default. */
export const DECODE_KERNELS = ['auto', 'decode-v1', 'decode-gqa-v2', 'decode-v3', 'decode-v4'] as const;
export type DecodeKernel = (typeof DECODE_KERNELS)[number];

/** The `decode=` of flash, window and sinks: which split-KV decoding kernel their decoding steps run. */
export function decodeParam(spec: MethodSpec): DecodeKernel {
  return choiceParam(spec, 'decode', DECODE_KERNELS, 'auto');
}

/** The `variant=` of a flash-family spec (flash, window, sinks, cca): the one place it is parsed. A method
 * whose kernels come in other versions names the ones it has (CCA: attention/cca.ts's CCA_VARIANTS). */
export function variantParam(spec: MethodSpec): FlashVariant;
export function variantParam<V extends string>(spec: MethodSpec, variants: readonly V[]): V;
export function variantParam(spec: MethodSpec, variants: readonly string[] = FLASH_VARIANTS): string {
  return choiceParam(spec, 'variant', variants, 'auto');
}
