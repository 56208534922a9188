// The coordinator of a distributed run: a NATS server (its own on loopback, or the user's), H hosts (spawned
// here as `longctx host` processes, or found on the user's server), and Star or Ring attention over them.
// Hosts get only their slices; every request has a timeout, and a host that dies is named in a HostError.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { HostError, InputError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { BackendName } from '../runtime/device.js';
import { attentionShape, type AttentionOptions, type AttentionShape } from '../spine/problem.js';
import { parseMethodSpec, type MethodSpec } from '../attention/spec.js';
import { emptyState, type AttentionState } from '../spine/state.js';
import { placeState, rowsAt, sliceTokens } from '../attention/shards.js';
import { starLayout, starParams } from '../attention/star.js';
import { ringQueryRows, ringShards } from '../attention/ring.js';
import { stateFrom, type Envelope, type Meta } from './codec.js';
import type { SyntheticTensor } from './synthetic.js';
import { startNatsServer, waitExit, type NatsServer } from './nats-server.js';
import { onShutdown } from './shutdown.js';
import { Peer } from './transport.js';
import { discover } from './discover.js';
import { ALIVE_SUBJECT, startHeartbeat, type Heartbeat } from './heartbeat.js';

export interface ClusterOptions {
  hosts: number;
  /** A running server with hosts already connected; default: start one and spawn the hosts. */
  nats?: string;
  token?: string;
  /** Backend of spawned hosts. */
  backend?: BackendName;
  /** Storage of spawned hosts' model decoders (`longctx host --storage`; default: each run's). */
  storage?: 'f32' | 'f16';
  /** Address the started server listens on (default 127.0.0.1: nothing beyond loopback). */
  listen?: string;
  /** Silence from a host (no reply, no heartbeat) that counts as dead (default 30 s). */
  timeoutMs?: number;
  /** The whole of one request, compute included (default 1 hour). */
  computeTimeoutMs?: number;
  /** For hosts to appear (default 30 s). */
  startTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface HostInfo {
  id: string;
  inbox: string;
  backend: string;
  device: string;
  pid: number;
  machine: string;
  child?: ChildProcess;
}

export interface DistributedTimings {
  loadMs: number;
  /** Wall time of the compute phase (Star phase 1, or the whole ring), from request to the last reply. */
  phase1Ms: number;
  /** Each host's own compute time of that phase. */
  hostMs: number[];
  /** Star phase 2 wall time (0 for Ring). */
  phase2Ms: number;
  fetchMs: number;
}

export interface DistributedResult {
  /** With no query rows when the run was asked not to fetch results (benchmarks). */
  state: AttentionState;
  timings: DistributedTimings;
}

/** The inputs of a run: real tensors, or descriptions that hosts generate slices of (see synthetic.ts). */
export type RunInputs =
  | { kind: 'tensors'; q: Tensor; k: Tensor; v: Tensor }
  | { kind: 'synthetic'; q: SyntheticTensor; k: SyntheticTensor; v: SyntheticTensor };

/** What a host receives: named token ranges of q, k or v. */
type Part = [name: string, source: 'q' | 'k' | 'v', start: number, end: number];

function shapeOf(x: RunInputs, opts: AttentionOptions): AttentionShape {
  if (x.kind === 'tensors') return attentionShape(x.q, x.k, x.v, opts);
  return {
    heads: x.q.heads,
    kvHeads: x.k.heads,
    queries: x.q.tokens,
    keys: x.k.tokens,
    headDim: x.q.dim,
    causal: opts.causal ?? true,
    scale: opts.scale ?? 1 / Math.sqrt(x.q.dim),
  };
}

/** A load request: the parts as tensors, or as ranges for the host to generate. */
function loadOf(x: RunInputs, meta: Meta, parts: Part[]): [Meta, Record<string, Tensor>] {
  if (x.kind === 'synthetic') return [{ ...meta, synthetic: { q: x.q, k: x.k, v: x.v }, parts }, {}];
  const tensors: Record<string, Tensor> = {};
  for (const [name, source, start, end] of parts) tensors[name] = sliceTokens(x[source], start, end);
  return [meta, tensors];
}

const cliMain = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export class Cluster {
  private closed = false;
  /** Host id -> Date.now() of its last heartbeat. */
  private readonly lastSeen = new Map<string, number>();
  private constructor(
    readonly peer: Peer,
    readonly hosts: HostInfo[],
    private readonly server: NatsServer | undefined,
    private readonly timeoutMs: number,
    private readonly computeTimeoutMs: number,
    private readonly removeHook: () => void,
    /** This coordinator's own heartbeat, which claimed hosts watch (a user-started host exits on its silence). */
    private readonly heartbeat: Heartbeat,
    private readonly id: string,
  ) {
    const prefix = `${ALIVE_SUBJECT}.`;
    peer.nc.subscribe(`${ALIVE_SUBJECT}.*`, {
      callback: (err, msg) => {
        if (!err) this.lastSeen.set(msg.subject.slice(prefix.length), Date.now());
      },
    });
  }

  static async start(o: ClusterOptions): Promise<Cluster> {
    if (!Number.isInteger(o.hosts) || o.hosts < 1)
      throw new InputError(`--hosts must be a positive integer, got ${o.hosts}`);
    const server = o.nats ? undefined : await startNatsServer({ listen: o.listen });
    const url = o.nats ?? server!.url;
    const token = o.token ?? server?.token ?? process.env.LONGCTX_NATS_TOKEN ?? '';
    const children: ChildProcess[] = [];
    const removeHook = onShutdown(() => children.forEach((c) => c.kill('SIGKILL')));
    const self = `coord-${randomBytes(4).toString('hex')}`;
    let heartbeat: Heartbeat | undefined;
    let connected: Peer | undefined;
    try {
      const peer = await Peer.connect({ url, token, name: self });
      connected = peer;
      heartbeat = await startHeartbeat({ url, token, id: self, intervalMs: 500 });
      const tag = randomBytes(3).toString('hex');
      const logs = new Map<string, string>();
      if (!o.nats) {
        for (let i = 0; i < o.hosts; i++) {
          const id = `local-${tag}-${i}`;
          // Its stdin is a pipe from this process: when this process dies (even by SIGKILL), the host sees
          // the pipe close and exits. Dawn's warnings stay in the host's log (no filtering child).
          const child = spawn(
            process.execPath,
            [
              ...[cliMain, 'host', '--nats', url, '--backend', o.backend ?? 'cpu', '--id', id, '--exit-with-stdin'],
              ...(o.storage ? ['--storage', o.storage] : []),
            ],
            {
              env: { ...process.env, LONGCTX_NATS_TOKEN: token, LONGCTX_DAWN_WARNINGS: '1' },
              stdio: ['pipe', 'ignore', 'pipe'],
            },
          );
          logs.set(id, '');
          child.stderr!.setEncoding('utf8');
          child.stderr!.on('data', (t: string) => logs.set(id, (logs.get(id)! + t).slice(-2000)));
          child.on('exit', (code, signal) =>
            peer.failRequests(
              (who) => who.includes(id),
              (who) =>
                new HostError(
                  `${who} exited (${signal ?? `code ${code}`}) during the run` +
                    `${logs.get(id) ? `: ${logs.get(id)!.trim().split('\n').pop()}` : ''}; retry the run`,
                  who,
                ),
            ),
          );
          children.push(child);
        }
      }
      const hosts = await discover(peer, o.hosts, o.nats ? undefined : tag, children, logs, o.startTimeoutMs ?? 30_000);
      hosts.forEach((h) => (h.child = children.find((c) => c.pid === h.pid)));
      o.log?.(`hosts: ${hosts.map((h) => `${h.id} (${h.device})`).join(', ')} via ${url}`);
      const timeoutMs = o.timeoutMs ?? 30_000;
      const stop = () => (removeHook(), children.forEach((c) => c.kill('SIGTERM')));
      const c = new Cluster(peer, hosts, server, timeoutMs, o.computeTimeoutMs ?? 3_600_000, stop, heartbeat, self);
      // Claimed hosts watch this coordinator's heartbeat: its silence for the same --timeout ends them.
      await c.all('claim', () => ({ coordinator: self, timeoutMs }));
      return c;
    } catch (e) {
      await heartbeat?.stop();
      await connected?.close().catch(() => {});
      children.forEach((c) => c.kill('SIGKILL'));
      removeHook();
      await server?.stop();
      throw e;
    }
  }

  /** `host i (id, pid)`: how errors name a host. */
  describe(i: number): string {
    const h = this.hosts[i];
    return `host ${i} (${h.id}, pid ${h.pid} on ${h.machine})`;
  }

  /** One attention call, `star:...` or `ring:...`, over this cluster's hosts. */
  async attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    method: MethodSpec | string,
    opts: AttentionOptions = {},
  ): Promise<DistributedResult> {
    return this.run({ kind: 'tensors', q, k, v }, method, opts);
  }

