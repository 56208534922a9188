// The online softmax of one query row (Milakov & Gimelshein 2018), tile by tile with FlashAttention-2's
// rescale (Dao 2023): a running max m, a running sum l and an accumulator of P V; each tile's max moves m
// (or, with FlashAttention-4's lazy rescale, only when it exceeds m by `lazy`), rescaling l and the
// accumulator by e^(m_old - m_new). Shared by the CPU twins of the flash, CCA and gathered-key kernels, in JS
// doubles; dense-cpu.ts (whole-row softmax) and sparse-lanes-cpu.ts (one exp per key) follow other rules.
import type { AttentionState } from '../spine/state.js';

export interface OnlineSoftmaxOptions {
  /** Scores and exponentials in base 2, as the WGSL kernels keep them (then the scale includes log2 e). */
  base2?: boolean;
  /** Moves the running max only when a tile's max exceeds it by this much (0: every tile that raises it). */
  lazy?: number;
  /** Rounds each probability before P V (f16, as tensor-core kernels do); l sums the unrounded ones. */
  round?: (p: number) => number;
}

export class OnlineSoftmaxRow {
  private m = -Infinity;
  private l = 0;
  /** A visible score was NaN or infinite: the row is NaN (the NaN policy, docs/HARDENING.md). */
  private bad = false;
  private readonly acc: Float64Array;
  private readonly x: Float64Array;
  /** Per key of the next tile: its row offset (in elements) into K and V, or -1 where a mask hides it. */
  readonly rows: Int32Array;

  constructor(
    private readonly headDim: number,
    tile: number,
    private readonly opts: OnlineSoftmaxOptions = {},
  ) {
    this.acc = new Float64Array(headDim);
    this.x = new Float64Array(tile);
    this.rows = new Int32Array(tile);
  }

  /** A new row: nothing seen. */
  start(): void {
    this.m = -Infinity;
    this.l = 0;
    this.bad = false;
    this.acc.fill(0);
  }

  /** Folds the tile's first n keys (see `rows`) into the row of query Q[qo .. qo + D), scores times `scale`. */
  tile(Q: Float32Array, qo: number, scale: number, K: Float32Array, V: Float32Array, n: number): void {
    const D = this.headDim;
    const acc = this.acc;
    const x = this.x;
    const rows = this.rows;
    const { base2, round } = this.opts;
    let tileMax = -Infinity;
    for (let e = 0; e < n; e++) {
      const ko = rows[e];
      if (ko < 0) {
        x[e] = -Infinity;
        continue;
      }
      let dot = 0;
      for (let d = 0; d < D; d++) dot += Q[qo + d] * K[ko + d];
      x[e] = dot * scale;
      if (!Number.isFinite(x[e])) this.bad = true;
      tileMax = Math.max(tileMax, x[e]);
    }
    if (tileMax === -Infinity) return;
    let m = this.m;
    let l = this.l;
    if (tileMax > m + (this.opts.lazy ?? 0)) {
      const mNew = Math.max(m, tileMax);
      const alpha = m === -Infinity ? 0 : base2 ? 2 ** (m - mNew) : Math.exp(m - mNew);
      l *= alpha;
      for (let d = 0; d < D; d++) acc[d] *= alpha;
      m = mNew;
    }
    for (let e = 0; e < n; e++) {
      if (x[e] === -Infinity) continue;
      const p = base2 ? 2 ** (x[e] - m) : Math.exp(x[e] - m);
      l += p;
      const pv = round ? round(p) : p;
      const vo = rows[e];
      for (let d = 0; d < D; d++) acc[d] += pv * V[vo + d];
    }
    this.m = m;
    this.l = l;
  }

  /** Writes row r of `out`; a row that saw no key keeps the empty state (O = 0, L = -inf). */
  finish(out: AttentionState, r: number): void {
    const D = this.headDim;
    const l = this.l;
    if (this.bad) {
      out.lse[r] = Number.NaN;
      out.o.fill(Number.NaN, r * D, (r + 1) * D);
      return;
    }
    if (l === 0) return;
    out.lse[r] = this.opts.base2 ? (this.m + Math.log2(l)) * Math.LN2 : this.m + Math.log(l);
    for (let d = 0; d < D; d++) out.o[r * D + d] = this.acc[d] / l;
  }
}
