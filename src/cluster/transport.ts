// One process's end of the NATS transport: an inbox subject, chunked binary messages, requests with
// timeouts that name who did not answer, and a mailbox for messages that peers push (ring KV shards,
// Star partial states) which may arrive before the step that needs them.
import { connect, type NatsConnection } from 'nats';
import { randomBytes } from 'node:crypto';
import * as errors from '../errors.js';
import { HostError, InputError, DeviceError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { chunkMessage, decodeMessage, encodeMessage, Reassembler, type Envelope, type Meta } from './codec.js';

export const SUBJECT_PREFIX = 'longctx';
/** Chunks between flushes: bounds what the client buffers when it sends a large tensor. */
const FLUSH_EVERY = 32;

export interface PeerOptions {
  url: string;
  token: string;
  /** Names this end: its inbox is `longctx.<name>`. */
  name: string;
  connectTimeoutMs?: number;
}

interface Pending {
  who: string;
  resolve(e: Envelope): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** How a request waits when the other end has a heartbeat: silence and compute time are bounded apart. */
export interface Liveness {
  /** When the other end last showed a sign of life (Date.now() milliseconds; 0 if never). */
  lastSeen(): number;
  /** The whole request, compute included, may take at most this long. */
  budgetMs: number;
}

interface Waiter {
  resolve(e: Envelope): void;
}

export class Peer {
  readonly inbox: string;
  readonly maxPayload: number;
  /** Messages that are neither replies nor mailbox deliveries. */
  onMessage: (e: Envelope) => void = () => {};
  private readonly sender = randomBytes(4).readUInt32LE(0);
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly mail = new Map<string, Envelope>();
  private readonly waiters = new Map<string, Waiter>();
  private readonly reassembler = new Reassembler();

  private constructor(
    readonly nc: NatsConnection,
    name: string,
  ) {
    this.inbox = `${SUBJECT_PREFIX}.${name}`;
    this.maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    this.listen(this.inbox, (e) => this.deliver(e));
  }

  static async connect(o: PeerOptions): Promise<Peer> {
    try {
      const nc = await connect({
        servers: o.url,
        token: o.token,
        name: o.name,
        timeout: o.connectTimeoutMs ?? 10_000,
        reconnect: false,
        maxPingOut: 10,
      });
      return new Peer(nc, o.name);
    } catch (e) {
      const err = e as Error & { code?: string };
      if (/AUTHORIZATION|Authorization/.test(`${err.code} ${err.message}`))
        throw new InputError(
          `NATS server ${o.url} refused the token (authorization violation): pass the server's --token`,
        );
      throw new DeviceError(`cannot connect to NATS at ${o.url}: ${err.message}`);
    }
  }

  /** Receives chunked messages on any subject (the inbox, or a broadcast subject). */
  listen(subject: string, handle: (e: Envelope) => void): void {
    this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        const arrivedMs = performance.now();
        try {
          const whole = this.reassembler.add(msg.data);
          if (whole) handle({ ...decodeMessage(whole), arrivedMs });
        } catch (e) {
          process.stderr.write(`longctx: dropped a bad message on ${subject}: ${(e as Error).message}\n`);
        }
      },
    });
  }

  /**
   * Publishes a message; resolves once the server has it (a flush: a PING and its PONG), or with `flush` false at
   * once for a one-chunk message, which the client writes out on its next microtask (a per-layer message of Star's
   * phase 2: waiting for the server's PONG there buys nothing and costs both ends a wake-up per message).
   */
  async send(subject: string, meta: Meta, tensors: Record<string, Tensor> = {}, flush = true): Promise<void> {
    const id = this.nextId++;
    let n = 0;
    for (const chunk of chunkMessage(encodeMessage(meta, tensors), this.maxPayload, this.sender, id)) {
      this.nc.publish(subject, chunk);
      if (++n % FLUSH_EVERY === 0) await this.nc.flush();
    }
    if (flush || n > 1) await this.nc.flush();
  }

  /**
   * Sends and waits for the reply; `who` names the other end in the error if it does not answer. Without
   * `liveness`, `timeoutMs` bounds the whole wait; with it, `timeoutMs` bounds silence (no reply and no
   * heartbeat) and `liveness.budgetMs` the whole wait. `flush` as send's.
   */
  request(
    subject: string,
    meta: Meta,
    tensors: Record<string, Tensor>,
    timeoutMs: number,
    who: string,
    liveness?: Liveness,
    flush = true,
  ): Promise<Envelope> {
    const rid = `${this.sender}-${this.nextId++}`;
    const kind = String(meta.kind);
    return new Promise<Envelope>((resolve, reject) => {
      const start = Date.now();
      const fail = (message: string) => {
        this.pending.delete(rid);
        clearInterval(timer);
        reject(new HostError(message, who));
      };
      const period = Math.max(50, Math.min(1000, timeoutMs / 4));
      let lastTick = start;
      const check = () => {
        const now = Date.now();
        // A late tick means this process was busy (encoding, sending): heartbeats may wait unread in the
        // socket, so judge silence only on a tick that came on time.
        const late = now - lastTick > 2 * period;
        lastTick = now;
        if (late) return;
        const silent = now - Math.max(start, liveness?.lastSeen() ?? 0);
        if (silent >= timeoutMs)
          fail(
            `${who} showed no sign of life for ${(silent / 1000).toFixed(1)} s during '${kind}' (dead, stopped ` +
              `or cut off); retry the run, or raise --timeout`,
          );
        else if (liveness && now - start >= liveness.budgetMs)
          fail(
            `${who} is alive but did not finish '${kind}' within the compute budget of ${(liveness.budgetMs / 1000).toFixed(0)} ` +
              `s; raise --compute-timeout`,
          );
      };
      const timer = setInterval(check, period);
      this.pending.set(rid, { who, resolve, reject, timer });
      this.send(subject, { ...meta, rid, replyTo: this.inbox }, tensors, flush).catch((e: Error) =>
        this.settle(rid, undefined, new DeviceError(`sending '${String(meta.kind)}' to ${who}: ${e.message}`)),
      );
    });
  }

  /** Answers a request; an Error becomes a typed error at the requester. */
  async reply(to: Envelope, meta: Meta | Error, tensors: Record<string, Tensor> = {}, flush = true): Promise<void> {
    const body = meta instanceof Error ? { error: { name: meta.name, message: meta.message } } : meta;
    const reply = { ...body, inReplyTo: to.meta.rid };
    await this.send(String(to.meta.replyTo), reply, meta instanceof Error ? {} : tensors, flush);
  }

  /** Fails every open request whose `who` matches (a host process that exited). */
  failRequests(match: (who: string) => boolean, error: (who: string) => Error): void {
    for (const [rid, p] of this.pending) if (match(p.who)) this.settle(rid, undefined, error(p.who));
  }

  /** Waits for a mailbox delivery with this key (sent with meta.mailbox = key). */
  take(key: string, timeoutMs: number, who: string): Promise<Envelope> {
    const ready = this.mail.get(key);
    if (ready) {
      this.mail.delete(key);
      return Promise.resolve(ready);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(
          new HostError(
            `nothing arrived from ${who} within ${(timeoutMs / 1000).toFixed(1)} s (${key}); is it alive?`,
            who,
          ),
        );
      }, timeoutMs);
      this.waiters.set(key, {
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  /** Drops mailbox entries whose key starts with `prefix` (a finished or failed run). */
  dropMail(prefix: string): void {
    for (const key of this.mail.keys()) if (key.startsWith(prefix)) this.mail.delete(key);
  }

  async close(): Promise<void> {
    for (const [rid] of this.pending) this.settle(rid, undefined, new DeviceError('connection closed'));
    if (!this.nc.isClosed()) await this.nc.close();
  }

  private deliver(e: Envelope): void {
    const rid = e.meta.inReplyTo;
    if (typeof rid === 'string') {
      this.settle(rid, e);
      return;
    }
    const key = e.meta.mailbox;
    if (typeof key === 'string') {
      const w = this.waiters.get(key);
      if (w) {
        this.waiters.delete(key);
        w.resolve(e);
      } else this.mail.set(key, e);
      return;
    }
    this.onMessage(e);
  }

  private settle(rid: string, e?: Envelope, failure?: Error): void {
    const p = this.pending.get(rid);
    if (!p) return;
    this.pending.delete(rid);
    clearInterval(p.timer);
    const remote = e?.meta.error as { name: string; message: string } | undefined;
    if (failure) p.reject(failure);
    else if (remote) p.reject(remoteError(remote, p.who));
    else p.resolve(e!);
  }
}

/** A host's error, rebuilt as its own class where it is one of ours (a ShapeError stays a ShapeError). */
function remoteError(r: { name: string; message: string }, who: string): Error {
  const message = `${who}: ${r.message}`;
  const cls = (errors as Record<string, unknown>)[r.name];
  if (r.name === 'HostError' || typeof cls !== 'function' || r.name === 'OutOfMemoryError')
    return new HostError(message, who);
  return new (cls as new (m: string) => Error)(message);
}
