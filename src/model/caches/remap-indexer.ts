// Remapped positions with the DSA lightning indexer as the selector (issue 13 item 3, issue 17): beside
// `--attention dsa`, `--positions remap:window=W,topk=K` takes its K far keys from the layer's indexer instead of
// the position-agnostic q.k of every query head. The indexer ranks the keys 0..p-W (DsaLayer with no sinks and a
// local part of W: its lists are the K picks in position order, then the window), one list per query token shared
// by its heads, as DSA's own selection is; the picks are then attended at distances W .. W + K - 1 and the window
// at its own, in one softmax (PositionedAttentionCpu). The training-free indexer scores unrotated q and k here
// (the positioned layer caches keys before RoPE), so it is position-agnostic as remap's own selector; a trained
// indexer applies its own RoPE at the tokens' true positions, as it was trained (past its trained context that
// is extrapolation: the accuracy tables say what it costs).
import { SpecError } from '../../errors.js';
import type { MethodSpec } from '../../attention/spec.js';
import { dsaLayerParams, type DsaLayerParams } from './dsa-layer.js';
import { formatPositionSpec, type PositionMethod } from '../positions/position-method.js';

/** The DsaLayer parameters that select remap's far keys, or a SpecError naming what disagrees. */
export function remapIndexerParams(method: MethodSpec, m: Extract<PositionMethod, { kind: 'remap' }>): DsaLayerParams {
  const pos = `--positions ${formatPositionSpec(m)}`;
  for (const key of ['sinks', 'local'])
    if (method.params[key] !== undefined)
      throw new SpecError(
        `${pos} beside dsa: remap's window (${m.window}) is the local part and there are no sinks; drop dsa's ${key}=`,
      );
  const topk = method.params.topk;
  if (topk !== undefined && Number(topk) !== m.topk)
    throw new SpecError(`${pos} beside dsa:topk=${topk}: the indexer picks remap's ${m.topk} far keys; give one topk`);
  return {
    ...dsaLayerParams({ ...method, params: { ...method.params, topk: String(m.topk) } }),
    sinks: 0,
    local: m.window,
  };
}
