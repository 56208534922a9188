// The compressed KV cache of CCA-Attention for prefill-with-cache and decoding: the cores pooled so far
// (one per g tokens) plus a ring of the last w + g - 1 raw tokens, which is all a later query can see
// (query p sees raw positions [c*g, p], at most w + g - 1 of them). A group is pooled when its last token
// arrives, with that token's query, so forward() takes q with k and v. Bytes: about (N/g + w) / N of dense.
import { ShapeError } from '../errors.js';
import { float32ToHalf } from '../f16.js';
import { asFloat32, bytesPerElement, tensor, type DType, type HostData, type Tensor } from '../tensor.js';
import type { Device } from '../runtime/device.js';
import { ccaPoolCpu, coresSeen } from '../kernels/cca-cpu.js';
import { ccaAttendPooled, checkCcaParams, type CcaParams } from './cca.js';
import type { AttentionState } from '../spine/state.js';
import type { LayerCacheState } from './layer.js';
import { restoreCcaCache, type CcaImage } from './layers/cca-cache-state.js';

export interface CcaCacheOptions extends CcaParams {
  heads: number;
  kvHeads: number;
  headDim: number;
  dtype?: DType;
  /** Score scale; default 1/sqrt(D). */
  scale?: number;
}

function alloc(dtype: DType, n: number): HostData {
  return dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
}

export class CcaKVCache {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly group: number;
  readonly window: number;
  readonly dtype: DType;
  readonly scale: number;
  /** Raw tokens held: w + g - 1. */
  readonly ringCapacity: number;
  private readonly ringK: HostData;
  private readonly ringV: HostData;
  private coreK: HostData;
  private coreV: HostData;
  private coreCapacity = 0;
  private pooled = 0;
  private seen = 0;

  constructor(o: CcaCacheOptions) {
    checkCcaParams(o);
    if (o.heads % o.kvHeads !== 0)
      throw new ShapeError(`query heads (${o.heads}) must be a multiple of key/value heads (${o.kvHeads})`);
    [this.heads, this.kvHeads, this.headDim, this.group, this.window] = [
      o.heads,
      o.kvHeads,
      o.headDim,
      o.group,
      o.window,
    ];
    this.dtype = o.dtype ?? 'f32';
    this.scale = o.scale ?? 1 / Math.sqrt(o.headDim);
    this.ringCapacity = o.window + o.group - 1;
    this.ringK = alloc(this.dtype, o.kvHeads * this.ringCapacity * o.headDim);
    this.ringV = alloc(this.dtype, this.ringK.length);
    this.coreK = alloc(this.dtype, 0);
    this.coreV = alloc(this.dtype, 0);
  }

  /** Tokens appended so far (the next token's position). */
  get length(): number {
    return this.seen;
  }

  /** Groups pooled so far. */
  get cores(): number {
    return this.pooled;
  }

  /** Bytes held: pooled cores and the raw ring (keys and values). */
  get bytes(): number {
    return (
      (this.pooled + Math.min(this.seen, this.ringCapacity)) *
      2 *
      this.kvHeads *
      this.headDim *
      bytesPerElement(this.dtype)
    );
  }

  /** Its arrays as they lie, for a saved session (attention/layers/cca-cache-state.ts reads and writes them). */
  image(): CcaImage {
    const { kvHeads, headDim, dtype, group, window } = this;
    const [coreK, coreV, ringK, ringV] = [this.coreK, this.coreV, this.ringK, this.ringV];
    return { kvHeads, headDim, dtype, group, window, coreStride: this.coreCapacity, coreK, coreV, ringK, ringV };
  }

  /** Takes a saved state back into an empty cache; false when restoreCcaCache says it cannot. */
  restore(state: LayerCacheState): boolean {
    if (this.seen !== 0)
      throw new ShapeError(`a cca cache of ${this.seen} tokens cannot take a saved state; reset first`);
    const ok = restoreCcaCache(state, this.image(), (cores) => {
      this.reserve(cores);
      return this.image();
    });
    if (ok) [this.seen, this.pooled] = [state.tokens, Math.floor(state.tokens / this.group)];
    return ok;
  }

  /** Bytes a dense cache of the same tokens would hold. */
  get denseBytes(): number {
    return this.seen * 2 * this.kvHeads * this.headDim * bytesPerElement(this.dtype);
  }

