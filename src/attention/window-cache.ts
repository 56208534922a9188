// The KV cache of a sliding window (plus sink tokens) for decoding: it keeps only what the window can
// still see, the first S tokens and a ring buffer of the last L + 1, so memory is O(S + L), not O(N).
// Storage is preallocated and written in place; no buffer is allocated per token. Attention is
// invariant to the order of keys, so the ring is handed to the kernel as it lies.
import { ShapeError } from '../errors.js';
import { tensor, type DType, type HostData, type Tensor } from '../tensor.js';
import { RingLayout } from './layers/ring-layout.js';

export class WindowKVCache {
  readonly capacity: number;
  private readonly k: HostData;
  private readonly v: HostData;
  /** Position of the token in each slot. */
  private readonly slotPositions: Int32Array;
  private seen = 0;
  private readonly layout: RingLayout;

  constructor(
    readonly kvHeads: number,
    readonly headDim: number,
    readonly window: number,
    readonly sinks = 0,
    readonly dtype: DType = 'f32',
  ) {
    if (window < 0 || sinks < 0) throw new ShapeError('window and sinks must be non-negative');
    this.layout = new RingLayout(sinks, window + 1);
    this.capacity = this.layout.slots;
    const n = kvHeads * this.capacity * headDim;
    this.k = dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
    this.v = dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
    this.slotPositions = new Int32Array(this.capacity).fill(-1);
  }

  /** Tokens appended so far (the next token's position). */
  get length(): number {
    return this.seen;
  }

  /** Tokens held now: at most sinks + window + 1. */
  get cached(): number {
    return Math.min(this.seen, this.capacity);
  }

  get bytes(): number {
    return this.k.byteLength + this.v.byteLength;
  }

  /** Appends tokens from k and v of shape [kvHeads, n, headDim] (prefill or one decode step). */
  append(k: Tensor, v: Tensor): void {
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
    const D = this.headDim;
    for (let t = 0; t < n; t++) {
      const pos = this.seen++;
      const slot = this.layout.slot(pos);
      this.slotPositions[slot] = pos;
      for (let h = 0; h < this.kvHeads; h++) {
        const from = (h * n + t) * D;
        const to = (h * this.capacity + slot) * D;
        this.k.set(k.data.subarray(from, from + D), to);
        this.v.set(v.data.subarray(from, from + D), to);
      }
    }
  }

  /** The cached keys and values [kvHeads, cached, headDim] (slot order) and each slot's position. */
  view(): { k: Tensor; v: Tensor; positions: Int32Array } {
    const n = this.cached;
    if (n === this.capacity) {
      return {
        k: tensor([this.kvHeads, n, this.headDim], this.dtype, this.k),
        v: tensor([this.kvHeads, n, this.headDim], this.dtype, this.v),
        positions: this.slotPositions,
      };
    }
    // Not yet full: slots 0..n-1 of each head are contiguous only per head, so gather them.
    const pick = (src: HostData) => {
      const out =
        this.dtype === 'f32'
          ? new Float32Array(this.kvHeads * n * this.headDim)
          : new Uint16Array(this.kvHeads * n * this.headDim);
      for (let h = 0; h < this.kvHeads; h++)
        out.set(
          src.subarray(h * this.capacity * this.headDim, (h * this.capacity + n) * this.headDim),
          h * n * this.headDim,
        );
      return out;
    };
    return {
      k: tensor([this.kvHeads, n, this.headDim], this.dtype, pick(this.k)),
      v: tensor([this.kvHeads, n, this.headDim], this.dtype, pick(this.v)),
      positions: this.slotPositions.slice(0, n),
    };
  }
}
