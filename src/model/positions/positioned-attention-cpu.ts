// Attention under a positional method on the CPU: queries and keys arrive unrotated (the cache holds keys
// before RoPE), and each (query, key) score applies the rotation of their relative distance directly,
// q^T R(d) k = sum over pairs i of (q0 k0 + q1 k1) cos(d w_i) + (q0 k1 - q1 k0) sin(d w_i), times the attention
// factor squared, with cos/sin tabulated per distance. One softmax over the keys a query sees (Self-Extend's
// two attentions merged by its mask, DCA's three, remap's window and selection), exact in float32 sums.
// Cost: about 3x the multiply-adds of a plain score (two products and two table reads per pair), the
// unrotated key cache (same bytes as the rotated one: keys are rotated per query instead), and for remap a
// position-agnostic pass over the far keys per query head to pick its top K.
import { ShapeError } from '../../errors.js';
import type { AttentionState } from '../../spine/state.js';
import { maskAllows, type MaskNode } from '../../spine/mask.js';
import type { GatheredKeys } from '../../kernels/sparse-gather-cpu.js';
import { type PositionMethod, relativePosition } from './position-method.js';

export class PositionedAttentionCpu {
  private cos = new Float64Array(0);
  private sin = new Float64Array(0);
  private tableRows = 0;
  private scores = new Float64Array(0);
  private ranks = new Int32Array(0);

  constructor(
    readonly method: PositionMethod,
    private readonly invFreq: Float64Array,
    private readonly attentionFactor: number,
    private readonly layout: 'interleaved' | 'half',
  ) {}

  private ensureTable(maxDistance: number): void {
    if (maxDistance < this.tableRows) return;
    const half = this.invFreq.length;
    const rows = Math.max(maxDistance + 1, this.tableRows * 2, 64);
    const [cos, sin] = [new Float64Array(rows * half), new Float64Array(rows * half)];
    const f2 = this.attentionFactor * this.attentionFactor;
    for (let d = 0; d < rows; d++)
      for (let i = 0; i < half; i++) {
        cos[d * half + i] = Math.cos(d * this.invFreq[i]) * f2;
        sin[d * half + i] = Math.sin(d * this.invFreq[i]) * f2;
      }
    [this.cos, this.sin, this.tableRows] = [cos, sin, rows];
  }

  /**
   * q [heads, T, D] at positions start..start+T-1 against keys and values [n, D] at positions 0..n-1
   * (n = start + T: a dense cache), all unrotated; causal, and within `visible` (a window or sinks mask) when
   * given. For remap, `picks` (when given: the DSA indexer's key lists, model/caches/remap-indexer.ts) supplies each
   * query's far keys, shared by its heads, in place of the top K by q.k: a list's entries p - j >= W, in order. Returns the state [heads, T, D].
   */
  attend(
    q: Float32Array,
    heads: number,
    T: number,
    keys: Float32Array,
    values: Float32Array,
    n: number,
    D: number,
    start: number,
    visible?: MaskNode,
    picks?: GatheredKeys,
  ): AttentionState {
    const half = D / 2;
    const scale = 1 / Math.sqrt(D);
    const o = new Float32Array(heads * T * D);
    const lse = new Float32Array(heads * T);
    if (this.scores.length < n) [this.scores, this.ranks] = [new Float64Array(n), new Int32Array(n)];
    const { scores, ranks } = this;
    const [a0, b0, step] = this.layout === 'interleaved' ? [0, 1, 2] : [0, half, 1];
    const m = this.method;
    this.ensureTable(start + T);
    const { cos, sin } = this;
    const acc = new Float64Array(D);
    for (let h = 0; h < heads; h++)
      for (let t = 0; t < T; t++) {
        const p = start + t;
        const qo = (h * T + t) * D;
        const selected = m.kind !== 'remap' ? 0 : picks ? this.takeFar(picks, t, p) : this.selectFar(q, qo, keys, p, D);
        let max = -Infinity;
        for (let j = 0; j <= p; j++) {
          const d = relativePosition(m, p, j, ranks[j], selected);
          if (Number.isNaN(d) || (visible && !maskAllows(visible, p, j))) {
            scores[j] = -Infinity;
            continue;
          }
          const ko = j * D;
          const to = d * half;
          let s = 0;
          for (let i = 0; i < half; i++) {
            const ia = a0 + i * step;
            const ib = b0 + i * step;
            const qa = q[qo + ia];
            const qb = q[qo + ib];
            const ka = keys[ko + ia];
            const kb = keys[ko + ib];
            s += (qa * ka + qb * kb) * cos[to + i] + (qa * kb - qb * ka) * sin[to + i];
          }
          scores[j] = s * scale;
          if (scores[j] > max) max = scores[j];
        }
        let sum = 0;
        acc.fill(0);
        for (let j = 0; j <= p; j++) {
          if (scores[j] === -Infinity) continue;
          const w = Math.exp(scores[j] - max);
          sum += w;
          const vo = j * D;
          for (let x = 0; x < D; x++) acc[x] += w * values[vo + x];
        }
        for (let x = 0; x < D; x++) o[qo + x] = sum > 0 ? acc[x] / sum : 0;
        lse[h * T + t] = sum > 0 ? max + Math.log(sum) : -Infinity;
      }
    return { heads, queries: T, headDim: D, o, lse };
  }

  /** Remap with picks made elsewhere: ranks[j] = place of far key j among query t's picks (position order). */
  private takeFar(picks: GatheredKeys, t: number, p: number): number {
    const window = (this.method as Extract<PositionMethod, { kind: 'remap' }>).window;
    const { ranks } = this;
    ranks.fill(-1, 0, p + 1);
    const row = picks.indices.subarray(t * picks.width, t * picks.width + picks.count(t));
    let selected = 0;
    let last = -1;
    for (const j of row) {
      if (j < 0 || p - j < window) continue;
      if (j <= last) throw new ShapeError(`far picks of query ${p} are not in increasing position order`);
      ranks[j] = selected++;
      last = j;
    }
    return selected;
  }

  /** Remap: ranks[j] = place of far key j among the top K by q.k (unrotated), in position order, else -1. */
  private selectFar(q: Float32Array, qo: number, keys: Float32Array, p: number, D: number): number {
    const m = this.method as Extract<PositionMethod, { kind: 'remap' }>;
    const far = Math.max(0, p - m.window + 1);
    const { ranks } = this;
    ranks.fill(-1, 0, p + 1);
    if (far === 0) return 0;
    const raw = new Float64Array(far);
    for (let j = 0; j < far; j++) {
      let s = 0;
      for (let x = 0; x < D; x++) s += q[qo + x] * keys[j * D + x];
      raw[j] = s;
    }
    const k = Math.min(m.topk, far);
    // Threshold at the k-th largest score; ties broken towards the most recent keys.
    const order = Array.from({ length: far }, (_, j) => j).sort((x, y) => raw[y] - raw[x] || y - x);
    const chosen = order.slice(0, k).sort((x, y) => x - y);
    chosen.forEach((j, r) => (ranks[j] = r));
    return k;
  }
}
