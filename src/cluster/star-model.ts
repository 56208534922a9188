// A whole model spread over host processes (Star Attention, Acharya et al. 2024, phase 1 and 2 as in
// NVIDIA/Star-Attention; Ring as the exact baseline), seen by the coordinator as a Decoder, so generation
// (sampling, EOS, text streaming) runs unchanged: the prompt's forward is phase 1 on every host at once
// (each encodes its blocks with the anchor prefixed, no communication), and the query host's phase 2 over
// the query tokens; every later forward is one generated token on the query host, whose layers fetch the
// context hosts' states per layer (star-model-host.ts). Every host loads the model and proves it by hash.
// With storage f16 every host's WebGPU decoder keeps its weights and KV in f16 on the device; what travels
// over NATS (the query host's q, the states, Ring's KV shards) stays f32.
import { randomBytes } from 'node:crypto';
import { InputError, ModelMismatchError, UnsupportedError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Decoder } from '../model/forward/decoder-cpu.js';
import type { ModelConfig } from '../model/types.js';
import { emptySplit, type Phase2Split } from '../model/caches/remote-layer.js';
import type { Envelope, Meta } from './codec.js';
import type { Cluster } from './cluster.js';
import { HostWatch } from './star-model-watch.js';
import { hostParts, type ModelRunPlan } from './star-model-layout.js';
import type { ModelStorage } from './star-model-hash.js';

export interface ModelRunOptions {
  /** What every host loads (the same path on each, unless a host was started with its own --model). */
  model: string;
  /** The coordinator's own copy's hash, of the run's storage (modelHash): every host must match it. */
  hash: string;
  /** What every host's decoder keeps weights and KV in (default f32; f16 needs WebGPU hosts). */
  storage?: ModelStorage;
  config: ModelConfig;
  /** A --rope override, applied on every host. */
  rope?: string;
  plan: Omit<ModelRunPlan, 'hosts'>;
  /** Silence of a host (no reply, no heartbeat) that counts as dead. */
  timeoutMs: number;
  /** The longest one request may compute. */
  computeTimeoutMs?: number;
  /** Run on the cluster's first n hosts (default all). */
  hosts?: number;
}

/** What the coordinator prints: per-host phase-1 time, per-layer wait in phase 2, bytes moved. */
export interface ModelRunTimings {
  loadMs: number[];
  phase1Ms: number[];
  /** The query host's wait for the context hosts' states, per layer, summed over the query and all tokens. */
  waitMs: number[];
  /** Forwards in phase 2 (the query chunk, if any, and each generated token). */
  steps: number;
  /** The query host's phase-2 time by component, summed over its layers and forwards (remote-layer.ts). */
  split: Phase2Split;
  /** Bytes each host sent and received for the run (queries, states, ring KV). */
  hostBytes: number[];
  cacheBytes: number[];
}

export class DistributedDecoder implements Decoder {
  private pos = 0;
  private readonly watch: HostWatch;
  readonly timings: ModelRunTimings;
  private readonly queryHost: number;
  /** Each host's plan of its first layer (where its attention runs: `generate --stats`, the tests). */
  readonly hostPlans: string[] = [];

  private constructor(
    readonly config: ModelConfig,
    private readonly cluster: Cluster,
    private readonly run: string,
    private readonly o: ModelRunOptions,
    private readonly plan: ModelRunPlan,
  ) {
    const H = plan.hosts;
    this.watch = new HostWatch(cluster, o.timeoutMs, H);
    this.queryHost = H - 1;
    this.timings = {
      loadMs: new Array(H).fill(0),
      phase1Ms: new Array(H).fill(0),
      waitMs: new Array(config.layers).fill(0),
      steps: 0,
      split: emptySplit(),
      hostBytes: new Array(H).fill(0),
      cacheBytes: new Array(H).fill(0),
    };
  }

  /** Loads the model on every host and checks that each loaded the same one. */
  static async start(cluster: Cluster, o: ModelRunOptions): Promise<DistributedDecoder> {
    const H = o.hosts ?? cluster.hosts.length;
    if (!Number.isInteger(H) || H < 1 || H > cluster.hosts.length)
      throw new InputError(`a run on ${H} hosts of a cluster of ${cluster.hosts.length}`);
    const plan: ModelRunPlan = { ...o.plan, hosts: H };
    hostParts(plan); // the plan's errors before any host loads
    const d = new DistributedDecoder(o.config, cluster, randomBytes(6).toString('hex'), o, plan);
    try {
      const peers = d.hosts.map((h, i) => ({ inbox: h.inbox, who: cluster.describe(i) }));
      const loaded = await d.all((i) => ({
        kind: 'model-load',
        run: d.run,
        model: o.model,
        rope: o.rope,
        storage: o.storage ?? 'f32',
        plan,
        index: i,
        peers,
        timeoutMs: o.computeTimeoutMs ?? 3_600_000,
      }));
      loaded.forEach((e, i) => {
        d.timings.loadMs[i] = Number(e.meta.ms);
        d.hostPlans[i] = String(e.meta.layerPlan);
        const storage = o.storage ?? 'f32';
        if (e.meta.storage !== storage)
          throw new ModelMismatchError(
            `${cluster.describe(i)} keeps its model in ${String(e.meta.storage)} storage (${String(e.meta.why)}), ` +
              `the run asks ${storage}; start every host with --storage ${storage} on WebGPU, or run the same storage`,
            cluster.describe(i),
          );
        if (e.meta.hash !== o.hash)
          throw new ModelMismatchError(
            `${cluster.describe(i)} loaded a different model (${String(e.meta.source)}: hash ` +
              `${String(e.meta.hash).slice(0, 12)}, expected ${o.hash.slice(0, 12)} of ${o.model}); give every host the same model`,
            cluster.describe(i),
          );
      });
      return d;
    } catch (e) {
      d.destroy();
      throw e;
    }
  }

