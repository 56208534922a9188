// A context host: one process with one device, serving Star and Ring steps over NATS. It answers the
// coordinator's requests (load, star1, star2, ring, fetch, drop), sends KV shards to the next host of the
// ring and Star partial states to the query host directly, and exits when its connection closes. A coordinator
// claims it (`claim`) and lets it go (`release`); while claimed it watches the coordinator's heartbeat, and
// silence for the coordinator's --timeout ends the host with a HostError (a killed coordinator tells no one).
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Device } from '../runtime/device.js';
import type { Tensor } from '../tensor.js';
import type { AttentionState } from '../spine/state.js';
import { mergeStarQuery, starPhase1, starPhase2 } from '../attention/star.js';
import { ringAccumulate, ringShardAt, ringStep } from '../attention/ring.js';
import type { TokenRange } from '../attention/shards.js';
import { HostError, InputError } from '../errors.js';
import { stateFrom, stateTensors, type Envelope, type Meta } from './codec.js';
import { Peer, SUBJECT_PREFIX } from './transport.js';
import { syntheticSlice, type SyntheticTensor } from './synthetic.js';
import { lostCoordinatorMessage, startHeartbeat } from './heartbeat.js';

export const DISCOVER_SUBJECT = `${SUBJECT_PREFIX}.discover`;

export interface HostOptions {
  url: string;
  token: string;
  device: Device;
  /** Stable name (default: hostname-pid-random). */
  id?: string;
  log?: (line: string) => void;
  /** Interval of the heartbeat on longctx.alive.<id> (default 500 ms). */
  heartbeatMs?: number;
  /** Kill this process when its parent is no longer this pid (a spawned host dies with its coordinator). */
  parentPid?: number;
}

/** What a request handler of another module gets of the host that serves it. */
export interface HostServices {
  id: string;
  peer: Peer;
  device: Device;
  log(line: string): void;
}

/** A handler's answer; `flush: false` sends it without waiting for the server (transport.ts, Peer.send). */
export type HostRequestHandler = (
  e: Envelope,
  host: HostServices,
) => Promise<{ meta: Meta; tensors?: Record<string, Tensor>; flush?: boolean }>;

/** Requests that other modules serve on every host, by kind (a model spread over hosts: star-model-host.ts). */
export const hostRequestHandlers = new Map<string, HostRequestHandler>();

interface Run {
  meta: Meta;
  tensors: Record<string, Tensor>;
  states: Record<string, AttentionState>;
}

export interface RunningHost {
  id: string;
  peer: Peer;
  /** Resolves when the connection closes (server stopped, or close()); rejects with a HostError when a
   * coordinator that claimed this host went silent. */
  done: Promise<void>;
  close(): Promise<void>;
}

