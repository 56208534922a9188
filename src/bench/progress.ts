// Progress bar for long benchmark runs, drawn on stderr (never stdout, which carries results).
// Rewrites one line in place on a TTY; prints one line per tick otherwise so CI logs stay readable.

export class ProgressBar {
  private count = 0;
  private lastLen = 0;

  constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly width = 20,
  ) {}

  private line(detail?: string): string {
    const frac = this.total > 0 ? Math.min(this.count / this.total, 1) : 1;
    const filled = Math.round(frac * this.width);
    const bar = '#'.repeat(filled) + '-'.repeat(this.width - filled);
    return `${this.label} [${bar}] ${this.count}/${this.total}${detail ? ' ' + detail : ''}`;
  }

  tick(detail?: string): void {
    this.count++;
    const s = this.line(detail);
    if (this.stream.isTTY) {
      this.stream.write('\r' + s + ' '.repeat(Math.max(0, this.lastLen - s.length)));
      this.lastLen = s.length;
    } else {
      this.stream.write(s + '\n');
    }
  }

  done(): void {
    if (this.stream.isTTY && this.lastLen > 0) this.stream.write('\n');
    this.lastLen = 0;
  }
}

export interface RateBarOptions {
  /** 'B' shows MiB and MiB/s; any other word counts things ('tokens'). */
  unit?: string;
  stream?: NodeJS.WriteStream;
  /** Milliseconds between redraws on a terminal (default 100) and between lines otherwise (default 2000). */
  ttyIntervalMs?: number;
  lineIntervalMs?: number;
  now?: () => number;
  width?: number;
}

/** Progress of a long step with its rate and ETA: a bar redrawn in place on a terminal, plain lines otherwise
 * (at most one every two seconds, and always the last). */
export class RateBar {
  private readonly start: number;
  private last = -Infinity;
  private lastLen = 0;
  private current = 0;
  private finished = false;

  constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly o: RateBarOptions = {},
  ) {
    this.start = this.now();
  }

  private now(): number {
    return this.o.now ? this.o.now() : performance.now();
  }

  private get stream(): NodeJS.WriteStream {
    return this.o.stream ?? process.stderr;
  }

  line(): string {
    const seconds = Math.max(1e-9, (this.now() - this.start) / 1000);
    const rate = this.current / seconds;
    const frac = this.total > 0 ? Math.min(this.current / this.total, 1) : 1;
    const width = this.o.width ?? 20;
    const filled = Math.round(frac * width);
    const bytes = this.o.unit === 'B';
    const amount = (n: number) => (bytes ? (n / 2 ** 20).toFixed(1) : String(Math.round(n)));
    const unit = bytes ? 'MiB' : (this.o.unit ?? 'items');
    const eta =
      rate > 0 && this.current < this.total ? ` ETA ${formatSeconds((this.total - this.current) / rate)}` : '';
    return (
      `${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${amount(this.current)}/${amount(this.total)} ${unit}` +
      ` ${bytes ? (rate / 2 ** 20).toFixed(1) : rate.toFixed(1)} ${unit}/s${eta}`
    );
  }

  update(done: number): void {
    if (this.finished) return;
    this.current = done;
    const t = this.now();
    const tty = this.stream.isTTY === true;
    const interval = tty ? (this.o.ttyIntervalMs ?? 100) : (this.o.lineIntervalMs ?? 2000);
    const complete = done >= this.total;
    if (!complete && t - this.last < interval) return;
    this.last = t;
    const s = this.line();
    if (tty) {
      this.stream.write('\r' + s + ' '.repeat(Math.max(0, this.lastLen - s.length)));
      this.lastLen = s.length;
    } else this.stream.write(s + '\n');
    if (complete) this.done();
  }

  done(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.stream.isTTY && this.lastLen > 0) this.stream.write('\n');
  }
}

export function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}
