// Token ranges of q/k/v and of attention states, for methods that split a sequence across hosts
// (Star, Ring): contiguous ranges, slices along the token axis of [heads, tokens, dim], and placing a
// state computed for some query rows back into the state of the whole call.
import { ShapeError } from '../errors.js';
import { tensor, type Tensor } from '../tensor.js';
import { emptyState, type AttentionState } from '../spine/state.js';

/** A half-open range of token positions [start, end). */
export type TokenRange = readonly [number, number];

/** Splits `count` units into `parts` contiguous ranges whose sizes differ by at most one unit. */
export function splitEvenly(count: number, parts: number): TokenRange[] {
  if (!Number.isInteger(parts) || parts < 1) throw new ShapeError(`cannot split into ${parts} parts`);
  return Array.from(
    { length: parts },
    (_, h) => [Math.floor((h * count) / parts), Math.floor(((h + 1) * count) / parts)] as const,
  );
}

/** Tokens [start, end) of a [heads, tokens, dim] tensor (a copy, so it can travel on its own). */
export function sliceTokens(t: Tensor, start: number, end: number): Tensor {
  const [heads, tokens, dim] = t.shape;
  if (start < 0 || end > tokens || start > end)
    throw new ShapeError(`token range [${start}, ${end}) outside [0, ${tokens})`);
  const n = end - start;
  const out = tensor([heads, n, dim], t.dtype);
  for (let h = 0; h < heads; h++)
    out.data.set(t.data.subarray((h * tokens + start) * dim, (h * tokens + end) * dim), h * n * dim);
  return out;
}

/** Concatenates [heads, n_i, dim] tensors along the token axis. */
export function concatTokens(parts: Tensor[]): Tensor {
  if (parts.length === 0) throw new ShapeError('concatTokens needs at least one tensor');
  const [heads, , dim] = parts[0].shape;
  const total = parts.reduce((a, t) => a + t.shape[1], 0);
  const out = tensor([heads, total, dim], parts[0].dtype);
  for (const t of parts) {
    if (t.shape[0] !== heads || t.shape[2] !== dim || t.dtype !== parts[0].dtype)
      throw new ShapeError(`cannot concatenate [${t.shape}] ${t.dtype} with [${parts[0].shape}] ${parts[0].dtype}`);
  }
  for (let h = 0; h < heads; h++) {
    let at = 0;
    for (const t of parts) {
      const n = t.shape[1];
      out.data.set(t.data.subarray(h * n * dim, (h + 1) * n * dim), (h * total + at) * dim);
      at += n;
    }
  }
  return out;
}

/** Writes `part` (state of `part.queries` rows) into `into` starting at query row `row`. */
export function placeState(into: AttentionState, part: AttentionState, row: number): void {
  if (part.heads !== into.heads || part.headDim !== into.headDim || row + part.queries > into.queries) {
    throw new ShapeError(
      `state [${part.heads},${part.queries},${part.headDim}] does not fit at row ${row} of [${into.heads},${into.queries},${into.headDim}]`,
    );
  }
  const D = into.headDim;
  for (let h = 0; h < into.heads; h++) {
    const src = h * part.queries;
    const dst = h * into.queries + row;
    into.lse.set(part.lse.subarray(src, src + part.queries), dst);
    into.o.set(part.o.subarray(src * D, (src + part.queries) * D), dst * D);
  }
}

/** A state with no rows (a host that owns no queries). */
export function noRows(heads: number, headDim: number): AttentionState {
  return emptyState(heads, 0, headDim);
}

/** Query rows whose positions (key count - query count + row) fall in [start, end): rows [r0, r1). */
export function rowsAt(queries: number, keys: number, positions: TokenRange): TokenRange {
  const first = keys - queries;
  const r0 = Math.min(queries, Math.max(0, positions[0] - first));
  const r1 = Math.min(queries, Math.max(0, positions[1] - first));
  return [r0, Math.max(r0, r1)];
}
