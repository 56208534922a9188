// Stop strings over streamed text: text is released as soon as it can no longer be the start of a stop
// string, and generation ends at the first stop string, which is not part of the output (OpenAI's rule).
import { InputError } from '../errors.js';

export class StopText {
  private text = '';
  private released = 0;
  private readonly stops: string[];

  constructor(stop: string | readonly string[] | undefined) {
    const list = stop === undefined ? [] : typeof stop === 'string' ? [stop] : [...stop];
    if (list.some((s) => typeof s !== 'string' || s === ''))
      throw new InputError('stop strings must be non-empty strings');
    this.stops = list;
  }

  /** Adds generated text; returns what may be shown now and whether a stop string was reached. */
  push(piece: string): { text: string; stopped: boolean } {
    this.text += piece;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.text.indexOf(s, this.released);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) return { text: this.take(cut), stopped: true };
    return { text: this.take(this.text.length - this.heldBack()), stopped: false };
  }

  /** What was held back when generation ends without a stop string. */
  flush(): string {
    return this.take(this.text.length);
  }

  /** Length of the longest tail that begins some stop string. */
  private heldBack(): number {
    let hold = 0;
    const open = this.text.length - this.released;
    for (const s of this.stops)
      for (let k = Math.min(s.length - 1, open); k > hold; k--)
        if (this.text.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
    return hold;
  }

  private take(end: number): string {
    const out = this.text.slice(this.released, end);
    this.released = Math.max(this.released, end);
    return out;
  }
}
