// The coordinator's watch over every host of a model run: while it waits on one host (the query host
// decoding, which waits on the context hosts in turn), any host that exits or falls silent (no heartbeat
// for the timeout) fails the wait at once with a HostError naming that host, not the one it waited on.
import { HostError } from '../errors.js';
import type { Cluster } from './cluster.js';
import { ALIVE_SUBJECT } from './heartbeat.js';

export class HostWatch {
  private readonly lastSeen = new Map<string, number>();
  private failure?: HostError;
  private readonly waiting = new Set<(e: HostError) => void>();
  private readonly timer: NodeJS.Timeout;
  private lastTick = Date.now();
  private readonly started = Date.now();
  private readonly unhook: (() => void)[] = [];

  constructor(
    private readonly cluster: Cluster,
    private readonly timeoutMs: number,
    /** Watch the cluster's first n hosts. */
    private readonly count = cluster.hosts.length,
  ) {
    const prefix = `${ALIVE_SUBJECT}.`;
    const sub = cluster.peer.nc.subscribe(`${ALIVE_SUBJECT}.*`, {
      callback: (err, msg) => {
        if (!err) this.lastSeen.set(msg.subject.slice(prefix.length), Date.now());
      },
    });
    this.unhook.push(() => sub.unsubscribe());
    cluster.hosts.slice(0, this.count).forEach((h, i) => {
      const onExit = (code: number | null, signal: string | null) =>
        this.fail(
          new HostError(
            `${cluster.describe(i)} exited (${signal ?? `code ${code}`}) during the run`,
            cluster.describe(i),
          ),
        );
      h.child?.once('exit', onExit);
      this.unhook.push(() => h.child?.off('exit', onExit));
    });
    const period = Math.max(50, Math.min(1000, timeoutMs / 4));
    this.timer = setInterval(() => this.check(period), period);
    this.timer.unref();
  }

  /** Milliseconds since host i last beat (since the watch started, if never). */
  silentMs(i: number): number {
    return Date.now() - Math.max(this.started, this.lastSeen.get(this.cluster.hosts[i].id) ?? 0);
  }

  /** `work`, failed by the first host that dies or falls silent meanwhile. */
  guard<T>(work: Promise<T>): Promise<T> {
    if (this.failure) {
      work.catch(() => {});
      return Promise.reject(this.failure);
    }
    let onFail!: (e: HostError) => void;
    const failed = new Promise<never>((_, reject) => {
      onFail = reject;
      this.waiting.add(onFail);
    });
    work.catch(() => {});
    return Promise.race([work, failed]).finally(() => this.waiting.delete(onFail));
  }

  stop(): void {
    clearInterval(this.timer);
    this.unhook.forEach((u) => u());
  }

  private check(period: number): void {
    const now = Date.now();
    // A late tick means this process was busy: heartbeats may wait unread, so judge silence on time only.
    const late = now - this.lastTick > 2 * period;
    this.lastTick = now;
    if (late) return;
    this.cluster.hosts.slice(0, this.count).forEach((_, i) => {
      const silent = this.silentMs(i);
      if (silent >= this.timeoutMs)
        this.fail(
          new HostError(
            `${this.cluster.describe(i)} showed no sign of life for ${(silent / 1000).toFixed(1)} s (dead, stopped or ` +
              'cut off); retry the run, or raise --timeout',
            this.cluster.describe(i),
          ),
        );
    });
  }

  private fail(e: HostError): void {
    if (this.failure) return;
    this.failure = e;
    for (const w of this.waiting) w(e);
  }
}
