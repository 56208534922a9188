// A host's heartbeat: a worker thread with its own NATS connection that publishes on longctx.alive.<id>
// every interval. It runs beside the host's main thread, so a host that is busy computing (a CPU kernel
// blocks its event loop for seconds) still shows signs of life; a process that is dead, stopped or cut off
// goes silent. The coordinator's --timeout is silence, not compute time (see Cluster).
// With `parentPid` the same thread is the host's parent-death watch: when the process is re-parented (its
// coordinator died, even by SIGKILL) it kills the process at once, although the main thread may be deep in
// a kernel and deaf to its stdin closing.
// The same thread watches the coordinators that claimed this host (their own heartbeats): a user-started host
// (`longctx host --nats URL`) is no child of its coordinator, so silence is the only news of its death. The
// main thread is told and exits with a HostError; if it is too busy to, the thread writes the line and ends
// the process itself.
import { writeSync } from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { connect, type Subscription } from 'nats';
import { SUBJECT_PREFIX } from './transport.js';

export const ALIVE_SUBJECT = `${SUBJECT_PREFIX}.alive`;

interface HeartbeatData {
  url: string;
  token: string;
  id: string;
  intervalMs: number;
  /** Die when the parent process is no longer this one. */
  parentPid?: number;
}

/** A silent coordinator, as the watch reports it to the main thread. */
export interface LostCoordinator {
  id: string;
  silentMs: number;
}

export interface Heartbeat {
  /** Watches coordinator `id`'s heartbeat: silence of `timeoutMs` calls the onLost handler. */
  watch(id: string, timeoutMs: number): void;
  /** Stops watching `id` (it let this host go). */
  release(id: string): void;
  onLost: (lost: LostCoordinator) => void;
  stop(): Promise<void>;
}

/** Grace the main thread gets to exit on its own before the watch ends the process. */
const EXIT_GRACE_MS = 3_000;

/** The line a host prints when its coordinator went silent (the CLI's typed-error format). */
export function lostCoordinatorMessage(l: LostCoordinator): string {
  return (
    `coordinator ${l.id} showed no sign of life for ${(l.silentMs / 1000).toFixed(1)} s (killed, stopped or ` +
    'cut off); this host stops, start it again for the next run'
  );
}

/**
 * Starts the heartbeat of `id` and resolves once it beats (at most `readyTimeoutMs`), so that a host is
 * never discovered before it can show signs of life. It never keeps the process alive.
 */
export async function startHeartbeat(o: HeartbeatData, readyTimeoutMs = 15_000): Promise<Heartbeat> {
  const worker = new Worker(new URL(import.meta.url), { workerData: o });
  worker.on('error', () => {}); // a lost heartbeat shows as silence at the coordinator
  worker.unref();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, readyTimeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    worker.once('message', done);
    worker.once('exit', done);
  });
  const beat: Heartbeat = {
    watch: (id, timeoutMs) => worker.postMessage({ watch: id, timeoutMs }),
    release: (id) => worker.postMessage({ release: id }),
    onLost: () => {},
    stop: async () => {
      await worker.terminate();
    },
  };
  worker.on('message', (m: { lost?: string; silentMs?: number }) => {
    if (m.lost !== undefined) beat.onLost({ id: m.lost, silentMs: m.silentMs ?? 0 });
  });
  return beat;
}

function watchParent(parentPid: number): void {
  setInterval(() => {
    if (process.ppid !== parentPid) process.kill(process.pid, 'SIGKILL');
  }, 200);
}

async function beat(o: HeartbeatData): Promise<void> {
  if (o.parentPid !== undefined) watchParent(o.parentPid);
  const nc = await connect({ servers: o.url, token: o.token, name: `alive.${o.id}`, reconnect: false });
  const subject = `${ALIVE_SUBJECT}.${o.id}`;
  const empty = new Uint8Array(0);
  setInterval(() => {
    if (!nc.isClosed()) nc.publish(subject, empty);
  }, o.intervalMs);
  nc.publish(subject, empty);
  await nc.flush();
  parentPort!.postMessage('ready');
  watchCoordinators(nc);
  await nc.closed();
}

interface Watched {
  last: number;
  timeoutMs: number;
  sub: Subscription;
}

function watchCoordinators(nc: Awaited<ReturnType<typeof connect>>): void {
  const watched = new Map<string, Watched>();
  parentPort!.on('message', (m: { watch?: string; release?: string; timeoutMs?: number }) => {
    if (m.watch !== undefined && !watched.has(m.watch)) {
      const id = m.watch;
      const sub = nc.subscribe(`${ALIVE_SUBJECT}.${id}`, {
        callback: () => {
          const w = watched.get(id);
          if (w) w.last = Date.now();
        },
      });
      watched.set(id, { last: Date.now(), timeoutMs: m.timeoutMs ?? 30_000, sub });
    }
    if (m.release !== undefined) {
      watched.get(m.release)?.sub.unsubscribe();
      watched.delete(m.release);
    }
  });
  const period = 200;
  let lastTick = Date.now();
  setInterval(() => {
    const now = Date.now();
    // A late tick means this process was stopped (SIGSTOP) or starved: the coordinator's beats may wait unread,
    // so silence is counted afresh from now.
    const late = now - lastTick > 4 * period;
    lastTick = now;
    for (const [id, w] of watched) {
      if (late) w.last = now;
      const silentMs = now - w.last;
      if (silentMs < w.timeoutMs) continue;
      w.sub.unsubscribe();
      watched.delete(id);
      parentPort!.postMessage({ lost: id, silentMs });
      setTimeout(() => {
        writeSync(2, `longctx: HostError: ${lostCoordinatorMessage({ id, silentMs })}\n`);
        process.kill(process.pid, 'SIGKILL');
      }, EXIT_GRACE_MS);
    }
  }, period);
}

if (!isMainThread && parentPort && (workerData as HeartbeatData | undefined)?.id)
  beat(workerData as HeartbeatData).catch(() => process.exit(0));
