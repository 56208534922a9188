// Language modelling on held-back text: the next-token loss at positions sampled in buckets of position
// (powers of two), the curve that shows where a method stops reading (a model that cannot use its context
// past N tokens has flat or rising loss beyond N). The text is one of the KJV books no other task uses as filler.
import type { CaseCoordinates, LmCase, TaskContext, TaskGenerator } from '../case.js';
import { Rng } from '../rng.js';

/** Loss positions per bucket: a forward call ends at each, so this bounds the per-case overhead. */
export const LM_POSITIONS_PER_BUCKET = 16;

/** Bucket edges [64, 128, 256, ...) up to length; bucket i holds positions [edge_i, edge_i+1). */
export function lmBuckets(length: number): number[] {
  const edges = [1];
  for (let e = 64; e < length; e *= 2) edges.push(e);
  edges.push(length);
  return edges;
}

export function lmBucketOf(position: number): number {
  return position < 64 ? 1 : 2 ** Math.floor(Math.log2(position));
}

function lmCase(ctx: TaskContext, c: CaseCoordinates): LmCase {
  const rng = new Rng(c.seed);
  const head = ctx.bos === undefined ? [] : [ctx.bos];
  const ids = [...head, ...ctx.haystack.tokens(c.length - head.length, rng, ctx.corpus.heldBack)];
  const edges = lmBuckets(c.length);
  const positions = new Set<number>();
  for (let b = 0; b + 1 < edges.length; b++) {
    const [lo, hi] = [Math.max(edges[b], 1), edges[b + 1]];
    const step = (hi - lo) / LM_POSITIONS_PER_BUCKET;
    for (let i = 0; i < LM_POSITIONS_PER_BUCKET; i++)
      positions.add(Math.min(hi - 1, Math.floor(lo + step * (i + rng.next()))));
  }
  return { ...c, kind: 'lm', ids, positions: [...positions].sort((a, b) => a - b) };
}

export const LM_TASK: TaskGenerator = {
  name: 'lm',
  about: 'next-token loss per position bucket on held-back KJV books',
  usesDepth: false,
  make: lmCase,
};
