// Which keys each query of a layer attends, as the library decides it: mask methods (flash, dense, ring,
// window, sinks, star) through their MaskNode and spine/mask.ts classifyTile, the same predicate the kernels'
// block masks use; CCA by coresSeen (pooled cores of fully past groups + the raw window); DSA by the
// training-free lightning indexer's scores on the actual prompt's queries and keys (sinks + local + top-k).
import { parseMethodSpec, intParam } from '../../src/attention/spec.js';
import { maskForSpec } from '../../src/attention/sparse.js';
import { starMask } from '../../src/attention/star-mask.js';
import { coresSeen } from '../../src/kernels/cca-cpu.js';
import { causal, classifyTile, EMPTY, FULL, maskAllows, type MaskNode, type TileKind } from '../../src/spine/mask.js';

/** Per (query, key): 0 not attended, 1 attended as itself, 2 through a pooled core (CCA). */
export interface Pattern {
  spec: string;
  n: number;
  cells: Uint8Array;
  /** Tile kinds [queryTiles x keyTiles] at `tile` tokens (EMPTY, PARTIAL, FULL). */
  tile: number;
  tiles: TileKind[];
  note: string;
}

/** Post-RoPE queries [Hq, n, D] and keys [Hkv, n, D] of one layer over the prompt, and its DSA selector. */
export type DsaSelector = (topk: number, sinks: number, local: number, pairs: number) => Uint8Array | undefined;

export function patternFor(specText: string, n: number, tile: number, dsa?: DsaSelector): Pattern {
  const spec = parseMethodSpec(specText);
  let mask: MaskNode | undefined;
  let cells: Uint8Array | undefined;
  let note = '';
  if (['flash', 'dense', 'ring'].includes(spec.name)) mask = causal();
  else if (spec.name === 'window' || spec.name === 'sinks') mask = maskForSpec(spec, true);
  else if (spec.name === 'star') {
    const block = intParam(spec, 'block', 64);
    const context = n - Math.max(1, Math.floor(n / 8));
    mask = starMask({ block, anchor: intParam(spec, 'anchor', block) }, context, n);
    note = `context ${context} tokens in blocks of ${block}; the last ${n - context} are the query`;
  } else if (spec.name === 'cca') {
    const group = intParam(spec, 'group', 16);
    const window = intParam(spec, 'window', 1024);
    cells = new Uint8Array(n * n);
    for (let q = 0; q < n; q++) {
      const c = coresSeen(q, group, window);
      for (let k = 0; k <= q; k++) cells[q * n + k] = k < c * group ? 2 : 1;
    }
    note = 'dark: raw keys; light: keys seen through their group’s pooled core';
  } else if (spec.name === 'dsa') {
    const topk = intParam(spec, 'topk', 2048);
    const sinks = intParam(spec, 'sinks', 4);
    const local = intParam(spec, 'local', 64);
    cells = dsa?.(topk, sinks, local, intParam(spec, 'pairs', 4));
    note = cells
      ? 'keys the training-free indexer selects for this prompt (sinks + local window + top-k)'
      : 'sinks + local window (run the prompt to see the indexer’s top-k)';
    if (!cells) mask = maskForSpec({ name: 'sinks', params: { tokens: String(sinks), left: String(local - 1) } }, true);
  }
  if (mask) {
    const m = mask;
    cells = new Uint8Array(n * n);
    for (let q = 0; q < n; q++) for (let k = 0; k < n; k++) cells[q * n + k] = maskAllows(m, q, k) ? 1 : 0;
  }
  if (!cells) throw new Error(`no pattern for ${specText}`);
  const tiles = mask ? maskTiles(mask, n, tile) : cellTiles(cells, n, tile);
  return { spec: specText, n, cells, tile, tiles, note };
}

