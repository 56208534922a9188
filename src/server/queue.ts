// Requests served one at a time from a bounded queue: a request beyond its capacity is refused at once (429),
// a queued one waits at most `waitMs` (then 503), and one whose client went away leaves the queue.
import { HttpError } from './http-error.js';

interface Waiter {
  start: () => void;
  fail: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class RequestQueue {
  private running = false;
  private readonly waiting: Waiter[] = [];
  private closed = false;

  constructor(
    /** Requests that may wait while one runs. */
    readonly capacity: number,
    readonly waitMs: number,
  ) {}

  get depth(): number {
    return this.waiting.length + (this.running ? 1 : 0);
  }

  /** Runs work when its turn comes; rejects with 429 when the queue is full, 503 after waiting too long or
   * when the server shuts down; `signal` (the client's disconnect) takes it out of the queue. */
  async run<T>(work: () => Promise<T>, signal: AbortSignal): Promise<T> {
    if (this.closed) throw new HttpError(503, 'the server is shutting down', 'server_error', 'shutting_down');
    if (this.running) {
      if (this.waiting.length >= this.capacity)
        throw new HttpError(
          429,
          `the server is busy: ${this.waiting.length} requests are already waiting (queue of ${this.capacity}); retry later`,
          'rate_limit_error',
          'queue_full',
        );
      // The turn is handed over with `running` still set, so no newcomer slips in between.
      await this.wait(signal);
    } else this.running = true;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next.start();
      else this.running = false;
    }
  }

  private wait(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const leave = (e: Error) => {
        clearTimeout(w.timer);
        signal.removeEventListener('abort', onAbort);
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(e);
      };
      const onAbort = () => leave(new HttpError(499, 'the client closed the request', 'client_closed'));
      const w: Waiter = {
        start: () => {
          clearTimeout(w.timer);
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        fail: leave,
        timer: setTimeout(
          () =>
            leave(
              new HttpError(
                503,
                `waited ${this.waitMs / 1000} s in the queue without being served`,
                'server_error',
                'queue_timeout',
              ),
            ),
          this.waitMs,
        ),
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(w);
    });
  }

  /** Refuses everything waiting (shutdown); what runs finishes or is aborted by its owner. */
  close(): void {
    this.closed = true;
    for (const w of [...this.waiting])
      w.fail(new HttpError(503, 'the server is shutting down', 'server_error', 'shutting_down'));
  }
}
