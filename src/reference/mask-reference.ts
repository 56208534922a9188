// Which keys a query sees under a mask, written from each primitive's definition (FlexAttention-style
// predicates) so that tests of the kernels' mask handling do not use the implementation's own predicate.
import type { MaskNode } from '../spine/mask.js';

/** Whether the query at position `query` may see the key at position `key` under mask m. */
export function referenceVisible(m: MaskNode, query: number, key: number): boolean {
  if (m.kind === 'and') return m.parts.every((p) => referenceVisible(p, query, key));
  if (m.kind === 'or') return m.parts.some((p) => referenceVisible(p, query, key));
  if (m.kind === 'causal') return query - key >= 0;
  if (m.kind === 'window') return key - query <= m.right && query - key <= m.left;
  if (m.kind === 'sinks') return key >= 0 && key < m.tokens;
  if (m.kind === 'document') return m.ids[key] === m.ids[query];
  if (m.kind === 'queriesFrom') return query >= m.start;
  if (m.kind === 'chunks') {
    const back = Math.floor(query / m.size) - Math.floor(key / m.size);
    return back >= m.near && back <= m.far;
  }
  throw new Error(`reference: unknown mask kind ${(m as { kind: string }).kind}`);
}
