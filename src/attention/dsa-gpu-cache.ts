// The DSA decode cache resident on WebGPU: keys and values [Hkv, capacity, D] and the index keys (int8,
// four to a u32, with a scale per token; or f32) live in preallocated device buffers, and append() writes
// each new token in place. A decode step uploads only the new token's query, index query and weights,
// scores all cached index keys (O(N), small), selects top-k and attends over those keys only (O(k)).
import { ShapeError, UnsupportedError } from '../errors.js';
import { asFloat32, toDType, type DType, type Tensor } from '../tensor.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { packInt8, prepareIndexerQueries, quantizeInt8, type IndexerPrecision } from '../kernels/dsa-indexer-cpu.js';
import { selectGpu, type GpuIndexer } from './dsa-select.js';
import { DSA_DEFAULT_TOPK, sparseGatherGpu } from './dsa.js';
import type { AttentionState } from '../spine/state.js';

export class DsaGpuKVCache {
  private seen = 0;
  private readonly words: number;

  private constructor(
    private readonly gpu: GpuContext,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly indexDim: number,
    readonly capacity: number,
    readonly dtype: DType,
    readonly precision: IndexerPrecision,
    private readonly k: GPUBuffer,
    private readonly v: GPUBuffer,
    private readonly indexKeys: GPUBuffer,
    private readonly indexScales: GPUBuffer | undefined,
  ) {
    this.words = Math.ceil(indexDim / 4);
  }

  /** Allocates the whole cache now (f16 storage needs the device's shader-f16). */
  static async create(
    gpu: GpuContext,
    kvHeads: number,
    headDim: number,
    indexDim: number,
    capacity: number,
    dtype: DType = 'f16',
    precision: IndexerPrecision = 'int8',
  ): Promise<DsaGpuKVCache> {
    if (capacity < 1 || kvHeads < 1 || headDim < 1 || indexDim < 1)
      throw new ShapeError('cache sizes must be at least 1');
    if (dtype === 'f16' && !gpu.features.f16)
      throw new UnsupportedError('this device has no shader-f16; create the cache with dtype f32');
    if (dtype === 'f16' && headDim % 2 !== 0)
      throw new UnsupportedError(`an f16 cache needs an even head dim (4-byte writes), got ${headDim}`);
    const elem = dtype === 'f16' ? 2 : 4;
    const owned: GPUBuffer[] = [];
    try {
      for (const bytes of [
        kvHeads * capacity * headDim * elem,
        kvHeads * capacity * headDim * elem,
        precision === 'int8' ? capacity * Math.ceil(indexDim / 4) * 4 : capacity * indexDim * 4,
      ])
        owned.push(await gpu.createBuffer(bytes, 'dsa cache'));
      const scales = precision === 'int8' ? await gpu.createBuffer(capacity * 4, 'dsa cache index scales') : undefined;
      return new DsaGpuKVCache(
        gpu,
        kvHeads,
        headDim,
        indexDim,
        capacity,
        dtype,
        precision,
        owned[0],
        owned[1],
        owned[2],
        scales,
      );
    } catch (e) {
      owned.forEach((b) => gpu.release(b));
      throw e;
    }
  }

  get length(): number {
    return this.seen;
  }

  /** Appends tokens in place: k and v [Hkv, n, D], index keys [n, D_I]. */
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
    const n = k.shape[1];
    if (indexK.shape.length !== 2 || indexK.shape[0] !== n || indexK.shape[1] !== this.indexDim)
      throw new ShapeError(`index keys must be [${n}, ${this.indexDim}], got [${indexK.shape}]`);
    if (this.seen + n > this.capacity)
      throw new ShapeError(
        `cache of ${this.capacity} tokens is full (${this.seen} held, ${n} more); allocate a larger capacity`,
      );
    const write = (buf: GPUBuffer, at: number, data: ArrayBufferView) =>
      this.gpu.write(buf, at, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    const D = this.headDim;
    const elem = this.dtype === 'f16' ? 2 : 4;
    const [kd, vd] = [toDType(k, this.dtype).data, toDType(v, this.dtype).data];
    for (let h = 0; h < this.kvHeads; h++) {
      const at = (h * this.capacity + this.seen) * D * elem;
      write(this.k, at, kd.subarray(h * n * D, (h + 1) * n * D));
      write(this.v, at, vd.subarray(h * n * D, (h + 1) * n * D));
    }
    const ik = asFloat32(indexK);
    if (this.precision === 'int8') {
      const q8 = quantizeInt8(ik, n, this.indexDim);
      write(this.indexKeys, this.seen * this.words * 4, packInt8(q8).packed);
      write(this.indexScales!, this.seen * 4, q8.scales);
    } else {
      write(this.indexKeys, this.seen * this.indexDim * 4, Float32Array.from(ik));
    }
    this.seen += n;
  }

