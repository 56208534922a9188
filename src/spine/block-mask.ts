// A block mask: for each query tile, the key tiles a mask keeps, each marked full (no predicate needed)
// or partial (the predicate runs per element). FlexAttention's kv_num_blocks / kv_indices, in CSR form,
// so a kernel's cost follows the kept tiles and a sliding window costs O(N * window), not O(N^2).
import { ShapeError } from '../errors.js';
import { classifyTile, EMPTY, FULL, type MaskNode } from './mask.js';

export interface BlockMask {
  mask: MaskNode;
  queries: number;
  keys: number;
  queryTile: number;
  keyTile: number;
  queryTiles: number;
  keyTiles: number;
  /** [queryTiles + 1]: tiles of query tile t are entries offsets[t] .. offsets[t + 1] - 1. */
  offsets: Uint32Array;
  /** Kept key tiles: (key tile index << 1) | 1 when full, | 0 when partial. */
  tiles: Uint32Array;
  fullTiles: number;
}

/** Query i sits at position keys - queries + i (bottom-right aligned, as in causal attention). */
export function buildBlockMask(
  mask: MaskNode,
  queries: number,
  keys: number,
  queryTile: number,
  keyTile: number,
): BlockMask {
  if (queries > keys)
    throw new ShapeError(
      `a masked call needs at least as many keys (${keys}) as queries (${queries}): query positions are keys - queries + i`,
    );
  const queryTiles = Math.ceil(queries / queryTile);
  const keyTiles = Math.ceil(keys / keyTile);
  const offsets = new Uint32Array(queryTiles + 1);
  let tiles = new Uint32Array(Math.max(16, queryTiles * 4));
  let n = 0;
  let fullTiles = 0;
  const shift = keys - queries;
  for (let t = 0; t < queryTiles; t++) {
    const q0 = shift + t * queryTile;
    const q1 = shift + Math.min(queries, (t + 1) * queryTile) - 1;
    for (let kt = 0; kt < keyTiles; kt++) {
      const kind = classifyTile(mask, q0, q1, kt * keyTile, Math.min(keys, (kt + 1) * keyTile) - 1);
      if (kind === EMPTY) continue;
      if (n === tiles.length) {
        const grown = new Uint32Array(tiles.length * 2);
        grown.set(tiles);
        tiles = grown;
      }
      tiles[n++] = (kt << 1) | (kind === FULL ? 1 : 0);
      if (kind === FULL) fullTiles++;
    }
    offsets[t + 1] = n;
  }
  return {
    mask,
    queries,
    keys,
    queryTile,
    keyTile,
    queryTiles,
    keyTiles,
    offsets,
    tiles: tiles.slice(0, Math.max(n, 1)),
    fullTiles,
  };
}

export function keptTiles(b: BlockMask): number {
  return b.offsets[b.queryTiles];
}

/** Fraction of all (query tile, key tile) pairs that a kernel visits. */
export function blockDensity(b: BlockMask): number {
  return keptTiles(b) / (b.queryTiles * b.keyTiles);
}
