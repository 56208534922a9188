// The KV cache of DSA decoding: keys and values [Hkv, capacity, D] plus one index key per token [capacity,
// D_I], which the int8 indexer keeps quantised (int8 values and a scale per token, quantised once at append).
// Storage is preallocated and written in place. attend() runs the last Nq appended tokens' queries against
// the cache: select over all cached index keys, then attention over the chosen keys only.
import { ShapeError } from '../errors.js';
import { asFloat32, tensor, type DType, type HostData, type Tensor } from '../tensor.js';
import type { Device } from '../runtime/device.js';
import {
  prepareIndexerQueries,
  quantizeInt8,
  type IndexerPrecision,
  type PreparedIndexer,
} from '../kernels/dsa-indexer-cpu.js';
import { sparseGatherAttentionCpu } from '../kernels/sparse-gather-cpu.js';
import { selectCpu } from './dsa-select.js';
import { dsaAttention, DSA_DEFAULT_TOPK } from './dsa.js';
import type { AttentionState } from '../spine/state.js';

export class DsaKVCache {
  private readonly k: HostData;
  private readonly v: HostData;
  private readonly indexKeys: Float32Array;
  private readonly indexInt8: Int8Array;
  private readonly indexScales: Float32Array;
  private seen = 0;

  constructor(
    readonly kvHeads: number,
    readonly headDim: number,
    readonly indexDim: number,
    readonly capacity: number,
    readonly dtype: DType = 'f32',
    readonly precision: IndexerPrecision = 'int8',
  ) {
    if (capacity < 1 || kvHeads < 1 || headDim < 1 || indexDim < 1)
      throw new ShapeError('cache sizes must be at least 1');
    const n = kvHeads * capacity * headDim;
    this.k = dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
    this.v = dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
    this.indexKeys = new Float32Array(precision === 'float' ? capacity * indexDim : 0);
    this.indexInt8 = new Int8Array(precision === 'int8' ? capacity * indexDim : 0);
    this.indexScales = new Float32Array(precision === 'int8' ? capacity : 0);
  }

  /** Tokens appended so far. */
  get length(): number {
    return this.seen;
  }

  get bytes(): number {
    return (
      this.k.byteLength +
      this.v.byteLength +
      this.indexKeys.byteLength +
      this.indexInt8.byteLength +
      this.indexScales.byteLength
    );
  }

  /** Appends tokens: k and v [Hkv, n, D], index keys [n, D_I]. */
  append(k: Tensor, v: Tensor, indexK: Tensor): void {
    if (
      k.shape.length !== 3 ||
      k.shape[0] !== this.kvHeads ||
      k.shape[2] !== this.headDim ||
      v.shape.join() !== k.shape.join()
    ) {
      throw new ShapeError(
        `cache of [${this.kvHeads}, *, ${this.headDim}] cannot take k [${k.shape}] and v [${v.shape}]`,
      );
    }
    if (k.dtype !== this.dtype || v.dtype !== this.dtype)
      throw new ShapeError(`cache holds ${this.dtype}, got ${k.dtype}`);
    const n = k.shape[1];
    if (indexK.shape.length !== 2 || indexK.shape[0] !== n || indexK.shape[1] !== this.indexDim) {
      throw new ShapeError(`index keys must be [${n}, ${this.indexDim}], got [${indexK.shape}]`);
    }
    if (this.seen + n > this.capacity)
      throw new ShapeError(
        `cache of ${this.capacity} tokens is full (${this.seen} held, ${n} more); allocate a larger capacity`,
      );
    const D = this.headDim;
    for (let h = 0; h < this.kvHeads; h++) {
      this.k.set(k.data.subarray(h * n * D, (h + 1) * n * D), (h * this.capacity + this.seen) * D);
      this.v.set(v.data.subarray(h * n * D, (h + 1) * n * D), (h * this.capacity + this.seen) * D);
    }
    const ik = asFloat32(indexK);
    if (this.precision === 'float') this.indexKeys.set(ik, this.seen * this.indexDim);
    else {
      const q8 = quantizeInt8(ik, n, this.indexDim);
      this.indexInt8.set(q8.values, this.seen * this.indexDim);
      this.indexScales.set(q8.scales, this.seen);
    }
    this.seen += n;
  }

