// A layer whose attention states arrive over the wire: on the query host of a model spread over host
// processes (Star phase 2 and decoding, Ring decoding; src/cluster/star-model*.ts), a context host is the
// attention of the query tokens over that host's KV cache. The query host's layer asks every context
// host at once (one message per host per layer with all heads' queries) and merges their states with its
// own (star-host-layer.ts). Only the query host appends KV: nothing of the chunk's k and v travels.
import type { AttentionState } from '../../spine/state.js';
import type { LayerAttention, LayerChunk, LayerDims } from '../../attention/layer.js';

/** A context host's answer: the state, and how long that host took from the request's arrival to its answer. */
export type RemoteState = AttentionState & { hostMs?: number };

/** How states of one context host are fetched (the cluster implements it over NATS). */
export interface StateChannel {
  /** Who answers, for messages ("host 0 (local-ab12-0, pid 123 on box)"). */
  readonly who: string;
  /** The state of q [heads, tokens, headDim] (f32, head-major) over everything that host holds in `layer`. */
  attend(layer: number, q: Float32Array, tokens: number, start: number): Promise<RemoteState>;
}

/**
 * Where a query host's phase-2 time goes, ms summed over its forwards (one layer, or all): what it does itself
 * in order (read q back, send it, its own part, the wait for the context hosts left after it, the merge) and,
 * beside, each context host's round trip and the part of it that host spent on its own (arrival to answer),
 * averaged over the context hosts. Round trip minus host time is the wire (encoding, NATS, decoding).
 */
export interface Phase2Split {
  /** Forwards of the layer in phase 2. */
  steps: number;
  /** q read back from the device (WebGPU; 0 on the CPU). */
  qReadMs: number;
  /** Encoding and publishing q to every context host. */
  sendMs: number;
  /** The host's own state over its rows (on WebGPU: encoded and read back). */
  ownMs: number;
  /** The wait for the context hosts left after its own part. */
  waitMs: number;
  /** The spine's merge of the states and the result written back. */
  mergeMs: number;
  /** Request to answer, averaged over the context hosts. */
  roundTripMs: number;
  /** A context host's time from the request's arrival to its answer, averaged over the context hosts. */
  hostMs: number;
}

export const emptySplit = (): Phase2Split => ({
  steps: 0,
  qReadMs: 0,
  sendMs: 0,
  ownMs: 0,
  waitMs: 0,
  mergeMs: 0,
  roundTripMs: 0,
  hostMs: 0,
});

/** The sum of splits (layers of one host). */
export function addSplits(splits: Phase2Split[]): Phase2Split {
  const out = emptySplit();
  for (const s of splits) for (const k of Object.keys(out) as (keyof Phase2Split)[]) out[k] += s[k];
  return out;
}

/** A query host layer's split, the context hosts' round trips and host times averaged into it. */
export function layerSplit(own: Omit<Phase2Split, 'roundTripMs' | 'hostMs'>, remotes: RemoteLayer[]): Phase2Split {
  const n = Math.max(1, remotes.length);
  return {
    ...own,
    roundTripMs: remotes.reduce((a, r) => a + r.roundTripMs, 0) / n,
    hostMs: remotes.reduce((a, r) => a + r.hostMs, 0) / n,
  };
}

export class RemoteLayer implements LayerAttention<Float32Array> {
  readonly spec: string;
  readonly cacheBytes = 0;
  /** Request to answer, ms, summed over the requests. */
  roundTripMs = 0;
  /** That host's own time from each request's arrival to its answer, ms, summed. */
  hostMs = 0;
  /** Bytes sent (queries) and received (states). */
  bytes = 0;

  constructor(
    readonly layer: number,
    private readonly dims: LayerDims,
    private readonly channel: StateChannel,
  ) {
    this.spec = `remote:${channel.who}`;
  }

  get plan(): string {
    return `states of ${this.channel.who} over its KV cache, fetched per layer`;
  }

  /** The chunk's queries over that host's cache. */
  state(c: LayerChunk<Float32Array>): Promise<AttentionState> {
    return this.stateOf(c.q, c.tokens, c.start);
  }

  /** The state of q [heads, tokens, D] (f32) at positions from `start` over that host's cache. */
  async stateOf(q: Float32Array, tokens: number, start: number): Promise<AttentionState> {
    const { heads, headDim: D } = this.dims;
    const n = heads * tokens * D;
    const t0 = performance.now();
    const s = await this.channel.attend(this.layer, q.subarray(0, n), tokens, start);
    this.roundTripMs += performance.now() - t0;
    this.hostMs += s.hostMs ?? 0;
    this.bytes += 4 * (n + s.o.length + s.lse.length);
    return s;
  }

  async forward(c: LayerChunk<Float32Array>): Promise<void> {
    c.out.set((await this.state(c)).o);
  }

  reset(): void {
    this.roundTripMs = 0;
    this.hostMs = 0;
    this.bytes = 0;
  }

  destroy(): void {}
}
