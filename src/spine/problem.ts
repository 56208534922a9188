// The shape of one attention call: q [Hq, Nq, D], k and v [Hkv, Nk, D], checked once for all methods.
import { ShapeError } from '../errors.js';
import type { Tensor } from '../tensor.js';

export interface AttentionOptions {
  /** Bottom-right aligned: query i sits at position Nk - Nq + i. Default true. */
  causal?: boolean;
  /** Score scale; default 1/sqrt(D). */
  scale?: number;
}

export interface AttentionShape {
  heads: number; // Hq
  kvHeads: number; // Hkv
  queries: number; // Nq
  keys: number; // Nk
  headDim: number; // D
  causal: boolean;
  scale: number;
}

export function attentionShape(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): AttentionShape {
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    if (t.shape.length !== 3)
      throw new ShapeError(`${name} must have 3 dims [heads, tokens, headDim], got [${t.shape}]`);
  }
  const [heads, queries, headDim] = q.shape;
  const [kvHeads, keys, kd] = k.shape;
  if (v.shape[0] !== kvHeads || v.shape[1] !== keys || v.shape[2] !== kd) {
    throw new ShapeError(`k [${k.shape}] and v [${v.shape}] must have the same shape`);
  }
  if (kd !== headDim) throw new ShapeError(`q head dim ${headDim} differs from k head dim ${kd}`);
  if (headDim < 1 || kvHeads < 1 || heads < 1) throw new ShapeError('heads and head dim must be at least 1');
  if (heads % kvHeads !== 0) {
    throw new ShapeError(
      `query heads (${heads}) must be a multiple of key/value heads (${kvHeads}) for grouped-query attention`,
    );
  }
  if (q.dtype !== k.dtype || k.dtype !== v.dtype)
    throw new ShapeError(`q, k, v must share a dtype, got ${q.dtype}, ${k.dtype}, ${v.dtype}`);
  const scale = opts.scale ?? 1 / Math.sqrt(headDim);
  if (!Number.isFinite(scale)) throw new ShapeError(`scale must be a finite number, got ${scale}`);
  return { heads, kvHeads, queries, keys, headDim, causal: opts.causal ?? true, scale };
}

/** The last key position (inclusive) that query i may see; -1 when it sees none. */
export function causalLimit(s: AttentionShape, i: number): number {
  return lastVisibleKey(s.queries, s.keys, s.causal, i);
}

/** causalLimit for callers that hold the counts rather than a shape (DSA's selection). */
export function lastVisibleKey(queries: number, keys: number, causal: boolean, i: number): number {
  return causal ? Math.min(keys - 1, keys - queries + i) : keys - 1;
}