  /** The cached index keys as the indexer's kernels read them (views, no copy). */
  private preparedIndexer(indexQ: Tensor, indexW: Tensor): PreparedIndexer {
    const n = this.seen;
    const p = prepareIndexerQueries(indexQ, indexW, this.precision, n);
    if (this.precision === 'float') p.kf = this.indexKeys.subarray(0, n * this.indexDim);
    else
      p.k8 = {
        count: n,
        dim: this.indexDim,
        values: this.indexInt8.subarray(0, n * this.indexDim),
        scales: this.indexScales.subarray(0, n),
      };
    return p;
  }

  /**
   * Attention of the last Nq appended tokens (q [Hq, Nq, D], index q [H_I, Nq, D_I], w [Nq, H_I]) over the
   * cache, causal. On the CPU it reads the cache in place; on WebGPU it hands the held tokens to dsaAttention.
   */
  async attend(
    device: Device,
    q: Tensor,
    indexQ: Tensor,
    indexW: Tensor,
    opts: { topk?: number; scale?: number } = {},
  ): Promise<AttentionState> {
    const n = this.seen;
    const [heads, queries, D] = q.shape;
    if (q.shape.length !== 3 || D !== this.headDim || heads % this.kvHeads !== 0)
      throw new ShapeError(`q [${q.shape}] does not fit a cache of [${this.kvHeads}, *, ${this.headDim}]`);
    if (queries > n) throw new ShapeError(`${queries} queries but only ${n} cached tokens`);
    if (
      indexQ.shape.length !== 3 ||
      indexQ.shape[1] !== queries ||
      indexQ.shape[2] !== this.indexDim ||
      indexW.shape.length !== 2 ||
      indexW.shape[0] !== queries ||
      indexW.shape[1] !== indexQ.shape[0]
    ) {
      throw new ShapeError(
        `index q must be [H_I, ${queries}, ${this.indexDim}] and w [${queries}, H_I]; got [${indexQ.shape}] and [${indexW.shape}]`,
      );
    }
    const topk = opts.topk ?? DSA_DEFAULT_TOPK;
    const shape = {
      heads,
      kvHeads: this.kvHeads,
      queries,
      keys: n,
      headDim: D,
      causal: true,
      scale: opts.scale ?? 1 / Math.sqrt(D),
    };
    if (!device.gpu) {
      const keys = selectCpu(this.preparedIndexer(indexQ, indexW), { queries, keys: n, causal: true, topk });
      const full = [this.kvHeads, this.capacity, D];
      return sparseGatherAttentionCpu(
        q,
        tensor(full, this.dtype, this.k),
        tensor(full, this.dtype, this.v),
        shape,
        keys,
        this.capacity,
      );
    }
    // WebGPU: upload what is held (DsaGpuKVCache keeps the cache on the device instead).
    const held = (src: HostData) => {
      const out = this.dtype === 'f32' ? new Float32Array(this.kvHeads * n * D) : new Uint16Array(this.kvHeads * n * D);
      for (let h = 0; h < this.kvHeads; h++)
        out.set(src.subarray(h * this.capacity * D, (h * this.capacity + n) * D), h * n * D);
      return tensor([this.kvHeads, n, D], this.dtype, out);
    };
    const indexK =
      this.precision === 'float'
        ? tensor([n, this.indexDim], 'f32', this.indexKeys.slice(0, n * this.indexDim))
        : dequantized(this.indexInt8, this.indexScales, n, this.indexDim);
    return dsaAttention(device, q, held(this.k), held(this.v), {
      index: { q: indexQ, k: indexK, w: indexW },
      topk,
      indexer: this.precision,
      scale: shape.scale,
    });
  }
}

/** int8 index keys back to f32 (scale * value): re-quantising gives the same int8 values, scales within an ulp. */
function dequantized(values: Int8Array, scales: Float32Array, n: number, dim: number): Tensor {
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) out[i * dim + d] = values[i * dim + d] * scales[i];
  return tensor([n, dim], 'f32', out);
}
