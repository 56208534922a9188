// Sane bounds on a model's header fields (config.json, GGUF metadata), checked before anything is sized
// from them: a config.json that claims a billion layers is an InputError, not a heap exhausted by a
// billion tensor names. The bounds live in io/limits.ts (each raised with LONGCTX_MAX_<NAME>). Values that
// are wrong rather than large (eps, RoPE base, factors) are SpecErrors, as they are on the command line.
import { SpecError } from '../../errors.js';
import { checkBound } from '../../io/limits.js';
import type { ModelConfig } from '../types.js';

export function checkModelBounds(c: ModelConfig, source: string): void {
  checkBound('LAYERS', c.layers, `${source}: layers`);
  checkBound('HEADS', c.heads, `${source}: attention heads`);
  checkBound('HEADS', c.kvHeads, `${source}: key/value heads`);
  checkBound('HEAD_DIM', c.headDim, `${source}: head dim`);
  checkBound('HIDDEN', c.hiddenSize, `${source}: hidden size`);
  checkBound('INTERMEDIATE', c.intermediateSize, `${source}: intermediate size`);
  checkBound('VOCAB', c.vocabSize, `${source}: vocabulary size`);
  checkBound('CONTEXT', c.contextLength, `${source}: context length`);
  const positive = (value: number, what: string): void => {
    if (!Number.isFinite(value) || value <= 0)
      throw new SpecError(`${source}: ${what} must be a positive number, got ${value}`);
  };
  positive(c.rmsNormEps, 'RMSNorm epsilon');
  positive(c.ropeTheta, 'RoPE base (theta)');
  if (c.rope.kind !== 'none') {
    positive(c.rope.factor, `RoPE ${c.rope.kind} factor`);
    if ('originalContext' in c.rope && c.rope.originalContext !== undefined)
      positive(c.rope.originalContext, `RoPE ${c.rope.kind} original context`);
  }
}
