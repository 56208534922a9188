// One attention layer of a model (docs/DESIGN.md, "the model on the device"): it owns its KV cache on the
// backend it runs on and serves prefill chunks and single-token decoding through the same call. Methods
// differ inside these objects, never in the decoder; which kernel and variant a layer runs is decided by
// the planner (attention/planner.ts), and the layer says what it chose in `plan`.
import { ShapeError } from '../errors.js';
import type { DType } from '../tensor.js';

/** A chunk of T new tokens at positions [start, start + T): q [Hq, T, D] and k [Hkv, T, D] rotated by RoPE,
 * v [Hkv, T, D], in the layer's storage dtype, where the layer's backend keeps them (GPU buffers on WebGPU,
 * host arrays on the CPU). The layer appends k and v to its cache and writes o [Hq, T, D] (f32) to `out`.
 * The cache holds exactly the `start` tokens before the chunk. */
export interface LayerChunk<Buffer> {
  q: Buffer;
  k: Buffer;
  v: Buffer;
  out: Buffer;
  start: number;
  tokens: number;
  /** Tokens of the sequence's first forward (its prompt): Star's block mask follows it. */
  promptTokens?: number;
  /** The attention input h [T, hidden] (f32), for layers whose indexer reads it (DSA's trained indexer). */
  input?: Buffer;
}

export interface LayerAttention<Buffer> {
  /** The method spec it serves, e.g. `cca:group=16,window=1024`. */
  readonly spec: string;
  /** The kernel version and geometry chosen for it, with the reason (`plan` prints this). */
  readonly plan: string;
  forward(chunk: LayerChunk<Buffer>): Promise<void>;
  /** Bytes the cache holds on its backend now (for `plan`, `--stats` and the benchmarks). */
  readonly cacheBytes: number;
  /** Forgets every cached token (a new sequence); keeps the allocations. */
  reset(): void;
  /** Releases what the layer allocated; the layer is unusable afterwards. */
  destroy(): void;
  /** The cache as host arrays, for a saved session (layers without it are rebuilt by replaying the tokens). */
  saveCache?(): Promise<LayerCacheState>;
  /** Takes a saved cache back (after reset, in place of feeding its tokens); false when this layer's cache
   * needs rows the state lacks (a session saved with a ring, restored into a layer that keeps every row). It copies
   * what it keeps (into its arrays, or by queue writes, which copy at the call): once it has returned, the state's
   * arrays are overwritten with the next layers' (api/session-prefetch.ts reuses their buffers). */
  restoreCache?(state: LayerCacheState): Promise<boolean>;
}

/** A layer's cache as host arrays: what saveCache hands over and restoreCache takes back. */
export interface LayerCacheState {
  /** The layer's method spec; a state restores only into a layer of the same spec. */
  spec: string;
  /** Tokens the cache has seen (ring caches hold fewer rows). */
  tokens: number;
  /** Small integers that place the arrays' rows (kv caches: `sinks` and `first`, see layers/kv-cache-state.ts). */
  meta: Record<string, number>;
  /** Named arrays, e.g. a kv cache's `k` and `v` [Hkv, rows, D]; f16 as its bits. */
  arrays: Record<string, SavedArray>;
}

/** A saved array: f32, f16 (as its bits) or i8 (DSA's quantised index keys). */
export interface SavedArray {
  dtype: DType | 'i8';
  shape: number[];
  data: Float32Array | Uint16Array | Int8Array;
}

/** What every layer of a model shares: its attention shape, the run's size and the storage dtype. */
export interface LayerDims {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Tokens the run holds at most (prompt + generated): caches are sized once from it. */
  maxTokens: number;
  /** Tokens per forward chunk at most. */
  chunk: number;
  dtype: DType;
  /** Window and sinks layers keep a ring of what a query sees (default); false keeps every position. */
  ring?: boolean;
}

/** A layer that keeps every position (dims.maxTokens of them) takes chunks of at most dims.chunk tokens, each
 * starting where the cache ends (`held` tokens); anything else is a ShapeError naming the layer. */
export function checkChunkFits(spec: string, held: number, dims: LayerDims, start: number, tokens: number): void {
  if (start !== held || tokens > dims.chunk || start + tokens > dims.maxTokens)
    throw new ShapeError(
      `${spec} layer holds ${held} of ${dims.maxTokens} tokens (chunks of ${dims.chunk}); a chunk of ${tokens} came at ${start}`,
    );
}