  /** Attention of the last Nq appended tokens: q [Hq, Nq, D], index q [H_I, Nq, D_I], w [Nq, H_I]; causal. */
  async attend(
    q: Tensor,
    indexQ: Tensor,
    indexW: Tensor,
    opts: { topk?: number; scale?: number } = {},
  ): Promise<AttentionState> {
    const gpu = this.gpu;
    const n = this.seen;
    const [heads, queries, D] = q.shape;
    if (q.shape.length !== 3 || D !== this.headDim || heads % this.kvHeads !== 0)
      throw new ShapeError(`q [${q.shape}] does not fit a cache of [${this.kvHeads}, *, ${this.headDim}]`);
    if (queries > n || queries < 1) throw new ShapeError(`${queries} queries against ${n} cached tokens`);
    if (
      indexQ.shape.length !== 3 ||
      indexQ.shape[1] !== queries ||
      indexQ.shape[2] !== this.indexDim ||
      indexW.shape.join() !== `${queries},${indexQ.shape[0]}`
    ) {
      throw new ShapeError(
        `index q must be [H_I, ${queries}, ${this.indexDim}] and w [${queries}, H_I]; got [${indexQ.shape}] and [${indexW.shape}]`,
      );
    }
    const shape = {
      heads,
      kvHeads: this.kvHeads,
      queries,
      keys: n,
      headDim: D,
      causal: true,
      scale: opts.scale ?? 1 / Math.sqrt(D),
    };
    const p = prepareIndexerQueries(indexQ, indexW, this.precision, n);
    const owned: GPUBuffer[] = [];
    const up = async (data: ArrayBufferView, label: string) => {
      const b = await gpu.upload(data, label);
      owned.push(b);
      return b;
    };
    try {
      const iq = await up(this.precision === 'int8' ? packInt8(p.q8!).packed : p.qf!, 'index q');
      const iw = await up(p.weights, 'index weights');
      const ix: GpuIndexer = {
        precision: this.precision,
        dtype: 'f32',
        heads: p.heads,
        dim: p.dim,
        buffers: this.precision === 'int8' ? [iq, this.indexKeys, iw, this.indexScales!] : [iq, this.indexKeys, iw],
        release: () => {},
      };
      const sel = await selectGpu(gpu, ix, { queries, keys: n, causal: true, topk: opts.topk ?? DSA_DEFAULT_TOPK });
      owned.push(sel.indices);
      const rows = heads * queries;
      const x = {
        q: await up(toDType(q, this.dtype).data, 'q'),
        k: this.k,
        v: this.v,
        o: await up(new Float32Array(rows * D).fill(NaN), 'o'),
        lse: await up(new Float32Array(rows).fill(NaN), 'lse'), // poisoned
        shape,
        dtype: this.dtype,
      };
      await sparseGatherGpu(gpu, x, sel.indices, sel.width, this.capacity);
      const o = new Float32Array(await gpu.read(x.o, rows * D * 4));
      const lse = new Float32Array(await gpu.read(x.lse, rows * 4));
      return { heads, queries, headDim: D, o, lse };
    } finally {
      owned.forEach((b) => gpu.release(b));
    }
  }

  destroy(): void {
    for (const b of [this.k, this.v, this.indexKeys, this.indexScales]) if (b) this.gpu.release(b);
  }
}
