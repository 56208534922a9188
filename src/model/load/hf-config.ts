// Hugging Face config.json (Llama, Qwen2, Mistral) -> ModelConfig. Written by transformers 4 (rope_theta at
// the top, context extension under rope_scaling with `type` or `rope_type`) or 5 (everything under
// rope_parameters: {rope_type, rope_theta, factor, ...}). Defaults are those of the transformers config
// classes; a field that is present but wrong is an InputError naming it, never a silent default.
import { readBounded } from '../../io/bounded-read.js';
import { limit } from '../../io/limits.js';
import { checkModelBounds } from './model-bounds.js';
import { InputError, SpecError, UnsupportedError } from '../../errors.js';
import { yarnMscale } from '../positions/rope-scaling.js';
import type { ModelConfig, RopeScaling } from '../types.js';

type Json = Record<string, unknown>;

const ARCHITECTURES: Record<string, ModelConfig['architecture']> = {
  llama: 'llama',
  LlamaForCausalLM: 'llama',
  qwen2: 'qwen2',
  Qwen2ForCausalLM: 'qwen2',
  mistral: 'mistral',
  MistralForCausalLM: 'mistral',
};

/** Per-architecture defaults of transformers' config classes, for fields a config.json may leave out. */
const DEFAULTS: Record<ModelConfig['architecture'], { context: number; eps: number; theta: number; bias: boolean }> = {
  llama: { context: 2048, eps: 1e-6, theta: 10000, bias: false },
  qwen2: { context: 32768, eps: 1e-6, theta: 10000, bias: true },
  mistral: { context: 4096 * 32, eps: 1e-6, theta: 10000, bias: false },
};

