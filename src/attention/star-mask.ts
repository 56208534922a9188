// Star Attention as one block mask, for running a whole model Star-style in one process (the model
// runner's `star` layers): context position p in block b = floor(p / block) sees the anchor (the first
// `anchor` positions) and its own block up to itself; positions from `context` on (the query, then every
// generated token) see everything before them. Acharya et al. 2024, "Star Attention", phases 1 and 2.
// Across hosts the same visible sets are computed block by block and merged (star.ts, src/cluster/); this
// mask is their single-process equal, checked against reference/star-reference.ts.
import { ShapeError } from '../errors.js';
import { and, causal, documents, or, queriesFrom, sinkTokens, type MaskNode } from '../spine/mask.js';
import type { StarParams } from './star.js';

/**
 * The mask for a sequence whose first `context` positions are the context; `capacity` bounds every
 * position the mask will be asked about (prompt plus generated tokens).
 */
export function starMask(p: Pick<StarParams, 'block' | 'anchor'>, context: number, capacity: number): MaskNode {
  if (context < 0 || context > capacity) throw new ShapeError(`star: context ${context} outside [0, ${capacity}]`);
  const ids = new Int32Array(capacity);
  const blocks = Math.ceil(context / p.block);
  for (let i = 0; i < capacity; i++) ids[i] = i < context ? Math.floor(i / p.block) : blocks;
  return and(causal(), or(sinkTokens(p.anchor), documents(ids), queriesFrom(context)));
}