  /** A run on any inputs; `fetch: false` leaves the results on the hosts (benchmarks at 128K). */
  async run(
    x: RunInputs,
    method: MethodSpec | string,
    opts: AttentionOptions = {},
    fetch = true,
  ): Promise<DistributedResult> {
    const spec = typeof method === 'string' ? parseMethodSpec(method) : method;
    const H = this.hosts.length;
    if (spec.params.hosts !== undefined && Number(spec.params.hosts) !== H) {
      throw new InputError(`${spec.name}: hosts=${spec.params.hosts} in the method, but the run has ${H} hosts`);
    }
    const withHosts: MethodSpec = { name: spec.name, params: { ...spec.params, hosts: String(H) } };
    const run = randomBytes(6).toString('hex');
    const drop = () => this.all('drop', () => ({ run }), Math.min(5_000, this.timeoutMs)).catch(() => {});
    try {
      let result: DistributedResult;
      if (spec.name === 'star') result = await this.star(run, x, withHosts, opts, fetch);
      else if (spec.name === 'ring') result = await this.ring(run, x, opts, fetch);
      else throw new InputError(`method '${spec.name}' does not run across hosts; use star:... or ring:...`);
      await drop();
      return result;
    } catch (e) {
      void drop(); // frees what live hosts hold, without making the error wait for a dead one
      throw e;
    }
  }