export async function startHost(o: HostOptions): Promise<RunningHost> {
  const id = o.id ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const peer = await Peer.connect({ url: o.url, token: o.token, name: `host.${id}` });
  // Beating before discovery answers: a host the coordinator can find is one it can see alive.
  const heartbeat = await startHeartbeat({
    url: o.url,
    token: o.token,
    id,
    intervalMs: o.heartbeatMs ?? 500,
    parentPid: o.parentPid,
  });
  const runs = new Map<string, Run>();
  const log = o.log ?? (() => {});
  const hello = () => ({
    kind: 'hello',
    id,
    inbox: peer.inbox,
    backend: o.device.backend,
    device: o.device.name,
    pid: process.pid,
    machine: hostname(),
  });

  peer.listen(DISCOVER_SUBJECT, (e) => {
    if (typeof e.meta.replyTo === 'string') peer.send(e.meta.replyTo, hello()).catch(() => {});
  });
  const lost = new Promise<never>((_, reject) => {
    heartbeat.onLost = (l) => {
      void peer.close().catch(() => {});
      reject(new HostError(lostCoordinatorMessage(l), l.id));
    };
  });
  peer.onMessage = (e) => {
    if (e.meta.kind === 'release') return heartbeat.release(String(e.meta.coordinator));
    handle(e)
      .then(
        (answer) => peer.reply(e, answer.meta, answer.tensors, answer.flush ?? true),
        (err: Error) => {
          log(`${String(e.meta.kind)} failed: ${err.message}`);
          return peer.reply(e, err);
        },
      )
      .catch((err: Error) => log(`cannot answer ${String(e.meta.kind)}: ${err.message}`));
  };

  const runOf = (e: Envelope): Run => {
    const r = runs.get(String(e.meta.run));
    if (!r) throw new InputError(`host ${id} has no run '${String(e.meta.run)}' loaded`);
    return r;
  };
  const timed = async <T>(work: () => Promise<T>): Promise<[T, number]> => {
    const t0 = performance.now();
    const out = await work();
    return [out, performance.now() - t0];
  };

  async function handle(e: Envelope): Promise<{ meta: Meta; tensors?: Record<string, Tensor>; flush?: boolean }> {
    const m = e.meta;
    switch (m.kind) {
      case 'load': {
        const tensors = { ...e.tensors };
        const synthetic = m.synthetic as Record<'q' | 'k' | 'v', SyntheticTensor> | undefined;
        if (synthetic)
          for (const [name, source, start, end] of m.parts as Array<[string, 'q' | 'k' | 'v', number, number]>)
            tensors[name] = syntheticSlice(synthetic[source], start, end);
        runs.set(String(m.run), { meta: m, tensors, states: {} });
        return { meta: { ok: true } };
      }
      case 'star1': {
        const r = runOf(e);
        const t = r.tensors;
        const [state, ms] = await timed(() =>
          starPhase1(
            o.device,
            { start: Number(r.meta.start), q: t.q, k: t.k, v: t.v, anchorK: t.anchorK, anchorV: t.anchorV },
            { block: Number(r.meta.block), anchor: Number(r.meta.anchor) },
            { scale: r.meta.scale as number },
          ),
        );
        r.states.phase1 = state;
        return { meta: { ms } };
      }
      case 'star2': {
        const r = runOf(e);
        const t = r.tensors;
        const [index, hosts] = [Number(r.meta.index), Number(r.meta.hosts)];
        const opts = { scale: r.meta.scale as number };
        const [partial, ms] = await timed(() => starPhase2(o.device, t.qq, t.k, t.v, false, opts));
        if (index < hosts - 1) {
          await peer.send(
            String(r.meta.queryHost),
            { mailbox: `${String(m.run)}:star2:${index}` },
            stateTensors('s', partial),
          );
          return { meta: { ms } };
        }
        const [own, ownMs] = await timed(() => starPhase2(o.device, t.qq, t.kq, t.vq, true, opts));
        const others: AttentionState[] = [];
        for (let i = 0; i < hosts - 1; i++) {
          const got = await peer.take(
            `${String(m.run)}:star2:${i}`,
            Number(r.meta.timeoutMs),
            `host ${i} (${(r.meta.peers as string[])[i]})`,
          );
          others.push(stateFrom(got.tensors, 's'));
        }
        r.states.query = mergeStarQuery([...others, partial], own);
        return { meta: { ms: ms + ownMs } };
      }
      case 'ring':
        return { meta: { ms: await ring(runOf(e), String(m.run)) } };
      case 'fetch': {
        const r = runOf(e);
        const tensors = Object.assign(
          {},
          ...Object.entries(r.states).map(([name, s]) => stateTensors(name, s)),
        ) as Record<string, Tensor>;
        return { meta: { states: Object.keys(r.states) }, tensors };
      }
      case 'claim':
        heartbeat.watch(String(m.coordinator), Number(m.timeoutMs) || 30_000);
        log(`claimed by ${String(m.coordinator)} (silence of ${Number(m.timeoutMs) / 1000} s ends this host)`);
        return { meta: { ok: true } };
      case 'drop':
        runs.delete(String(m.run));
        peer.dropMail(`${String(m.run)}:`);
        return { meta: { ok: true } };
      default: {
        const extra = hostRequestHandlers.get(String(m.kind));
        if (extra) return extra(e, { id, peer, device: o.device, log });
        throw new InputError(`host ${id} does not know request '${String(m.kind)}'`);
      }
    }
  }

  /** This host's ring: send its own shard on, then take, forward and attend to each arriving shard. */
  async function ring(r: Run, run: string): Promise<number> {
    const t0 = performance.now();
    const m = r.meta;
    const [h, hosts] = [Number(m.index), Number(m.hosts)];
    const shards = m.shards as TokenRange[];
    const peers = m.peers as string[];
    const next = peers[(h + 1) % hosts];
    const prev = (h - 1 + hosts) % hosts;
    const opts = { causal: Boolean(m.causal), scale: m.scale as number };
    const q = r.tensors.q;
    const queryEnd = Number(m.queryEnd);
    const sends: Promise<void>[] = [];
    if (hosts > 1) sends.push(peer.send(next, { mailbox: `${run}:kv:${h}` }, { k: r.tensors.k, v: r.tensors.v }));
    let acc = ringAccumulate(
      undefined,
      await ringStep(o.device, q, queryEnd, r.tensors.k, r.tensors.v, shards[h], opts),
    );
    for (let step = 1; step < hosts; step++) {
      const j = ringShardAt(h, step, hosts);
      const got = await peer.take(
        `${run}:kv:${j}`,
        Number(m.timeoutMs),
        `host ${prev} (${peers[prev]}), the previous host of the ring`,
      );
      if ((h + 1) % hosts !== j) sends.push(peer.send(next, { mailbox: `${run}:kv:${j}` }, got.tensors));
      acc = ringAccumulate(acc, await ringStep(o.device, q, queryEnd, got.tensors.k, got.tensors.v, shards[j], opts));
    }
    await Promise.all(sends);
    if (acc) r.states.ring = acc;
    return performance.now() - t0;
  }

  const closed = peer.nc.closed().then(() => undefined);
  const done = Promise.race([closed, lost]).finally(() => heartbeat.stop());
  log(`host ${id} on ${o.device.name}, connected to ${o.url}`);
  return { id, peer, done, close: () => peer.close() };
}
