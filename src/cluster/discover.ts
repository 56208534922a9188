// Finding hosts: the coordinator asks on longctx.discover until enough hosts said hello (those it spawned,
// by their tag, or any on a user's server), failing fast when a spawned one exits while starting.
import type { ChildProcess } from 'node:child_process';
import { HostError } from '../errors.js';
import type { HostInfo } from './cluster.js';
import { DISCOVER_SUBJECT } from './host.js';
import type { Peer } from './transport.js';

/** Asks `longctx.discover` until `count` hosts answered (those spawned with `tag`, or any on a user's server). */
export async function discover(
  peer: Peer,
  count: number,
  tag: string | undefined,
  children: ChildProcess[],
  logs: Map<string, string>,
  timeoutMs: number,
): Promise<HostInfo[]> {
  const found = new Map<string, HostInfo>();
  peer.onMessage = (e) => {
    const m = e.meta;
    if (m.kind !== 'hello') return;
    const id = String(m.id);
    if (tag && !id.startsWith(`local-${tag}-`)) return;
    found.set(id, {
      id,
      inbox: String(m.inbox),
      backend: String(m.backend),
      device: String(m.device),
      pid: Number(m.pid),
      machine: String(m.machine),
    });
  };
  const deadline = Date.now() + timeoutMs;
  while (found.size < count) {
    const dead = children.find((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead) {
      const id = [...logs.keys()][children.indexOf(dead)];
      throw new HostError(
        `host ${id} (pid ${dead.pid}) exited while starting: ${(logs.get(id) ?? '').trim().split('\n').pop() ?? ''}`,
        id,
      );
    }
    if (Date.now() > deadline) {
      throw new HostError(
        `only ${found.size} of ${count} hosts answered within ${timeoutMs / 1000} ` +
          `s${tag ? '' : ' (start them with `longctx host --nats URL --token T`)'}`,
        'discovery',
      );
    }
    await sendDiscover(peer);
    await new Promise((r) => setTimeout(r, 200));
  }
  peer.onMessage = () => {};
  const list = [...found.values()].sort((a, b) =>
    tag ? Number(a.id.split('-').pop()) - Number(b.id.split('-').pop()) : a.id.localeCompare(b.id),
  );
  return list.slice(0, count);
}

function sendDiscover(peer: Peer): Promise<void> {
  return peer.send(DISCOVER_SUBJECT, { kind: 'discover', replyTo: peer.inbox });
}
