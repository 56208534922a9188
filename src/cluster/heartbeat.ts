// A host's heartbeat: a worker thread with its own NATS connection that publishes on longctx.alive.<id>
// every interval. It runs beside the host's main thread, so a host that is busy computing (a CPU kernel
// blocks its event loop for seconds) still shows signs of life; a process that is dead, stopped or cut off
// goes silent. The coordinator's --timeout is silence, not compute time (see Cluster).
// With `parentPid` the same thread is the host's parent-death watch: when the process is re-parented (its
// coordinator died, even by SIGKILL) it kills the process at once, although the main thread may be deep in
// a kernel and deaf to its stdin closing.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { connect } from 'nats';
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

/**
 * Starts the heartbeat of host `id` and resolves once it beats (at most `readyTimeoutMs`), so that a host
 * is never discovered before it can show signs of life; the returned stop ends it. It never keeps the
 * process alive.
 */
export async function startHeartbeat(o: HeartbeatData, readyTimeoutMs = 15_000): Promise<() => Promise<void>> {
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
  return async () => {
    await worker.terminate();
  };
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
  await nc.closed();
}

if (!isMainThread && parentPort && (workerData as HeartbeatData | undefined)?.id)
  beat(workerData as HeartbeatData).catch(() => process.exit(0));