  /**
   * Attends the n new tokens (q [Hq, n, D], k and v [Hkv, n, D], positions length .. length+n-1) to
   * everything so far under CCA, then keeps them: n = 1 decodes, n > 1 prefills a chunk.
   */
  async forward(device: Device, q: Tensor, k: Tensor, v: Tensor): Promise<AttentionState> {
    const n = k.shape[1];
    const D = this.headDim;
    if (
      q.shape.length !== 3 ||
      q.shape[0] !== this.heads ||
      q.shape[1] !== n ||
      q.shape[2] !== D ||
      k.shape.length !== 3 ||
      k.shape[0] !== this.kvHeads ||
      k.shape[2] !== D ||
      v.shape.join() !== k.shape.join()
    ) {
      throw new ShapeError(
        `cache of q [${this.heads}, n, ${D}], k/v [${this.kvHeads}, n, ${D}] cannot take q [${q.shape}], k [${k.shape}], v [${v.shape}]`,
      );
    }
    for (const t of [q, k, v])
      if (t.dtype !== this.dtype) throw new ShapeError(`cache holds ${this.dtype}, got ${t.dtype}`);
    const P = this.seen;
    // Raw rows of this call, contiguous: held positions [lo, P) from the ring, then the n new ones.
    const lo = coresSeen(P, this.group, this.window) * this.group;
    const R = P + n - lo;
    const rawK = alloc(this.dtype, this.kvHeads * R * D);
    const rawV = alloc(this.dtype, rawK.length);
    for (let h = 0; h < this.kvHeads; h++) {
      for (let pos = lo; pos < P; pos++) {
        const from = (h * this.ringCapacity + (pos % this.ringCapacity)) * D;
        rawK.set(this.ringK.subarray(from, from + D), (h * R + pos - lo) * D);
        rawV.set(this.ringV.subarray(from, from + D), (h * R + pos - lo) * D);
      }
      rawK.set(k.data.subarray(h * n * D, (h + 1) * n * D), (h * R + P - lo) * D);
      rawV.set(v.data.subarray(h * n * D, (h + 1) * n * D), (h * R + P - lo) * D);
    }
    const kRaw = tensor([this.kvHeads, R, D], this.dtype, rawK);
    const vRaw = tensor([this.kvHeads, R, D], this.dtype, rawV);
    this.pool(q, kRaw, vRaw, P, lo);
    const shape = [this.kvHeads, this.coreCapacity, D];
    const state = await ccaAttendPooled(
      device,
      q,
      tensor(shape, this.dtype, this.coreK),
      tensor(shape, this.dtype, this.coreV),
      kRaw,
      vRaw,
      { group: this.group, window: this.window, queryStart: P, rawStart: lo },
      this.scale,
    );
    this.keep(k, v, P);
    return state;
  }

  /** Pools the groups whose last token is among the new ones (their tokens are all in the raw rows). */
  private pool(q: Tensor, kRaw: Tensor, vRaw: Tensor, P: number, lo: number): void {
    const n = q.shape[1];
    const count = Math.floor((P + n) / this.group) - this.pooled;
    if (count <= 0) return;
    const D = this.headDim;
    this.reserve(this.pooled + count);
    const ck = new Float32Array(this.kvHeads * count * D);
    const cv = new Float32Array(ck.length);
    ccaPoolCpu(
      asFloat32(q),
      asFloat32(kRaw),
      asFloat32(vRaw),
      {
        heads: this.heads,
        kvHeads: this.kvHeads,
        headDim: D,
        scale: this.scale,
        group: this.group,
        window: this.window,
        queries: n,
        queryStart: P,
        raw: kRaw.shape[1],
        rawStart: lo,
        cores: count,
      },
      this.pooled,
      count,
      ck,
      cv,
      this.dtype === 'f16',
    );
    const [sk, sv] = this.dtype === 'f16' ? [float32ToHalf(ck), float32ToHalf(cv)] : [ck, cv];
    for (let h = 0; h < this.kvHeads; h++) {
      this.coreK.set(sk.subarray(h * count * D, (h + 1) * count * D), (h * this.coreCapacity + this.pooled) * D);
      this.coreV.set(sv.subarray(h * count * D, (h + 1) * count * D), (h * this.coreCapacity + this.pooled) * D);
    }
    this.pooled += count;
  }

  /** Grows the core store geometrically, so decoding copies it O(log N) times. */
  private reserve(cores: number): void {
    if (cores <= this.coreCapacity) return;
    const cap = Math.max(cores, Math.ceil(this.coreCapacity * 1.5), 16);
    const D = this.headDim;
    const [k, v] = [alloc(this.dtype, this.kvHeads * cap * D), alloc(this.dtype, this.kvHeads * cap * D)];
    for (let h = 0; h < this.kvHeads; h++) {
      const from = h * this.coreCapacity * D;
      k.set(this.coreK.subarray(from, from + this.pooled * D), h * cap * D);
      v.set(this.coreV.subarray(from, from + this.pooled * D), h * cap * D);
    }
    [this.coreK, this.coreV, this.coreCapacity] = [k, v, cap];
  }

  private keep(k: Tensor, v: Tensor, P: number): void {
    const n = k.shape[1];
    const D = this.headDim;
    for (let t = Math.max(0, n - this.ringCapacity); t < n; t++) {
      const slot = (P + t) % this.ringCapacity;
      for (let h = 0; h < this.kvHeads; h++) {
        const from = (h * n + t) * D;
        this.ringK.set(k.data.subarray(from, from + D), (h * this.ringCapacity + slot) * D);
        this.ringV.set(v.data.subarray(from, from + D), (h * this.ringCapacity + slot) * D);
      }
    }
    this.seen += n;
  }
}
