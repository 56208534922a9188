// The operations the Llama forward pass is written over (llama-forward.ts), one implementation per
// backend: cpu-ops.ts (the exact twin CI checks) and gpu-ops.ts (WebGPU). B is where activations live,
// M a weight matrix, V a weight vector. Ops may record instead of run: `submit` makes everything recorded
// so far happen before what comes next (on WebGPU one compute pass; on the CPU nothing to do).

/** Whose output a checked RMSNorm tests (ForwardOps.checkFinite's layer and chunk start). */
export interface FiniteCheck {
  layer: number;
  position: number;
}

/** A layer's attention input projections: q, k and v stacked as one matrix [q; k; v] (one product, one GEMV
 * per decoded token; weights/concat-rows.ts) where they share an encoding, or three. */
export type QkvWeightsOf<M, V> = { fused: M; bias?: V } | { q: M; k: M; v: M; bq?: V; bk?: V; bv?: V };

/** Where the projections left q, k and v (token-major): one buffer of rows [q | k | v], or three. */
export type QkvRowsOf<B> = { fused: B } | { q: B; k: B; v: B };

export interface LayerWeightsOf<M, V> {
  attnNorm: V;
  ffnNorm: V;
  qkv: QkvWeightsOf<M, V>;
  wo: M;
  wGate: M;
  wUp: M;
  wDown: M;
}

export interface ModelWeightsOf<M, V> {
  layers: LayerWeightsOf<M, V>[];
  embedding: M;
  output: M;
  outputNorm: V;
}

/** Activations of one chunk of up to `chunk` tokens (token-major unless named *h: head-major [heads, T, D]). */
export interface Activations<B> {
  x: B;
  h: B;
  /** [chunk, (heads + 2 kvHeads) D]: the stacked projection's rows (empty where no layer stacks them). */
  qkv: B;
  q: B;
  k: B;
  v: B;
  qh: B;
  kh: B;
  vh: B;
  oh: B;
  o: B;
  proj: B;
  gate: B;
  up: B;
  last: B;
  logits: B;
}

export interface ForwardOps<B, M, V> {
  /** x[t] = the embedding row of tokens[t]; RoPE's table for positions [position, position + T). */
  embed(table: M, tokens: readonly number[], position: number, x: B): void;
  /** out = RMSNorm of `rows` rows of x from row `first`, times w; with `check`, also checkFinite of those rows
   * for layer check.layer (a layer's attention norm reads the stream the layer before it left). */
  rmsNorm(x: B, w: V, out: B, rows: number, first?: number, check?: FiniteCheck): void;
  /** y [T, n] = x [T, k] w^T (+ bias). */
  matmul(x: B, w: M, y: B, T: number, n: number, k: number, bias?: V): void;
  /** y [T, n] += x [T, k] w^T: a projection and the residual add after it (fused into one kernel for one row
   * on WebGPU); `scratch` [T, n] holds the product where they are not fused. */
  matmulAdd(x: B, w: M, y: B, T: number, n: number, k: number, scratch: B): void;
  /** gate [T, n] = silu(x wGate^T) * (x wUp^T), SwiGLU's two projections (one kernel for one row on WebGPU);
   * `up` [T, n] holds the second product where they are not fused. */
  gateUp(x: B, wGate: M, wUp: M, gate: B, up: B, T: number, n: number, k: number): void;
  /** Token-major q [T, heads, D], k and v [T, kvHeads, D] into head-major qh, kh, vh [heads, T, D] in the storage
   * dtype, q and k rotated by RoPE (unless `rotate` is false: a positional method rotates them later), v moved. */
  ropeQkv(rows: QkvRowsOf<B>, qh: B, kh: B, vh: B, T: number, rotate: boolean): void;
  /** Head-major src [heads, T, D] (f32) into token-major dst [T, heads * D]. */
  headsToTokens(src: B, dst: B, T: number, heads: number): void;
  /** x += y over n values. */
  add(x: B, y: B, n: number): void;
  /** gate = silu(gate) * up over n values. */
  swiglu(gate: B, up: B, n: number): void;
  /** The NaN policy (docs/HARDENING.md): a NonFiniteError naming the layer when x [T, hidden] is not finite.
   * The CPU throws at once; WebGPU raises a per-layer flag on the GPU that the read of the logits checks. */
  checkFinite?(x: B, values: number, layer: number, position: number): void;
  submit(label: string): Promise<void>;
  /** Runs one forward (of one or more chunks); WebGPU validates all its submissions once, at the end. */
  forwardScope<T>(work: () => Promise<T>): Promise<T>;
  /** The first n f32 values of b on the host (logits; observers' q and k, in the storage dtype, as f32). */
  read(b: B, n: number, storage?: boolean): Promise<Float32Array>;
}
