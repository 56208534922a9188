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
