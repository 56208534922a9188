// A DSA layer of the decoder: the layer's index keys (one [D_I] row per token, preallocated for the run) and
// its key selection. A token p attends to the sink tokens (0..S-1), its local window (the last W positions,
// itself included) and the indexer's top-k of the keys between them (S..p-W): the lists go to the gathered
// attention (attendSelected / sparseGatherGpu), so local context is never dropped and no score is biased.
// The indexer only ranks the middle keys (its index keys S..n-W with the usual bottom-right causal limit
// give exactly S..p-W per query), so the three parts never overlap and a row holds min(p+1, k+S+W) keys:
// the count the gather kernels assume. With k >= the context every key is listed: exact dense attention.
import { ShapeError, SpecError } from '../../errors.js';
import { tensor } from '../../tensor.js';
import type { Device } from '../../runtime/device.js';
import { dsaSelect, dsaOptionsFromSpec, type GatheredKeys, type IndexerPrecision } from '../../attention/dsa.js';
import { choiceParam, intParam, type MethodSpec } from '../../attention/spec.js';
import { DECIDE_VERSIONS, DEFAULT_DECIDE, type DecideVersion } from '../../kernels/topk-decide-wgsl.js';
import {
  indexKeysInto,
  indexQueries,
  layerIndexer,
  trainedIndexKeysInto,
  trainedIndexQueries,
  type LayerIndexer,
} from './dsa-indexer.js';
import type { LayerWeights, ModelConfig } from '../types.js';

export const DSA_SINKS = 4;
export const DSA_LOCAL = 64;

export interface DsaLayerParams {
  topk: number;
  precision: IndexerPrecision;
  sinks: number;
  local: number;
  pairs: number;
  /** The GPU selection's decide step (`decide=serial|workgroup`; the CPU selection has none). */
  decide?: DecideVersion;
}

/** `dsa:topk=K[,indexer=int8|float][,sinks=S][,local=W][,pairs=P][,decide=serial|workgroup]` for a model layer. */
export function dsaLayerParams(spec: MethodSpec): DsaLayerParams {
  const { topk, indexer } = dsaOptionsFromSpec(spec);
  const sinks = intParam(spec, 'sinks', DSA_SINKS);
  const local = intParam(spec, 'local', DSA_LOCAL);
  const pairs = intParam(spec, 'pairs', 4);
  if (sinks < 0 || local < 1 || pairs < 1)
    throw new SpecError('dsa: sinks must be >= 0, local >= 1 (the token itself) and pairs >= 1');
  const decide = choiceParam(spec, 'decide', DECIDE_VERSIONS, DEFAULT_DECIDE);
  return { topk: topk!, precision: indexer ?? 'int8', sinks, local, pairs, decide };
}

export class DsaLayer {
  readonly indexer: LayerIndexer;
  private readonly indexKeys: Float32Array;
  length = 0;

  constructor(
    weights: LayerWeights,
    private readonly c: ModelConfig,
    readonly params: DsaLayerParams,
    readonly capacity: number,
  ) {
    this.indexer = layerIndexer(weights, c, { pairsPerHead: params.pairs });
    this.indexKeys = new Float32Array(capacity * this.indexer.dim);
  }

  /** Widest key list of a token: k + S + W, at most the run's tokens. */
  get width(): number {
    return Math.min(this.capacity, this.params.topk + this.params.sinks + this.params.local);
  }

  get bytes(): number {
    return this.indexKeys.byteLength;
  }

  reset(): void {
    this.length = 0;
  }

  /** The index keys [length, D_I] held (a view), for a saved session. */
  get heldIndexKeys(): Float32Array {
    return this.indexKeys.subarray(0, this.length * this.indexer.dim);
  }

  /** Takes saved index keys [n, D_I] back in place of appending n tokens (after reset). */
  restoreIndexKeys(keys: Float32Array, n: number): void {
    if (n > this.capacity || keys.length !== n * this.indexer.dim)
      throw new ShapeError(`dsa layer of ${this.capacity} tokens cannot take ${keys.length} index values for ${n}`);
    this.indexKeys.set(keys);
    this.length = n;
  }

  /** True when the index vectors come from the attention input h (a trained indexer), not from q and k. */
  get needsInput(): boolean {
    return this.indexer.trained !== undefined;
  }

  /** Stores the index keys of a chunk: from its post-RoPE keys k [Hkv, T, D], or (trained) its attention input h [T, hidden]. */
  append(k: Float32Array, T: number, h?: Float32Array): void {
    if (this.indexer.trained) trainedIndexKeysInto(this.indexer, h!, T, this.length, this.indexKeys, this.length);
    else indexKeysInto(this.indexer, k, T, this.c.headDim, this.indexKeys, this.length);
    this.length += T;
  }

  /** Key lists [T, width] of the last T appended tokens, given their post-RoPE queries q [Hq, T, D] (or, trained, h [T, hidden]). */
  async select(device: Device, q: Float32Array, T: number, h?: Float32Array): Promise<GatheredKeys> {
    const { topk, sinks: S, local: W, precision } = this.params;
    const n = this.length;
    const width = this.width;
    const first = n - T;
    const indices = new Int32Array(T * width).fill(-1);
    const middle = n - W - S;
    let picked: GatheredKeys | undefined;
    if (middle > 0 && topk > 0) {
      const iq = this.indexer.trained
        ? trainedIndexQueries(this.indexer, h!, T, first)
        : indexQueries(this.indexer, q, this.c.heads, T, this.c.headDim);
      const D_I = this.indexer.dim;
      const index = {
        q: tensor([this.indexer.heads, T, D_I], 'f32', iq.q),
        k: tensor([middle, D_I], 'f32', this.indexKeys.subarray(S * D_I, (S + middle) * D_I)),
        w: tensor([T, this.indexer.heads], 'f32', iq.w),
      };
      picked = await dsaSelect(device, index, { queries: T, keys: middle, causal: true, topk }, precision);
    }
    const counts = new Int32Array(T);
    for (let t = 0; t < T; t++) {
      const p = first + t;
      let at = t * width;
      for (let s = 0; s < Math.min(S, p + 1); s++) indices[at++] = s;
      if (picked) {
        const m = picked.count(t);
        const row = picked.indices
          .subarray(t * picked.width, t * picked.width + m)
          .map((j) => j + S)
          .sort();
        indices.set(row, at);
        at += m;
      }
      for (let s = Math.max(S, p - W + 1); s <= p; s++) indices[at++] = s;
      counts[t] = at - t * width;
    }
    return { indices, width, count: (t) => counts[t] };
  }
}
