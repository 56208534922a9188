// Attention states: the normalised output O [H, N, D] and the natural-log LSE [H, N], float32.
// Two states over disjoint key sets merge exactly: L = logaddexp(L1, L2), O = e^(L1-L) O1 + e^(L2-L) O2.
// A query that saw no keys has L = -Infinity and O = 0, the merge's identity.
import { ShapeError } from '../errors.js';

export interface AttentionState {
  heads: number;
  queries: number;
  headDim: number;
  /** [heads, queries, headDim] */
  o: Float32Array;
  /** [heads, queries], natural log */
  lse: Float32Array;
}

export function emptyState(heads: number, queries: number, headDim: number): AttentionState {
  const lse = new Float32Array(heads * queries).fill(-Infinity);
  return { heads, queries, headDim, o: new Float32Array(heads * queries * headDim), lse };
}

/** Merges b into a copy of a. CPU twin of kernels/merge-wgsl.ts. */
export function mergeStates(a: AttentionState, b: AttentionState): AttentionState {
  if (a.heads !== b.heads || a.queries !== b.queries || a.headDim !== b.headDim) {
    throw new ShapeError(
      `cannot merge states of shapes [${a.heads},${a.queries},${a.headDim}] and [${b.heads},${b.queries},${b.headDim}]`,
    );
  }
  const out = emptyState(a.heads, a.queries, a.headDim);
  const D = a.headDim;
  for (let r = 0; r < a.lse.length; r++) {
    const la = a.lse[r];
    const lb = b.lse[r];
    const m = Math.max(la, lb);
    if (m === -Infinity) continue;
    const l = m + Math.log(Math.exp(la - m) + Math.exp(lb - m));
    const wa = Math.exp(la - l);
    const wb = Math.exp(lb - l);
    out.lse[r] = l;
    for (let d = 0; d < D; d++) out.o[r * D + d] = wa * a.o[r * D + d] + wb * b.o[r * D + d];
  }
  return out;
}

export function mergeAll(states: AttentionState[]): AttentionState {
  if (states.length === 0) throw new ShapeError('mergeAll needs at least one state');
  return states.slice(1).reduce(mergeStates, states[0]);
}
