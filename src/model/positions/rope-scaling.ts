// RoPE context extension: the scalings that let a model trained at a short context read a longer one, as
// pure functions of the config. Each one returns the inverse frequencies of the headDim/2 rotated pairs and
// the attention factor (a multiplier on cos and sin). Formulas as Hugging Face transformers computes them
// (modeling_rope_utils.py: _compute_linear_scaling / _dynamic_ntk / _ntk / _yarn / _llama3_parameters),
// in float64 where transformers uses float32:
// - linear (Chen et al. 2023, position interpolation): inv_freq / factor.
// - NTK-aware (bloc97): theta * factor^(d/(d-2)); dynamic NTK (emozilla) recomputes the factor per length:
//   theta * (factor * N / N0 - (factor - 1))^(d/(d-2)) once N > N0.
// - YaRN (Peng et al. 2023): a linear ramp over pair index between interpolation (divide by factor) and
//   extrapolation (unchanged), between the pairs that turn beta_fast and beta_slow times in N0 tokens;
//   attention factor 0.1 ln(factor) + 1.
// - Llama 3.1: wavelengths above N0/low divided by factor, below N0/high kept, smooth in between.
import { SpecError } from '../../errors.js';
import type { ModelConfig, RopeScaling } from '../types.js';

export type RopeConfig = Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'rope' | 'contextLength'>;

export interface RopeFrequencies {
  /** inv_freq[i] of pair i, headDim / 2 of them. */
  inverseFrequencies: Float64Array;
  /** Multiplier on cos and sin (YaRN's mscale); 1 for the others. */
  attentionFactor: number;
}

/** theta^(-2i/d), the unscaled frequencies. */
export function baseInverseFrequencies(headDim: number, theta: number): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / headDim);
  return inv;
}

export function linearInverseFrequencies(headDim: number, theta: number, factor: number): Float64Array {
  return baseInverseFrequencies(headDim, theta).map((f) => f / factor);
}

/** NTK-aware: a larger base, theta * factor^(d/(d-2)), so the lowest frequency is divided by about factor. */
export function ntkInverseFrequencies(headDim: number, theta: number, factor: number): Float64Array {
  return baseInverseFrequencies(headDim, theta * Math.pow(factor, headDim / (headDim - 2)));
}

/**
 * Dynamic NTK at sequence length seqLen: unscaled up to originalContext, then the base grows with the length
 * (transformers takes seq_len = max(seqLen, max_position_embeddings)).
 */
export function dynamicNtkInverseFrequencies(
  headDim: number,
  theta: number,
  factor: number,
  originalContext: number,
  seqLen: number,
): Float64Array {
  const n = Math.max(seqLen, originalContext);
  const scaled = theta * Math.pow((factor * n) / originalContext - (factor - 1), headDim / (headDim - 2));
  return baseInverseFrequencies(headDim, scaled);
}

/** YaRN's mscale: 0.1 * mscale * ln(factor) + 1 above factor 1. */
export function yarnMscale(factor: number, mscale = 1): number {
  return factor <= 1 ? 1 : 0.1 * mscale * Math.log(factor) + 1;
}

