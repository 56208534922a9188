// Attention masks in the spirit of PyTorch's FlexAttention (Dong et al. 2024): a mask is a predicate over
// (query position, key position), built from primitives that compose with and/or. Each primitive also
// classifies a whole (query tile, key tile) rectangle as empty, partial or full, so a block mask can be
// built without evaluating N x N predicates, and each primitive prints itself as a WGSL expression so the
// GPU kernels apply the same predicate on partial tiles.
import { ShapeError } from '../errors.js';

export type MaskNode =
  | { kind: 'causal' }
  /** Key positions [q - left, q + right]. */
  | { kind: 'window'; left: number; right: number }
  /** The first `tokens` positions (global / sink tokens). */
  | { kind: 'sinks'; tokens: number }
  /** Packed sequences: a query sees keys of its own document. ids[position], non-decreasing. */
  | { kind: 'document'; ids: Int32Array }
  /** Every key for queries at positions >= start (e.g. Star Attention's query and generated tokens). */
  | { kind: 'queriesFrom'; start: number }
  /** Keys `near` to `far` chunks of `size` positions before the query's chunk (dual-chunk attention's parts). */
  | { kind: 'chunks'; size: number; near: number; far: number }
  | { kind: 'and'; parts: MaskNode[] }
  | { kind: 'or'; parts: MaskNode[] };

export const causal = (): MaskNode => ({ kind: 'causal' });
export const slidingWindow = (left: number, right = 0): MaskNode => ({ kind: 'window', left, right });
export const sinkTokens = (tokens: number): MaskNode => ({ kind: 'sinks', tokens });
export const documents = (ids: Int32Array): MaskNode => {
  for (let i = 1; i < ids.length; i++) {
    if (ids[i] < ids[i - 1])
      throw new ShapeError(
        `document ids must be non-decreasing (packed sequences); position ${i} has ${ids[i]} after ${ids[i - 1]}`,
      );
  }
  return { kind: 'document', ids };
};
export const queriesFrom = (start: number): MaskNode => ({ kind: 'queriesFrom', start });
export const chunkBand = (size: number, near: number, far: number): MaskNode => {
  if (!Number.isInteger(size) || size < 1 || !Number.isInteger(near) || near < 0 || !(far >= near))
    throw new ShapeError(`a chunk band needs size >= 1 and 0 <= near <= far, got size ${size}, ${near}..${far}`);
  return { kind: 'chunks', size, near, far };
};
export const and = (...parts: MaskNode[]): MaskNode => ({ kind: 'and', parts });
export const or = (...parts: MaskNode[]): MaskNode => ({ kind: 'or', parts });

/** Whether the query at position qp may see the key at position kp. */
export function maskAllows(m: MaskNode, qp: number, kp: number): boolean {
  switch (m.kind) {
    case 'causal':
      return kp <= qp;
    case 'window':
      return kp >= qp - m.left && kp <= qp + m.right;
    case 'sinks':
      return kp < m.tokens;
    case 'document':
      return m.ids[qp] === m.ids[kp];
    case 'queriesFrom':
      return qp >= m.start;
    case 'chunks': {
      const d = Math.floor(qp / m.size) - Math.floor(kp / m.size);
      return d >= m.near && d <= m.far;
    }
    case 'and':
      return m.parts.every((p) => maskAllows(p, qp, kp));
    case 'or':
      return m.parts.some((p) => maskAllows(p, qp, kp));
  }
}

export const EMPTY = 0;
export const PARTIAL = 1;
export const FULL = 2;
export type TileKind = typeof EMPTY | typeof PARTIAL | typeof FULL;

