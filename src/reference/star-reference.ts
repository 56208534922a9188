// Float64 reference for Star Attention at the level of one attention call: every query's visible key set
// written out explicitly (no blocks of hosts, no masks, no merges), then naive softmax attention.
//   query positions p >= keys - query: every key j <= p;
//   context block 0 (p < block): keys j <= p;  block b > 0: anchor keys j < anchor, and keys b*block <= j <= p.
import type { Tensor } from '../tensor.js';
import type { AttentionOptions } from '../spine/problem.js';
import { referenceAttention, naiveHalfAttention, type KeyFilter, type ReferenceState } from './attention.js';

export interface StarReferenceParams {
  block: number;
  anchor: number;
  query: number;
}

/** Whether the query at position p sees the key at position j under Star Attention (causality included). */
export function starVisible(p: StarReferenceParams, keys: number, position: number, key: number): boolean {
  if (key > position) return false;
  if (position >= keys - p.query) return true;
  const blockStart = Math.floor(position / p.block) * p.block;
  return key >= blockStart || key < p.anchor;
}

function filterFor(p: StarReferenceParams, q: Tensor, k: Tensor): KeyFilter {
  const keys = k.shape[1];
  const first = keys - q.shape[1];
  return (i, j) => starVisible(p, keys, first + i, j);
}

export function starReference(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  p: StarReferenceParams,
  opts: AttentionOptions = {},
): ReferenceState {
  return referenceAttention(q, k, v, { ...opts, causal: true }, filterFor(p, q, k));
}

/** The same visible sets with f16 rounding, the yardstick for f16 inputs. */
export function starNaiveHalf(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  p: StarReferenceParams,
  opts: AttentionOptions = {},
): ReferenceState {
  return naiveHalfAttention(q, k, v, { ...opts, causal: true }, filterFor(p, q, k));
}
