// Where a KV cache keeps each position: the first `sinks` positions in their own rows, the others in a ring
// of `ring` rows (StreamingLLM's cache; a dense cache is a ring as long as the run, which never wraps).
// One layout for every backend: the CPU and WebGPU layers (kv-layer-*.ts) and the append kernel
// (kernels/kv-append-wgsl.ts, whose CPU twin is `survivors` + `slot`) place rows by it.
import { ShapeError } from '../../errors.js';

/** A run of `rows` consecutive positions that sit in consecutive rows from `slot`. */
export interface RowRun {
  slot: number;
  rows: number;
}

export class RingLayout {
  /** Rows per key/value head. */
  readonly slots: number;

  constructor(
    readonly sinks: number,
    readonly ring: number,
  ) {
    if (sinks < 0 || ring < 1)
      throw new ShapeError(`a ring cache needs sinks >= 0 and a ring >= 1 (${sinks}, ${ring})`);
    this.slots = sinks + ring;
  }

  /** Every position of a run of `capacity` tokens in its own row. */
  static dense(capacity: number): RingLayout {
    return new RingLayout(0, Math.max(1, capacity));
  }

  slot(p: number): number {
    return p < this.sinks ? p : this.sinks + ((p - this.sinks) % this.ring);
  }

  /** Rows holding a token after `n` tokens. */
  held(n: number): number {
    return Math.min(n, this.slots);
  }

  /** Whether positions [0, end) all sit in row = position (nothing overwritten). */
  inOrder(end: number): boolean {
    return end <= this.slots;
  }

  /** Positions [from, to) as runs of consecutive rows, in position order. */
  runs(from: number, to: number): RowRun[] {
    const out: RowRun[] = [];
    for (let p = from; p < to; ) {
      const s = this.slot(p);
      const rows = p < this.sinks ? Math.min(this.sinks, to) - p : Math.min(to - p, this.slots - s);
      out.push({ slot: s, rows });
      p += rows;
    }
    return out;
  }

  /** What a chunk from `start` attends to once the ring has wrapped: the sinks held, then positions
   * [first, start) from the ring, in position order (the chunk's own keys follow them). */
  past(start: number): { sinks: number; first: number } {
    const sinks = Math.min(start, this.sinks);
    return { sinks, first: Math.max(sinks, start - this.ring) };
  }

  /** The positions of a chunk [start, end) that outlive it (the others are overwritten within it). */
  survivors(start: number, end: number): Array<[number, number]> {
    if (end - start <= this.ring) return [[start, end]];
    const spans: Array<[number, number]> = [];
    if (start < this.sinks) spans.push([start, Math.min(this.sinks, end)]);
    spans.push([Math.max(end - this.ring, Math.min(this.sinks, end)), end]);
    return spans;
  }
}
