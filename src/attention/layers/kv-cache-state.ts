// A kv cache (ring-layout.ts) as a saved state and back, for both kv layers (the CPU layer hands over its
// arrays, the WebGPU layer an image read from its buffers). The state keeps the positions the cache holds
// after n tokens, in position order: the sinks [0, sinks) then [first, n) (a dense cache: sinks = first = 0).
// So the state does not depend on the layout it came from: a session saved with a context of 4K restores into
// one of 128K, whose window layer may be a ring where the smaller run was dense, as long as the new layout
// holds no position the state lacks.
import { ShapeError } from '../../errors.js';
import { float32ToHalf, halfToFloat32 } from '../../f16.js';
import type { DType, HostData } from '../../tensor.js';
import type { LayerCacheState, SavedArray } from '../layer.js';
import type { RingLayout } from './ring-layout.js';

export interface KvImage {
  kvHeads: number;
  headDim: number;
  dtype: DType;
  layout: RingLayout;
  /** The cache as it lies: [kvHeads, layout.slots, headDim]. */
  k: HostData;
  v: HostData;
}

/** The held positions [0, sinks) and [first, n) of a layout after n tokens, in that order. */
function held(layout: RingLayout, n: number): { sinks: number; first: number; rows: number } {
  const past = layout.past(n);
  return { ...past, rows: past.sinks + (n - past.first) };
}

/** Copies of runs of rows between the cache (slot) and the position-ordered state (row). */
function copies(layout: RingLayout, n: number, state: { sinks: number; first: number }) {
  const want = held(layout, n);
  const rowOf = (p: number) => (p < state.sinks ? p : state.sinks + (p - state.first));
  const out: Array<{ slot: number; row: number; rows: number }> = [];
  for (const [from, to] of [
    [0, want.sinks],
    [want.first, n],
  ]) {
    let p = from;
    for (const run of layout.runs(from, to)) {
      out.push({ slot: run.slot, row: rowOf(p), rows: run.rows });
      p += run.rows;
    }
  }
  return out;
}

export function saveKvCache(spec: string, n: number, c: KvImage): LayerCacheState {
  const h = held(c.layout, n);
  const D = c.headDim;
  const pick = (cache: HostData): SavedArray => {
    const data = c.dtype === 'f16' ? new Uint16Array(c.kvHeads * h.rows * D) : new Float32Array(c.kvHeads * h.rows * D);
    for (let head = 0; head < c.kvHeads; head++)
      for (const x of copies(c.layout, n, h)) {
        const from = (head * c.layout.slots + x.slot) * D;
        data.set(cache.subarray(from, from + x.rows * D), (head * h.rows + x.row) * D);
      }
    return { dtype: c.dtype, shape: [c.kvHeads, h.rows, D], data };
  };
  return { spec, tokens: n, meta: { sinks: h.sinks, first: h.first }, arrays: { k: pick(c.k), v: pick(c.v) } };
}

/** Where a saved state's rows go in a cache of this shape: the state's k and v in the cache's dtype, its rows per
 * head, and the runs of rows to copy (state row -> cache slot). */
export interface KvRestore {
  k: HostData;
  v: HostData;
  rows: number;
  copies: Array<{ slot: number; row: number; rows: number }>;
}

/**
 * The copies that put a saved state into a cache of shape `c`; null when the layout holds a position the state
 * lacks (then the session replays its tokens instead). A state of another shape is a ShapeError. The WebGPU
 * layer writes each run straight from the state's arrays (no cache-sized image on the host: a 1B model's 128K
 * cache is 4 GiB); the CPU layer copies them into its arrays (restoreKvCache).
 */
export function planKvRestore(state: LayerCacheState, c: Omit<KvImage, 'k' | 'v'>): KvRestore | null {
  const n = state.tokens;
  const sinks = state.meta.sinks ?? -1;
  const first = state.meta.first ?? -1;
  const rows = sinks + (n - first);
  for (const [name, a] of [
    ['k', state.arrays.k],
    ['v', state.arrays.v],
  ] as const)
    if (!a || a.shape.join() !== [c.kvHeads, rows, c.headDim].join() || a.data.length !== c.kvHeads * rows * c.headDim)
      throw new ShapeError(
        `a saved ${state.spec} cache of ${n} tokens needs ${name} [${c.kvHeads}, ${rows}, ${c.headDim}], ` +
          `got [${a?.shape ?? 'none'}]`,
      );
  if (!(sinks >= 0 && first >= sinks && first <= n))
    throw new ShapeError(`a saved cache holds sinks ${sinks}, first ${first}`);
  // The state lacks the gap [sinks, first); the layout must need none of it.
  const want = held(c.layout, n);
  const avoidsGap = (a: number, b: number) => a >= b || b <= sinks || a >= first || first === sinks;
  if (!avoidsGap(0, want.sinks) || !avoidsGap(want.first, n)) return null;
  return {
    k: convert(state.arrays.k, c.dtype),
    v: convert(state.arrays.v, c.dtype),
    rows,
    copies: copies(c.layout, n, { sinks, first }),
  };
}

/** Writes a saved state into the cache image; false when the layout holds a position the state lacks. */
export function restoreKvCache(state: LayerCacheState, c: KvImage): boolean {
  const plan = planKvRestore(state, c);
  if (!plan) return false;
  const D = c.headDim;
  for (const [cache, data] of [
    [c.k, plan.k],
    [c.v, plan.v],
  ] as const)
    for (let head = 0; head < c.kvHeads; head++)
      for (const x of plan.copies) {
        const from = (head * plan.rows + x.row) * D;
        cache.set(data.subarray(from, from + x.rows * D), (head * c.layout.slots + x.slot) * D);
      }
  return true;
}

/** Saved values in the cache's dtype (a session saved in f16 on WebGPU restores on the CPU, and back). */
export function convert(a: SavedArray, dtype: DType): HostData {
  if (a.dtype === 'i8') throw new ShapeError(`saved ${a.dtype} values [${a.shape}] are no keys or values`);
  if (a.dtype === dtype) return a.data as HostData;
  return dtype === 'f32' ? halfToFloat32(a.data as Uint16Array) : float32ToHalf(a.data as Float32Array);
}
