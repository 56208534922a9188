// KV caches of one layer on the CPU, preallocated for the whole run and written in place. Both hand the
// attention call, per key/value head, a contiguous [keys, D] view whose last T rows are the new chunk and
// whose keys sit in position order, so the method's bottom-right-aligned mask (causal, window, sinks)
// applies unchanged: that is what makes chunked prefill exact.
import { ShapeError } from '../../errors.js';

export interface KeysView {
  /** Per key/value head: keys and values [n, D], views into the cache or its scratch. */
  keys: Float32Array[];
  values: Float32Array[];
  n: number;
}

export interface LayerKVCache {
  /** Stores a chunk k, v [kvHeads, T, D] and returns what the chunk's queries may attend to. */
  append(k: Float32Array, v: Float32Array, T: number): KeysView;
  readonly length: number;
  readonly bytes: number;
  /** Back to empty, keeping the storage. */
  reset(): void;
}

/** Every position kept: [kvHeads][capacity, D]. */
export class DenseKVCache implements LayerKVCache {
  private readonly k: Float32Array[];
  private readonly v: Float32Array[];
  length = 0;

  constructor(
    readonly kvHeads: number,
    readonly headDim: number,
    readonly capacity: number,
  ) {
    this.k = Array.from({ length: kvHeads }, () => new Float32Array(capacity * headDim));
    this.v = Array.from({ length: kvHeads }, () => new Float32Array(capacity * headDim));
  }

  reset(): void {
    this.length = 0;
  }

  get bytes(): number {
    return 2 * this.kvHeads * this.capacity * this.headDim * 4;
  }

  append(k: Float32Array, v: Float32Array, T: number): KeysView {
    const D = this.headDim;
    if (this.length + T > this.capacity)
      throw new ShapeError(`KV cache holds ${this.capacity} tokens; ${this.length} + ${T} do not fit`);
    for (let h = 0; h < this.kvHeads; h++) {
      this.k[h].set(k.subarray(h * T * D, (h + 1) * T * D), this.length * D);
      this.v[h].set(v.subarray(h * T * D, (h + 1) * T * D), this.length * D);
    }
    this.length += T;
    const n = this.length;
    return { keys: this.k.map((a) => a.subarray(0, n * D)), values: this.v.map((a) => a.subarray(0, n * D)), n };
  }
}

/**
 * Sinks plus a ring of the last `window` + 1 positions (StreamingLLM's cache; the same layout as
 * attention/window-cache.ts, which has no position-ordered view for chunks). Before a chunk is stored,
 * sinks, ring (unrolled into position order) and chunk are copied into a preallocated scratch. When the
 * ring has dropped positions, keys after the sinks are shifted in index; a window mask compares key and
 * query indices by difference, so the shift changes nothing, and the sinks keep indices 0..S-1.
 */
export class RingKVCache implements LayerKVCache {
  private readonly ringK: Float32Array[];
  private readonly ringV: Float32Array[];
  private readonly scratchK: Float32Array[];
  private readonly scratchV: Float32Array[];
  private readonly ring: number;
  length = 0;

  constructor(
    readonly kvHeads: number,
    readonly headDim: number,
    readonly window: number,
    readonly sinks: number,
    readonly maxChunk: number,
  ) {
    this.ring = window + 1;
    const held = (sinks + this.ring) * headDim;
    const scratch = (sinks + this.ring + maxChunk) * headDim;
    this.ringK = Array.from({ length: kvHeads }, () => new Float32Array(held));
    this.ringV = Array.from({ length: kvHeads }, () => new Float32Array(held));
    this.scratchK = Array.from({ length: kvHeads }, () => new Float32Array(scratch));
    this.scratchV = Array.from({ length: kvHeads }, () => new Float32Array(scratch));
  }

  reset(): void {
    this.length = 0;
  }

  get bytes(): number {
    return 2 * this.kvHeads * (2 * (this.sinks + this.ring) + this.maxChunk) * this.headDim * 4;
  }

  private slot(pos: number): number {
    return pos < this.sinks ? pos : this.sinks + ((pos - this.sinks) % this.ring);
  }

  append(k: Float32Array, v: Float32Array, T: number): KeysView {
    if (T > this.maxChunk)
      throw new ShapeError(`ring KV cache takes chunks of at most ${this.maxChunk} tokens, got ${T}`);
    const D = this.headDim;
    const sinksHeld = Math.min(this.length, this.sinks);
    const ringFirst = Math.max(sinksHeld, this.length - this.ring);
    const n = sinksHeld + (this.length - ringFirst) + T;
    for (let h = 0; h < this.kvHeads; h++) {
      for (const [ring, scratch, chunk] of [
        [this.ringK[h], this.scratchK[h], k],
        [this.ringV[h], this.scratchV[h], v],
      ] as const) {
        scratch.set(ring.subarray(0, sinksHeld * D), 0);
        let at = sinksHeld;
        for (let p = ringFirst; p < this.length; p++, at++) {
          const s = this.slot(p);
          scratch.set(ring.subarray(s * D, (s + 1) * D), at * D);
        }
        scratch.set(chunk.subarray(h * T * D, (h + 1) * T * D), at * D);
      }
    }
    for (let t = 0; t < T; t++) {
      const s = this.slot(this.length + t);
      for (let h = 0; h < this.kvHeads; h++) {
        const from = (h * T + t) * D;
        this.ringK[h].set(k.subarray(from, from + D), s * D);
        this.ringV[h].set(v.subarray(from, from + D), s * D);
      }
    }
    this.length += T;
    return {
      keys: this.scratchK.map((a) => a.subarray(0, n * D)),
      values: this.scratchV.map((a) => a.subarray(0, n * D)),
      n,
    };
  }
}
