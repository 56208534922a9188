// A CCA cache (attention/cca-cache.ts on the CPU, layers/cca-gpu.ts on WebGPU) as a saved state and back.
// After n tokens the cache is the floor(n / g) pooled cores and a ring of the last w + g - 1 raw rows (slot
// p mod (w + g - 1)); that is all a later token reads: a group is pooled when its last token arrives, with
// that token's query, so an unfinished group is its raw rows in the ring and there is no running state.
// The state holds `coreK`, `coreV` [Hkv, cores, D] and the ring as kv-cache-state.ts saves a ring
// (`ringK`, `ringV` [Hkv, rows, D], positions [ringFirst, n) in order), so both backends, f32 or f16, read it.
import { ShapeError } from '../../errors.js';
import type { DType, HostData } from '../../tensor.js';
import type { LayerCacheState, SavedArray } from '../layer.js';
import { convert, restoreKvCache, saveKvCache } from './kv-cache-state.js';
import { RingLayout } from './ring-layout.js';

/** A CCA cache's arrays as they lie: cores [Hkv, coreStride, D] (the first `cores` rows held), ring [Hkv, w + g - 1, D]. */
export interface CcaImage {
  kvHeads: number;
  headDim: number;
  dtype: DType;
  group: number;
  window: number;
  coreStride: number;
  coreK: HostData;
  coreV: HostData;
  ringK: HostData;
  ringV: HostData;
}

/** The spec a CCA state carries: group and window only (the kernel variant does not change the cache). */
export const ccaStateSpec = (group: number, window: number) => `cca:group=${group},window=${window}`;

export function saveCcaCache(n: number, c: CcaImage): LayerCacheState {
  const cores = Math.floor(n / c.group);
  const D = c.headDim;
  const pick = (from: HostData): SavedArray => {
    const data = c.dtype === 'f16' ? new Uint16Array(c.kvHeads * cores * D) : new Float32Array(c.kvHeads * cores * D);
    for (let h = 0; h < c.kvHeads; h++)
      data.set(from.subarray(h * c.coreStride * D, (h * c.coreStride + cores) * D), h * cores * D);
    return { dtype: c.dtype, shape: [c.kvHeads, cores, D], data };
  };
  const spec = ccaStateSpec(c.group, c.window);
  const ring = saveKvCache(spec, n, ringImage(c));
  return {
    spec,
    tokens: n,
    meta: { group: c.group, window: c.window, cores, ringFirst: ring.meta.first },
    arrays: { coreK: pick(c.coreK), coreV: pick(c.coreV), ringK: ring.arrays.k, ringV: ring.arrays.v },
  };
}

/**
 * Writes a saved state into the image that `target(cores)` returns (the caller makes room for that many cores
 * there); false for a state of another group or window, or one whose ring lacks rows the cache reads. A state
 * of another shape, or whose meta does not fit its tokens, is a ShapeError. The cores are checked before
 * anything is written and the ring before its first write; the caller counts the tokens only on true.
 */
export function restoreCcaCache(state: LayerCacheState, like: CcaImage, target: (cores: number) => CcaImage): boolean {
  const { group, window, kvHeads, headDim: D } = like;
  const m = state.meta;
  if (state.spec !== ccaStateSpec(group, window) || m.group !== group || m.window !== window) return false;
  const n = state.tokens;
  const cores = Math.floor(n / group);
  if (m.cores !== cores)
    throw new ShapeError(`a saved ${state.spec} cache of ${n} tokens holds ${cores} cores, its meta says ${m.cores}`);
  for (const name of ['coreK', 'coreV'] as const) {
    const a = state.arrays[name];
    if (!a || a.shape.join() !== [kvHeads, cores, D].join() || a.data.length !== kvHeads * cores * D)
      throw new ShapeError(
        `a saved ${state.spec} cache of ${n} tokens needs ${name} [${kvHeads}, ${cores}, ${D}], got [${a?.shape ?? 'none'}]`,
      );
    if (a.dtype !== 'f32' && a.dtype !== 'f16') throw new ShapeError(`saved ${name} is ${a.dtype}, not f32 or f16`);
  }
  const ring = {
    spec: state.spec,
    tokens: n,
    meta: { sinks: 0, first: m.ringFirst ?? -1 },
    arrays: { k: state.arrays.ringK, v: state.arrays.ringV },
  };
  const c = target(cores);
  if (!restoreKvCache(ring, ringImage(c))) return false;
  for (const [to, a] of [
    [c.coreK, state.arrays.coreK],
    [c.coreV, state.arrays.coreV],
  ] as const) {
    const data = convert(a, c.dtype);
    for (let h = 0; h < kvHeads; h++) to.set(data.subarray(h * cores * D, (h + 1) * cores * D), h * c.coreStride * D);
  }
  return true;
}

/** The ring as a kv cache of one ring and no sinks (the slot of position p is p mod (w + g - 1), as both layers place it). */
function ringImage(c: CcaImage) {
  const layout = new RingLayout(0, c.window + c.group - 1);
  return { kvHeads: c.kvHeads, headDim: c.headDim, dtype: c.dtype, layout, k: c.ringK, v: c.ringV };
}