  private async star(
    run: string,
    x: RunInputs,
    spec: MethodSpec,
    opts: AttentionOptions,
    fetch: boolean,
  ): Promise<DistributedResult> {
    const s = shapeOf(x, opts);
    if (!s.causal) throw new InputError('star attention is causal; drop --no-causal');
    const p = starParams(spec);
    const layout = starLayout(p, s.keys);
    const H = this.hosts.length;
    const qRows = rowsAt(s.queries, s.keys, layout.query);
    const [c0, c1] = layout.query;
    const t0 = performance.now();
    await this.all('load', (i) => {
      const [start, end] = layout.hosts[i];
      const [r0, r1] = rowsAt(s.queries, s.keys, layout.hosts[i]);
      const parts: Part[] = [
        ['q', 'q', r0, r1],
        ['k', 'k', start, end],
        ['v', 'v', start, end],
        ['qq', 'q', qRows[0], qRows[1]],
      ];
      if (start > 0 && p.anchor > 0) parts.push(['anchorK', 'k', 0, p.anchor], ['anchorV', 'v', 0, p.anchor]);
      if (i === H - 1) parts.push(['kq', 'k', c0, c1], ['vq', 'v', c0, c1]);
      return loadOf(
        x,
        {
          run,
          index: i,
          hosts: H,
          start,
          block: p.block,
          anchor: p.anchor,
          scale: s.scale,
          queryHost: this.hosts[H - 1].inbox,
          peers: this.hosts.map((h) => h.id),
          timeoutMs: this.computeTimeoutMs,
        },
        parts,
      );
    });
    const t1 = performance.now();
    const phase1 = await this.all('star1', () => ({ run }));
    const t2 = performance.now();
    await this.all('star2', () => ({ run }));
    const t3 = performance.now();
    const out = emptyState(s.heads, fetch ? s.queries : 0, s.headDim);
    if (fetch) {
      const fetched = await this.all('fetch', () => ({ run }));
      fetched.forEach((e, i) =>
        placeState(out, stateFrom(e.tensors, 'phase1'), rowsAt(s.queries, s.keys, layout.hosts[i])[0]),
      );
      placeState(out, stateFrom(fetched[H - 1].tensors, 'query'), qRows[0]);
    }
    const timings = {
      loadMs: t1 - t0,
      phase1Ms: t2 - t1,
      hostMs: phase1.map((e) => Number(e.meta.ms)),
      phase2Ms: t3 - t2,
      fetchMs: performance.now() - t3,
    };
    return { state: out, timings };
  }

