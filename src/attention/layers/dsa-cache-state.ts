// A DSA cache (model/caches/dsa-layer.ts with a dense kv cache on the CPU, layers/dsa-gpu.ts on WebGPU) as a
// saved state and back: the kv rows as kv-cache-state.ts saves a dense cache (`k`, `v` [Hkv, n, D]) and the
// indexer's cached index keys [n, D_I] in the form the layer keeps them: f32 (the CPU layer, which quantises
// at selection, and the GPU's float indexer), or the GPU int8 indexer's i8 values with their power-of-two
// scale per token (`indexScales` [n]). An f32 state restores into an int8 GPU layer by quantising on the host
// (kernels/dsa-indexer-cpu.ts quantizeInt8, which the GPU's quantiser matches bit for bit); an int8 state
// restores into an int8 layer that keeps f32 keys (the CPU's) as values times scales, which requantise exactly.
import { ShapeError } from '../../errors.js';
import type { IndexerPrecision } from '../../kernels/dsa-indexer-cpu.js';
import { quantizeInt8 } from '../../kernels/dsa-indexer-cpu.js';
import type { LayerCacheState, SavedArray } from '../layer.js';
import { saveKvCache, type KvImage } from './kv-cache-state.js';

export interface DsaStateParams {
  topk: number;
  precision: IndexerPrecision;
  sinks: number;
  local: number;
  /** A trained indexer's keys (from the attention input) are not a training-free one's. */
  trained?: boolean;
}

/** The spec a DSA state carries: what changes its cache or its picks (not the GPU's decide kernel). */
export const dsaStateSpec = (p: DsaStateParams) =>
  `dsa:topk=${p.topk},indexer=${p.precision},sinks=${p.sinks},local=${p.local}${p.trained ? ',trained' : ''}`;

/** Index keys [n, D_I] as a layer keeps them: f32, or int8 values with a scale per token. */
export interface DsaIndexKeys {
  keys: Float32Array | Int8Array;
  scales?: Float32Array;
}

export function saveDsaCache(p: DsaStateParams, n: number, kv: KvImage, indexDim: number, ix: DsaIndexKeys) {
  const state = saveKvCache(dsaStateSpec(p), n, kv);
  const keys: SavedArray = { dtype: ix.scales ? 'i8' : 'f32', shape: [n, indexDim], data: ix.keys };
  state.arrays.indexKeys = keys;
  if (ix.scales) state.arrays.indexScales = { dtype: 'f32', shape: [n], data: ix.scales };
  state.meta.indexDim = indexDim;
  return state;
}

/**
 * Checks a state against the layer (`int8`: it keeps int8 index keys) and returns its index keys in the
 * layer's form, undefined when the layer cannot take them (another spec, or int8 keys for a layer of f32
 * keys). A state of another shape is a ShapeError. restoreKvCache writes the kv rows next.
 */
export function dsaIndexKeys(
  state: LayerCacheState,
  p: DsaStateParams,
  indexDim: number,
  int8: boolean,
): DsaIndexKeys | undefined {
  if (state.spec !== dsaStateSpec(p)) return undefined;
  const n = state.tokens;
  const { indexKeys: keys, indexScales: scales } = state.arrays;
  if (state.meta.indexDim !== indexDim || !keys || keys.shape.join() !== [n, indexDim].join())
    throw new ShapeError(
      `a saved ${state.spec} cache of ${n} tokens needs indexKeys [${n}, ${indexDim}], got [${keys?.shape ?? 'none'}] ` +
        `(index dim ${state.meta.indexDim})`,
    );
  if (keys.data.length !== n * indexDim || (keys.dtype !== 'f32' && keys.dtype !== 'i8'))
    throw new ShapeError(`saved index keys of ${keys.dtype} hold ${keys.data.length} values, not ${n * indexDim}`);
  if (
    keys.dtype === 'i8' &&
    (!scales || scales.dtype !== 'f32' || scales.shape.join() !== `${n}` || scales.data.length !== n)
  )
    throw new ShapeError(
      `saved int8 index keys of ${n} tokens need indexScales [${n}] of f32, got [${scales?.shape ?? 'none'}]`,
    );
  if (keys.dtype === 'f32') {
    const f = keys.data as Float32Array;
    if (!int8) return { keys: f };
    const q = quantizeInt8(f, n, indexDim);
    return { keys: q.values, scales: q.scales };
  }
  const [values, perToken] = [keys.data as Int8Array, scales!.data as Float32Array];
  if (int8) return { keys: values, scales: perToken };
  // An int8 layer keeping f32 keys (the CPU's, which quantises at selection) gets the values times their scale:
  // the scale is a power of two and every vector's largest value is 64..127 in magnitude, so its quantiser
  // gives back these very values and scales, and the selection is the saving layer's bit for bit.
  if (p.precision !== 'int8') return undefined;
  const f = new Float32Array(n * indexDim);
  for (let r = 0; r < n; r++)
    for (let d = 0; d < indexDim; d++) f[r * indexDim + d] = values[r * indexDim + d] * perToken[r];
  return { keys: f };
}
