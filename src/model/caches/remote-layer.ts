// A layer whose attention states arrive over the wire: on the query host of a model spread over host
// processes (Star phase 2 and decoding, Ring decoding; src/cluster/star-model*.ts), a context host is the
// attention of the query tokens over that host's KV cache. The query host's layer asks every context
// host at once (one message per host per layer with all heads' queries) and merges their states with its
// own (star-host-layer.ts). Only the query host appends KV: nothing of the chunk's k and v travels.
import type { AttentionState } from '../../spine/state.js';
import type { LayerAttention, LayerChunk, LayerDims } from '../../attention/layer.js';

/** How states of one context host are fetched (the cluster implements it over NATS). */
export interface StateChannel {
  /** Who answers, for messages ("host 0 (local-ab12-0, pid 123 on box)"). */
  readonly who: string;
  /** The state of q [heads, tokens, headDim] (f32, head-major) over everything that host holds in `layer`. */
  attend(layer: number, q: Float32Array, tokens: number, start: number): Promise<AttentionState>;
}

export class RemoteLayer implements LayerAttention<Float32Array> {
  readonly spec: string;
  readonly cacheBytes = 0;
  /** Time spent waiting for this host's states, ms (the per-layer wait of phase 2). */
  waitMs = 0;
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
    this.waitMs += performance.now() - t0;
    this.bytes += 4 * (n + s.o.length + s.lse.length);
    return s;
  }

  async forward(c: LayerChunk<Float32Array>): Promise<void> {
    c.out.set((await this.state(c)).o);
  }

  reset(): void {
    this.waitMs = 0;
    this.bytes = 0;
  }

  destroy(): void {}
}