  private async ring(run: string, x: RunInputs, opts: AttentionOptions, fetch: boolean): Promise<DistributedResult> {
    const s = shapeOf(x, opts);
    const H = this.hosts.length;
    const shards = ringShards(s.keys, H);
    const rows = this.hosts.map((_, i) => ringQueryRows(s.queries, s.keys, H, i, s.causal));
    const t0 = performance.now();
    await this.all('load', (i) =>
      loadOf(
        x,
        {
          run,
          index: i,
          hosts: H,
          shards,
          queryEnd: shards[i][1],
          causal: s.causal,
          scale: s.scale,
          peers: this.hosts.map((h) => h.inbox),
          timeoutMs: this.computeTimeoutMs,
        },
        [
          ['q', 'q', rows[i][0], rows[i][1]],
          ['k', 'k', shards[i][0], shards[i][1]],
          ['v', 'v', shards[i][0], shards[i][1]],
        ],
      ),
    );
    const t1 = performance.now();
    const phase = await this.all('ring', () => ({ run }));
    const t2 = performance.now();
    const out = emptyState(s.heads, fetch ? s.queries : 0, s.headDim);
    if (fetch) {
      const fetched = await this.all('fetch', () => ({ run }));
      fetched.forEach((e, i) => {
        if ((e.meta.states as string[]).includes('ring')) placeState(out, stateFrom(e.tensors, 'ring'), rows[i][0]);
      });
    }
    return {
      state: out,
      timings: {
        loadMs: t1 - t0,
        phase1Ms: t2 - t1,
        hostMs: phase.map((e) => Number(e.meta.ms)),
        phase2Ms: 0,
        fetchMs: performance.now() - t2,
      },
    };
  }

  /** The same request to every host at once; the first failure (or timeout) rejects, naming its host. */
  private all(
    kind: string,
    build: (i: number) => Meta | [Meta, Record<string, Tensor>],
    timeoutMs = this.timeoutMs,
  ): Promise<Envelope[]> {
    return Promise.all(
      this.hosts.map((h, i) => {
        const b = build(i);
        const [meta, tensors] = Array.isArray(b) ? b : [b, {}];
        const c = h.child;
        if (c && (c.exitCode !== null || c.signalCode !== null)) {
          return Promise.reject(
            new HostError(
              `${this.describe(i)} has exited (${c.signalCode ?? `code ${c.exitCode}`}); start a new run`,
              this.describe(i),
            ),
          );
        }
        return this.peer.request(h.inbox, { ...meta, kind }, tensors, timeoutMs, this.describe(i), {
          lastSeen: () => this.lastSeen.get(h.id) ?? 0,
          budgetMs: this.computeTimeoutMs,
        });
      }),
    );
  }

  /** Stops spawned hosts and the server this cluster started (not the user's). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.removeHook();
    // Let claimed hosts go, so that a user-started host does not take this coordinator's end for its death.
    await Promise.all(this.hosts.map((h) => this.peer.send(h.inbox, { kind: 'release', coordinator: this.id }))).catch(
      () => {},
    );
    await this.heartbeat.stop();
    await this.peer.close().catch(() => {});
    await Promise.all(
      this.hosts.map((h) => (h.child ? waitExit(h.child, 5_000).catch(() => h.child!.kill('SIGKILL')) : undefined)),
    );
    await this.server?.stop();
  }
}