export function readHfConfig(path: string): ModelConfig {
  const text = readBounded(path, limit('JSON_BYTES'), 'config', 'LONGCTX_MAX_JSON_BYTES').toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path} is not JSON: ${(e as Error).message}`);
  }
  return parseHfConfig(json, path);
}

export function parseHfConfig(json: unknown, source = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new InputError(`${source}: expected a JSON object`);
  const c = json as Json;
  const where = (key: string): string => `${source}: ${key}`;

  const int = (key: string, fallback?: number, obj: Json = c): number => {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new InputError(`${where(key)} is missing`);
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
      throw new InputError(`${where(key)} must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const num = (key: string, fallback?: number, obj: Json = c): number => {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new InputError(`${where(key)} is missing`);
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      throw outOfRange(v, `${where(key)} must be a positive number`);
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = c[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new InputError(`${where(key)} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const tokenId = (key: string): number | undefined => {
    const v = c[key];
    if (v === undefined || v === null) return undefined;
    // Llama 3 instruct lists several end tokens; the first is the model's own.
    const first = Array.isArray(v) ? v[0] : v;
    if (first === undefined) return undefined;
    if (typeof first !== 'number' || !Number.isSafeInteger(first) || first < 0)
      throw new InputError(`${where(key)} must be a token id or a list of them, got ${JSON.stringify(v)}`);
    return first;
  };

  const architecture = architectureOf(c, source);
  const d = DEFAULTS[architecture];
  const hiddenSize = int('hidden_size');
  const heads = int('num_attention_heads');
  const kvHeads = int('num_key_value_heads', heads);
  if (heads % kvHeads !== 0)
    throw new InputError(`${source}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  let headDim: number;
  if (c.head_dim === undefined || c.head_dim === null) {
    if (hiddenSize % heads !== 0)
      throw new InputError(
        `${source}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${heads}, and head_dim is not given`,
      );
    headDim = hiddenSize / heads;
  } else {
    headDim = int('head_dim');
  }
  if (headDim % 2 !== 0) throw new InputError(`${source}: head dim ${headDim} is odd; RoPE rotates pairs`);
  const contextLength = int('max_position_embeddings', d.context);
  const vocabSize = int('vocab_size');
  const bosTokenId = tokenId('bos_token_id');
  const eosTokenId = tokenId('eos_token_id');
  for (const [key, id] of [
    ['bos_token_id', bosTokenId],
    ['eos_token_id', eosTokenId],
  ] as const) {
    if (id !== undefined && id >= vocabSize)
      throw new InputError(`${where(key)} ${id} is outside the vocabulary of ${vocabSize}`);
  }
  const { theta, rope } = ropeOf(c, source, contextLength, d.theta);
  if (bool('mlp_bias', false))
    throw new UnsupportedError(`${source}: mlp_bias (biases on the MLP projections) is not supported`);
  const config: ModelConfig = {
    architecture,
    vocabSize,
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    layers: int('num_hidden_layers'),
    heads,
    kvHeads,
    headDim,
    rmsNormEps: num('rms_norm_eps', d.eps),
    ropeTheta: theta,
    rope,
    ropeLayout: 'half',
    contextLength,
    tiedEmbeddings: bool('tie_word_embeddings', false),
    // Qwen2 always has q, k, v biases (its attention layer hard-codes them); Llama says so in attention_bias.
    attentionBias: architecture === 'qwen2' ? true : bool('attention_bias', d.bias),
    ...(bosTokenId === undefined ? {} : { bosTokenId }),
    ...(eosTokenId === undefined ? {} : { eosTokenId }),
  };
  checkModelBounds(config, source);
  return config;
}

function architectureOf(c: Json, source: string): ModelConfig['architecture'] {
  const named = typeof c.model_type === 'string' ? c.model_type : undefined;
  const listed =
    Array.isArray(c.architectures) && typeof c.architectures[0] === 'string'
      ? (c.architectures[0] as string)
      : undefined;
  const key = named ?? listed;
  if (key === undefined)
    throw new InputError(`${source}: neither model_type nor architectures says what model this is`);
  const arch = Object.hasOwn(ARCHITECTURES, key) ? ARCHITECTURES[key] : undefined;
  if (!arch)
    throw new UnsupportedError(`${source}: model type '${key}' is not supported; supported: llama, qwen2, mistral`);
  return arch;
}

/** RoPE base and scaling from rope_parameters (transformers 5) or rope_theta + rope_scaling (transformers 4). */
function ropeOf(
  c: Json,
  source: string,
  contextLength: number,
  defaultTheta: number,
): { theta: number; rope: RopeScaling } {
  const params = objectOrNull(c.rope_parameters, `${source}: rope_parameters`);
  const legacy = objectOrNull(c.rope_scaling, `${source}: rope_scaling`);
  const p: Json = params ?? legacy ?? {};
  const label = params ? 'rope_parameters' : 'rope_scaling';
  const field = (key: string): string => `${source}: ${label}.${key}`;
  const num = (key: string, fallback?: number): number => {
    const v = p[key];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new InputError(`${field(key)} is missing`);
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      throw outOfRange(v, `${field(key)} must be a positive number`);
    return v;
  };
  const context = (key: string, fallback?: number): number => {
    const n = num(key, fallback);
    if (!Number.isSafeInteger(n)) throw new InputError(`${field(key)} must be a whole number of tokens, got ${n}`);
    return n;
  };

  const thetaRaw = p.rope_theta ?? c.rope_theta;
  let theta = defaultTheta;
  if (thetaRaw !== undefined && thetaRaw !== null) {
    if (typeof thetaRaw !== 'number' || !Number.isFinite(thetaRaw) || thetaRaw <= 1)
      throw outOfRange(thetaRaw, `${source}: rope_theta must be a number above 1`);
    theta = thetaRaw;
  }

  const typeRaw = p.rope_type ?? p.type ?? 'default';
  if (typeof typeRaw !== 'string')
    throw new InputError(`${field('rope_type')} must be a string, got ${JSON.stringify(typeRaw)}`);
  const factor = (): number => {
    const f = num('factor');
    if (f < 1) throw new SpecError(`${field('factor')} must be at least 1, got ${f}`);
    return f;
  };
  switch (typeRaw) {
    case 'default':
      return { theta, rope: { kind: 'none' } };
    case 'linear':
      return { theta, rope: { kind: 'linear', factor: factor() } };
    case 'ntk':
      return { theta, rope: { kind: 'ntk', factor: factor() } };
    case 'dynamic':
      // transformers scales dynamic NTK against max_position_embeddings (it ignores original_max_position_embeddings).
      return { theta, rope: { kind: 'ntk', factor: factor(), dynamic: true, originalContext: contextLength } };
    case 'yarn': {
      const originalContext = context('original_max_position_embeddings', contextLength);
      // DeepSeek-style configs leave out factor and give the two contexts instead.
      const f = p.factor === undefined || p.factor === null ? contextLength / originalContext : factor();
      const mscale = p.mscale === undefined || p.mscale === null ? undefined : num('mscale');
      const mscaleAllDim =
        p.mscale_all_dim === undefined || p.mscale_all_dim === null ? undefined : num('mscale_all_dim');
      let attentionFactor =
        p.attention_factor === undefined || p.attention_factor === null ? undefined : num('attention_factor');
      if (attentionFactor === undefined && mscale && mscaleAllDim)
        attentionFactor = yarnMscale(f, mscale) / yarnMscale(f, mscaleAllDim);
      const rope: RopeScaling = {
        kind: 'yarn',
        factor: f,
        originalContext,
        betaFast: num('beta_fast', 32),
        betaSlow: num('beta_slow', 1),
      };
      return { theta, rope: attentionFactor === undefined ? rope : { ...rope, attentionFactor } };
    }
    case 'llama3': {
      const rope: RopeScaling = {
        kind: 'llama3',
        factor: factor(),
        originalContext: context('original_max_position_embeddings'),
        lowFreqFactor: num('low_freq_factor'),
        highFreqFactor: num('high_freq_factor'),
      };
      if (rope.highFreqFactor <= rope.lowFreqFactor)
        throw new SpecError(
          `${field('high_freq_factor')} (${rope.highFreqFactor}) must exceed low_freq_factor (${rope.lowFreqFactor})`,
        );
      return { theta, rope };
    }
    default:
      throw new UnsupportedError(
        `${field('rope_type')} '${typeRaw}' is not supported; supported: default, linear, ntk, dynamic, yarn, llama3`,
      );
  }
}

/** A number out of its range is a SpecError (as the same value is on the command line, `--rope`); anything that is
 * not a finite number is an InputError (the file is malformed). */
function outOfRange(v: unknown, what: string): InputError | SpecError {
  const message = `${what}, got ${JSON.stringify(v)}`;
  return typeof v === 'number' && Number.isFinite(v) ? new SpecError(message) : new InputError(message);
}

function objectOrNull(v: unknown, what: string): Json | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v))
    throw new InputError(`${what} must be an object, got ${JSON.stringify(v)}`);
  return v as Json;
}
