// The warm-up target p of DeepSeek-V3.2 (sec. 2.1.1): the frozen model's causal attention of each query, summed
// over its query heads and L1-normalised (so the mean of the heads' softmax rows), from the layer's post-RoPE
// q [Hq, L, D] and k [Hkv, L, D] that the decoder's observe hook hands over. Rows come a chunk of queries at a
// time ([t1 - t0, L], zeros beyond each query's causal limit), so no L x L matrix is held. The logits are
// q.k / sqrt(D), the decoder's scale (a YaRN attention factor is already inside the observed q and k).

export interface LayerActivations {
  /** [Hq, L, D] post-RoPE queries. */
  q: Float32Array;
  /** [Hkv, L, D] post-RoPE keys. */
  k: Float32Array;
  /** [L, hidden] attention input. */
  h: Float32Array;
}

/** What the WebGPU backend needs to compute the target itself (kernels/indexer-train-wgsl.ts, indexerTargetWgsl). */
export interface TargetAttention {
  /** [heads, L, D] post-RoPE queries and [kvHeads, L, D] keys of the frozen layer. */
  q: Float32Array;
  k: Float32Array;
  heads: number;
  kvHeads: number;
  headDim: number;
}

export function attentionTarget(
  a: LayerActivations,
  L: number,
  heads: number,
  kvHeads: number,
  D: number,
): (t0: number, t1: number) => Float64Array {
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(D);
  return (t0, t1) => {
    const p = new Float64Array((t1 - t0) * L);
    const logits = new Float64Array(L);
    for (let t = t0; t < t1; t++) {
      const n = t + 1;
      const row = (t - t0) * L;
      for (let hq = 0; hq < heads; hq++) {
        const qb = (hq * L + t) * D;
        const kh = Math.floor(hq / group);
        let max = -Infinity;
        for (let s = 0; s < n; s++) {
          const kb = (kh * L + s) * D;
          let d = 0;
          for (let e = 0; e < D; e++) d += a.q[qb + e] * a.k[kb + e];
          logits[s] = d * scale;
          if (logits[s] > max) max = logits[s];
        }
        let z = 0;
        for (let s = 0; s < n; s++) z += logits[s] = Math.exp(logits[s] - max);
        for (let s = 0; s < n; s++) p[row + s] += logits[s] / z / heads;
      }
    }
    return p;
  };
}