/** The (fractional) pair dimension whose wavelength fits `rotations` times into `context` tokens. */
export function yarnCorrectionDim(rotations: number, headDim: number, theta: number, context: number): number {
  return (headDim * Math.log(context / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
}

/** [low, high] dims of the ramp: floor and ceil of the correction dims, clamped to [0, headDim - 1]. */
export function yarnCorrectionRange(
  betaFast: number,
  betaSlow: number,
  headDim: number,
  theta: number,
  context: number,
): [number, number] {
  const low = Math.floor(yarnCorrectionDim(betaFast, headDim, theta, context));
  const high = Math.ceil(yarnCorrectionDim(betaSlow, headDim, theta, context));
  return [Math.max(low, 0), Math.min(high, headDim - 1)];
}

/** clamp((i - low) / (high - low), 0, 1) for i < n; high nudged by 0.001 when equal, as transformers does. */
export function yarnLinearRamp(low: number, high: number, n: number): Float64Array {
  const top = low === high ? high + 0.001 : high;
  const ramp = new Float64Array(n);
  for (let i = 0; i < n; i++) ramp[i] = Math.min(1, Math.max(0, (i - low) / (top - low)));
  return ramp;
}

export function yarnFrequencies(
  headDim: number,
  theta: number,
  rope: Extract<RopeScaling, { kind: 'yarn' }>,
): RopeFrequencies {
  const base = baseInverseFrequencies(headDim, theta);
  const [low, high] = yarnCorrectionRange(rope.betaFast, rope.betaSlow, headDim, theta, rope.originalContext);
  const ramp = yarnLinearRamp(low, high, headDim / 2);
  // ramp 0 (fast pairs, below low): extrapolate (keep); ramp 1 (slow pairs): interpolate (divide by factor).
  const inv = base.map((f, i) => (f / rope.factor) * ramp[i] + f * (1 - ramp[i]));
  return { inverseFrequencies: inv, attentionFactor: rope.attentionFactor ?? yarnMscale(rope.factor) };
}

export function llama3InverseFrequencies(
  headDim: number,
  theta: number,
  rope: Extract<RopeScaling, { kind: 'llama3' }>,
): Float64Array {
  const { factor, originalContext, lowFreqFactor, highFreqFactor } = rope;
  const lowFreqWavelength = originalContext / lowFreqFactor;
  const highFreqWavelength = originalContext / highFreqFactor;
  return baseInverseFrequencies(headDim, theta).map((f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength < highFreqWavelength) return f;
    if (wavelength > lowFreqWavelength) return f / factor;
    const smooth = (originalContext / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

/**
 * The frequencies and attention factor of a config's RoPE. seqLen matters only to dynamic NTK (the
 * length of the sequence being processed; absent = the model's context, i.e. unscaled).
 */
export function scaledRope(config: RopeConfig, seqLen?: number): RopeFrequencies {
  const { headDim, ropeTheta: theta, rope } = config;
  const plain = (inverseFrequencies: Float64Array): RopeFrequencies => ({ inverseFrequencies, attentionFactor: 1 });
  switch (rope.kind) {
    case 'none':
      return plain(baseInverseFrequencies(headDim, theta));
    case 'linear':
      return plain(linearInverseFrequencies(headDim, theta, rope.factor));
    case 'ntk': {
      if (!rope.dynamic) return plain(ntkInverseFrequencies(headDim, theta, rope.factor));
      const original = rope.originalContext ?? config.contextLength;
      return plain(dynamicNtkInverseFrequencies(headDim, theta, rope.factor, original, seqLen ?? original));
    }
    case 'yarn':
      return yarnFrequencies(headDim, theta, rope);
    case 'llama3':
      return plain(llama3InverseFrequencies(headDim, theta, rope));
  }
}

// ---- `--rope` on the command line ----

export const ROPE_USAGE = `--rope SPEC   override the model's RoPE scaling:
                none | linear:factor=F | ntk:factor=F[,dynamic=1,original=N0]
                yarn:factor=F,original=N0[,fast=32,slow=1,attention=A]
                llama3:factor=F,original=N0[,low=1,high=4]`;

const ROPE_KEYS: Record<RopeScaling['kind'], readonly string[]> = {
  none: [],
  linear: ['factor'],
  ntk: ['factor', 'dynamic', 'original'],
  yarn: ['factor', 'original', 'fast', 'slow', 'attention'],
  llama3: ['factor', 'original', 'low', 'high'],
};

/** Parses `kind:key=value,...` into a RopeScaling; anything malformed is a SpecError. */
export function parseRopeSpec(text: string): RopeScaling {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  const kind = (colon < 0 ? trimmed : trimmed.slice(0, colon)) as RopeScaling['kind'];
  const keys = Object.hasOwn(ROPE_KEYS, kind) ? ROPE_KEYS[kind] : undefined;
  if (!keys) throw new SpecError(`unknown RoPE scaling '${kind}'; known: ${Object.keys(ROPE_KEYS).join(', ')}`);
  const params = new Map<string, string>();
  const rest = colon < 0 ? '' : trimmed.slice(colon + 1);
  for (const part of rest === '' ? [] : rest.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new SpecError(`'${part}' in --rope '${text}' is not key=value`);
    const key = part.slice(0, eq).trim();
    if (!keys.includes(key))
      throw new SpecError(
        `RoPE scaling '${kind}' has no key '${key}'${keys.length ? `; keys: ${keys.join(', ')}` : ''}`,
      );
    if (params.has(key)) throw new SpecError(`key '${key}' given twice in --rope '${text}'`);
    params.set(key, part.slice(eq + 1).trim());
  }
  const num = (key: string, fallback?: number, min = 0): number => {
    const raw = params.get(key);
    if (raw === undefined) {
      if (fallback === undefined) throw new SpecError(`RoPE scaling '${kind}' needs ${key}=...`);
      return fallback;
    }
    const n = Number(raw);
    if (raw === '' || !Number.isFinite(n) || n <= min)
      throw new SpecError(`--rope ${kind}: ${key} must be a number above ${min}, got '${raw}'`);
    return n;
  };
  const context = (key: string): number | undefined => {
    if (!params.has(key)) return undefined;
    const n = num(key);
    if (!Number.isInteger(n))
      throw new SpecError(`--rope ${kind}: ${key} must be a whole number of tokens, got '${params.get(key)}'`);
    return n;
  };
  const factor = (): number => {
    const f = num('factor');
    if (f < 1) throw new SpecError(`--rope ${kind}: factor must be at least 1, got ${f}`);
    return f;
  };
  const needContext = (key: string): number => {
    const n = context(key);
    if (n === undefined)
      throw new SpecError(`RoPE scaling '${kind}' needs ${key}=N (the context the model was trained at)`);
    return n;
  };
  switch (kind) {
    case 'none':
      return { kind };
    case 'linear':
      return { kind, factor: factor() };
    case 'ntk': {
      const dyn = params.get('dynamic');
      if (dyn !== undefined && !['0', '1', 'true', 'false'].includes(dyn))
        throw new SpecError(`--rope ntk: dynamic must be 0, 1, true or false, got '${dyn}'`);
      const spec: RopeScaling = { kind, factor: factor(), dynamic: dyn === '1' || dyn === 'true' };
      const original = context('original');
      return original === undefined ? spec : { ...spec, originalContext: original };
    }
    case 'yarn': {
      const spec: RopeScaling = {
        kind,
        factor: factor(),
        originalContext: needContext('original'),
        betaFast: num('fast', 32),
        betaSlow: num('slow', 1),
      };
      if (spec.betaFast < spec.betaSlow)
        throw new SpecError(`--rope yarn: fast (${spec.betaFast}) must be at least slow (${spec.betaSlow})`);
      return params.has('attention') ? { ...spec, attentionFactor: num('attention') } : spec;
    }
    case 'llama3': {
      const spec: RopeScaling = {
        kind,
        factor: factor(),
        originalContext: needContext('original'),
        lowFreqFactor: num('low', 1),
        highFreqFactor: num('high', 4),
      };
      if (spec.highFreqFactor <= spec.lowFreqFactor)
        throw new SpecError(`--rope llama3: high (${spec.highFreqFactor}) must exceed low (${spec.lowFreqFactor})`);
      return spec;
    }
  }
}