function maskTiles(m: MaskNode, n: number, tile: number): TileKind[] {
  const t = Math.ceil(n / tile);
  const out: TileKind[] = [];
  for (let qt = 0; qt < t; qt++)
    for (let kt = 0; kt < t; kt++)
      out.push(
        classifyTile(m, qt * tile, Math.min(n, (qt + 1) * tile) - 1, kt * tile, Math.min(n, (kt + 1) * tile) - 1),
      );
  return out;
}

function cellTiles(cells: Uint8Array, n: number, tile: number): TileKind[] {
  const t = Math.ceil(n / tile);
  const out: TileKind[] = [];
  for (let qt = 0; qt < t; qt++)
    for (let kt = 0; kt < t; kt++) {
      let kept = 0;
      let all = 0;
      for (let q = qt * tile; q < Math.min(n, (qt + 1) * tile); q++)
        for (let k = kt * tile; k < Math.min(n, (kt + 1) * tile); k++, all++) if (cells[q * n + k]) kept++;
      out.push(kept === 0 ? EMPTY : kept === all ? FULL : (1 as TileKind));
    }
  return out;
}

export const COLORS = { background: '#ffffff', full: '#1f4e99', partial: '#9db8e8', raw: '#0b2a5c', core: '#f2a33a' };

/** Geometry of the drawing, kept on the page (window.longctxPattern) so a test can sample pixels. */
export interface Drawn {
  tile: number;
  tilesPerSide: number;
  /** Pixels per tile. */
  cell: number;
  kinds: TileKind[];
  query: number;
  /** The chosen query's row: y of the strip, x of key k = k * stripScale. */
  stripY: number;
  stripScale: number;
}

/** The tile grid (kept tiles filled, partial ones with their elements), and a strip of the chosen query's keys. */
export function drawPattern(canvas: HTMLCanvasElement, p: Pattern, query: number): Drawn {
  const ctx = canvas.getContext('2d')!;
  const side = Math.ceil(p.n / p.tile);
  const cell = Math.max(1, Math.floor(Math.min(canvas.width, canvas.height - 40) / side));
  ctx.fillStyle = COLORS.background;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const px = cell / p.tile;
  // Full tiles are one colour unless some keys come through pooled cores (CCA), which are drawn apart.
  const mixed = p.cells.includes(2);
  for (let qt = 0; qt < side; qt++)
    for (let kt = 0; kt < side; kt++) {
      const kind = p.tiles[qt * side + kt];
      if (kind === EMPTY) continue;
      ctx.fillStyle = kind === FULL ? COLORS.full : COLORS.partial;
      ctx.fillRect(kt * cell, qt * cell, cell, cell);
      if ((kind === FULL && !mixed) || px < 0.5) continue;
      for (let q = qt * p.tile; q < Math.min(p.n, (qt + 1) * p.tile); q++)
        for (let k = kt * p.tile; k < Math.min(p.n, (kt + 1) * p.tile); k++) {
          const v = p.cells[q * p.n + k];
          if (!v) continue;
          ctx.fillStyle = v === 2 ? COLORS.core : COLORS.raw;
          ctx.fillRect(k * px, q * px, Math.max(1, px), Math.max(1, px));
        }
    }
  const q = Math.min(p.n - 1, Math.max(0, query));
  ctx.strokeStyle = '#d11';
  ctx.strokeRect(0, q * px, side * cell, Math.max(1, px));
  const stripY = side * cell + 12;
  const stripScale = (side * cell) / p.n;
  for (let k = 0; k < p.n; k++) {
    const v = p.cells[q * p.n + k];
    if (!v) continue;
    ctx.fillStyle = v === 2 ? COLORS.core : COLORS.raw;
    ctx.fillRect(k * stripScale, stripY, Math.max(1, stripScale), 20);
  }
  return { tile: p.tile, tilesPerSide: side, cell, kinds: p.tiles, query: q, stripY, stripScale };
}

/** Keys query `q` attends, counted. */
export function keptKeys(p: Pattern, q: number): number {
  let n = 0;
  for (let k = 0; k < p.n; k++) if (p.cells[q * p.n + k]) n++;
  return n;
}