/** Classifies the rectangle of query positions [q0, q1] x key positions [k0, k1] (inclusive). */
export function classifyTile(m: MaskNode, q0: number, q1: number, k0: number, k1: number): TileKind {
  switch (m.kind) {
    case 'causal':
      return k1 <= q0 ? FULL : k0 > q1 ? EMPTY : PARTIAL;
    case 'window':
      if (k1 < q0 - m.left || k0 > q1 + m.right) return EMPTY;
      return k0 >= q1 - m.left && k1 <= q0 + m.right ? FULL : PARTIAL;
    case 'sinks':
      return k1 < m.tokens ? FULL : k0 >= m.tokens ? EMPTY : PARTIAL;
    case 'document': {
      const [a0, a1, b0, b1] = [m.ids[q0], m.ids[q1], m.ids[k0], m.ids[k1]];
      if (a1 < b0 || b1 < a0) return EMPTY;
      return a0 === a1 && b0 === b1 && a0 === b0 ? FULL : PARTIAL;
    }
    case 'queriesFrom':
      return q0 >= m.start ? FULL : q1 < m.start ? EMPTY : PARTIAL;
    case 'chunks': {
      const least = Math.floor(q0 / m.size) - Math.floor(k1 / m.size);
      const most = Math.floor(q1 / m.size) - Math.floor(k0 / m.size);
      if (most < m.near || least > m.far) return EMPTY;
      return least >= m.near && most <= m.far ? FULL : PARTIAL;
    }
    case 'and': {
      let kind: TileKind = FULL;
      for (const p of m.parts) {
        const c = classifyTile(p, q0, q1, k0, k1);
        if (c === EMPTY) return EMPTY;
        if (c === PARTIAL) kind = PARTIAL;
      }
      return kind;
    }
    case 'or': {
      let kind: TileKind = EMPTY;
      for (const p of m.parts) {
        const c = classifyTile(p, q0, q1, k0, k1);
        if (c === FULL) return FULL;
        if (c === PARTIAL) kind = PARTIAL;
      }
      return kind;
    }
  }
}

/** The predicate as a WGSL bool expression over `qp: i32` and `kp: i32`; documents read `doc_ids`. */
export function maskWgsl(m: MaskNode): string {
  switch (m.kind) {
    case 'causal':
      return '(kp <= qp)';
    case 'window':
      return `(kp >= qp - ${m.left} && kp <= qp + ${m.right})`;
    case 'sinks':
      return `(kp < ${m.tokens})`;
    case 'document':
      return '(doc_ids[qp] == doc_ids[kp])';
    case 'queriesFrom':
      return `(qp >= ${m.start})`;
    case 'chunks': {
      // Positions are non-negative, so i32 division is the floor.
      const d = `(qp / ${m.size} - kp / ${m.size})`;
      return m.far >= 2 ** 31 - 1 ? `(${d} >= ${m.near})` : `(${d} >= ${m.near} && ${d} <= ${m.far})`;
    }
    case 'and':
      return m.parts.length ? `(${m.parts.map(maskWgsl).join(' && ')})` : 'true';
    case 'or':
      return m.parts.length ? `(${m.parts.map(maskWgsl).join(' || ')})` : 'false';
  }
}

/** The document ids a mask reads, if any (the GPU kernels bind them). */
export function maskDocuments(m: MaskNode): Int32Array | undefined {
  if (m.kind === 'document') return m.ids;
  if (m.kind === 'and' || m.kind === 'or')
    for (const p of m.parts) {
      const d = maskDocuments(p);
      if (d) return d;
    }
  return undefined;
}

/** A stable text for caching compiled kernels by mask shape (document ids excluded). */
export function maskKey(m: MaskNode): string {
  return maskWgsl(m);
}

export function describeMask(m: MaskNode): string {
  switch (m.kind) {
    case 'causal':
      return 'causal';
    case 'window':
      return `window(${m.left},${m.right})`;
    case 'sinks':
      return `sinks(${m.tokens})`;
    case 'document':
      return 'document';
    case 'queriesFrom':
      return `queries from ${m.start}`;
    case 'chunks':
      return `chunks(${m.size}: ${m.near}..${m.far} back)`;
    case 'and':
      return m.parts.map(describeMask).join(' & ');
    case 'or':
      return `(${m.parts.map(describeMask).join(' | ')})`;
  }
}
