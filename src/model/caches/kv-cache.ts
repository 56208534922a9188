// The dense KV cache of one layer on the CPU (DSA's host layer), preallocated for the whole run and written
// in place: per key/value head a contiguous [keys, D] view in position order. Window and sinks rings live
// in attention/layers/ (ring-layout.ts and the kv layers), one layout for both backends.
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

/** Every position kept: [kvHeads, capacity, D], a view per head. */
export class DenseKVCache implements LayerKVCache {
  /** The whole cache, for a saved session (attention/layers/kv-cache-state.ts reads and writes it). */
  readonly all: { k: Float32Array; v: Float32Array };
  private readonly k: Float32Array[];
  private readonly v: Float32Array[];
  length = 0;

  constructor(
    readonly kvHeads: number,
    readonly headDim: number,
    readonly capacity: number,
  ) {
    const n = capacity * headDim;
    this.all = { k: new Float32Array(kvHeads * n), v: new Float32Array(kvHeads * n) };
    this.k = Array.from({ length: kvHeads }, (_, h) => this.all.k.subarray(h * n, (h + 1) * n));
    this.v = Array.from({ length: kvHeads }, (_, h) => this.all.v.subarray(h * n, (h + 1) * n));
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