  private get hosts() {
    return this.cluster.hosts.slice(0, this.plan.hosts);
  }

  get position(): number {
    return this.pos;
  }

  get cacheBytes(): number {
    return this.timings.cacheBytes.reduce((a, b) => a + b, 0);
  }

  async forward(tokens: readonly number[]): Promise<Float32Array> {
    if (this.pos === 0) {
      if (tokens.length !== this.plan.promptTokens)
        throw new InputError(
          `the run was planned for a prompt of ${this.plan.promptTokens} tokens, got ${tokens.length}`,
        );
      const replies = await this.all(() => ({ kind: 'model-prefill', run: this.run, ids: [...tokens] }));
      replies.forEach((e, i) => {
        this.timings.phase1Ms[i] = Number(e.meta.phase1Ms);
        this.timings.cacheBytes[i] = Number(e.meta.cacheBytes);
        this.timings.hostBytes[i] = Number(e.meta.bytes);
      });
      const q = replies[this.queryHost];
      if (this.plan.method === 'star' && this.plan.query > 0) this.timings.steps++;
      this.pos = tokens.length;
      return this.logitsOf(q);
    }
    if (tokens.length !== 1)
      throw new UnsupportedError('after the prompt, a run across hosts decodes one token per forward');
    const e = await this.one(this.queryHost, { kind: 'model-step', run: this.run, id: tokens[0] });
    this.timings.steps++;
    this.timings.cacheBytes[this.queryHost] = Number(e.meta.cacheBytes);
    this.timings.hostBytes[this.queryHost] = Number(e.meta.bytes);
    this.pos++;
    return this.logitsOf(e);
  }

  reset(): void {
    throw new UnsupportedError('a run across hosts serves one sequence; start a new run for another');
  }

  /** Frees what the hosts hold for this run (without waiting for a dead one). */
  destroy(): void {
    this.watch.stop();
    for (const [i, h] of this.hosts.entries())
      this.cluster.peer
        .request(h.inbox, { kind: 'model-drop', run: this.run }, {}, 5_000, this.cluster.describe(i))
        .catch(() => {});
  }

  /** The summary lines the coordinator prints. */
  report(): string[] {
    const t = this.timings;
    const ms = (x: number) => x.toFixed(1);
    const steps = Math.max(1, t.steps);
    const wait = t.waitMs.reduce((a, b) => a + b, 0);
    const bytes = t.hostBytes.reduce((a, b) => a + b, 0);
    return [
      `${this.plan.method} on ${t.phase1Ms.length} hosts (storage ${this.o.storage ?? 'f32'}; what travels is f32): ` +
        `load ${t.loadMs.map(ms).join('/')} ms; ` +
        `phase 1 per host ${t.phase1Ms.map(ms).join('/')} ms`,
      `phase 2 (${t.steps} forwards on the query host): wait for the context hosts per layer, ms per forward: ` +
        `${t.waitMs.map((w) => (w / steps).toFixed(2)).join(' ')} (all layers ${ms(wait / steps)})`,
      `bytes moved: ${bytes} (${(bytes / 2 ** 20).toFixed(2)} MiB); KV cache per host ` +
        `${t.cacheBytes.map((b) => (b / 2 ** 20).toFixed(2)).join('/')} MiB`,
      `phase 2 per forward, all layers, ms: ${splitLine(t.split, steps)}`,
    ];
  }

  private logitsOf(e: Envelope): Float32Array {
    const w = e.meta.waitMs as number[];
    w.forEach((x, l) => (this.timings.waitMs[l] = x));
    if (e.meta.split) this.timings.split = e.meta.split as Phase2Split;
    const logits = e.tensors.logits as Tensor | undefined;
    if (!logits) throw new InputError('the query host returned no logits (did it own no tokens?)');
    return logits.data as Float32Array;
  }

  private one(i: number, meta: Meta): Promise<Envelope> {
    const h = this.hosts[i];
    const budgetMs = this.o.computeTimeoutMs ?? 3_600_000;
    return this.watch.guard(
      this.cluster.peer.request(h.inbox, meta, {}, this.o.timeoutMs, this.cluster.describe(i), {
        lastSeen: () => Date.now() - this.watch.silentMs(i),
        budgetMs,
      }),
    );
  }

  private all(build: (i: number) => Meta): Promise<Envelope[]> {
    return Promise.all(this.hosts.map((_, i) => this.one(i, build(i))));
  }
}

/** The query host's phase-2 split per forward (all layers): what it does in order, then a context host's round trip
 * and the part of it that host spent on its own. */
export function splitLine(s: Phase2Split, steps: number): string {
  const f = (x: number) => (x / Math.max(1, steps)).toFixed(2);
  return (
    `q read ${f(s.qReadMs)}, send ${f(s.sendMs)}, own part ${f(s.ownMs)}, wait ${f(s.waitMs)}, merge ${f(s.mergeMs)}; ` +
    `a context host's round trip ${f(s.roundTripMs)}, of it on that host ${f(s.hostMs)}`
  );
}
