// One layer of one host of a model spread over host processes (Star Attention, Acharya et al. 2024, and
// Ring attention as its exact baseline; src/cluster/star-model*.ts drives them). The host's decoder runs
// the unchanged forward pass over the tokens this host encodes, at their true positions (RoPE), and this
// layer keeps their KV:
// - Star phase 1 (positions below the context length): a host that does not start at 0 first encodes
//   the anchor (the first A tokens) and then its blocks; each block attends causally to [anchor; itself]
//   (block 0 to itself), as star-mask.ts does in one process. The anchor's copy never serves phase 2.
// - Ring phase 1: the host's shard attends causally to itself and fully to the KV of every earlier host,
//   which arrives per layer over the wire (RingExchange); it sends its own KV to the later hosts.
// - Phase 2 (the query and every generated token, on the query host only): the host's own state over its
//   rows (causal among the new ones) merged, after the context hosts' states (RemoteLayer, in host order),
//   with the spine's merge; only this host appends the new KV.
// Context hosts answer `contextState`: queries from the query host over their rows.
import { ShapeError } from '../../errors.js';
import { tensor } from '../../tensor.js';
import { cpuDevice } from '../../runtime/device.js';
import { flashAttention } from '../../attention/flash.js';
import { and, causal, documents, or, sinkTokens, type MaskNode } from '../../spine/mask.js';
import { emptyState, mergeAll, type AttentionState } from '../../spine/state.js';
import type { LayerAttention, LayerChunk, LayerDims } from '../../attention/layer.js';
import { emptySplit, layerSplit, type Phase2Split, type RemoteLayer } from './remote-layer.js';

/** KV rows of one host for one layer: k and v [kvHeads, tokens, headDim], f32. */
export interface KvShard {
  k: Float32Array;
  v: Float32Array;
  tokens: number;
}

/** How a Ring host's layer meets the other hosts in phase 1. */
export interface RingExchange {
  /** Sends this host's KV of `layer` to every later host. */
  share(layer: number, kv: KvShard): Promise<void>;
  /** The KV of `layer` of every earlier host, in host order. */
  earlier(layer: number): Promise<KvShard[]>;
}

export interface HostLayerPlan {
  method: 'star' | 'ring';
  /** Positions below it are the context (phase 1); from it on the query and generated tokens (phase 2). */
  context: number;
  /** Star: block size and anchor. */
  block: number;
  anchor: number;
  /** Rows of the anchor's copy this host encodes before its blocks (0 on host 0, where it is its own). */
  anchorCopy: number;
  /** Rows this layer holds at most (anchor copy + own context + query and generated tokens on the query host). */
  capacity: number;
  /** The context hosts, in host order: set on the query host only. */
  remotes: RemoteLayer[];
  ring?: RingExchange;
}

export class StarHostLayer implements LayerAttention<Float32Array> {
  readonly spec: string;
  private readonly k: Float32Array;
  private readonly v: Float32Array;
  /** Star block id of each held row (the anchor copy: -1, before every block). */
  private readonly blockIds: Int32Array;
  private length = 0;
  private next = 0;
  /** Where the query host's phase-2 time went (split), ms summed over its forwards. */
  private readonly times = emptySplit();

  constructor(
    readonly layer: number,
    private readonly dims: LayerDims,
    private readonly p: HostLayerPlan,
  ) {
    this.spec = p.method === 'star' ? `star:block=${p.block},anchor=${p.anchor}` : 'ring';
    const n = dims.kvHeads * p.capacity * dims.headDim;
    this.k = new Float32Array(n);
    this.v = new Float32Array(n);
    this.blockIds = new Int32Array(p.capacity);
  }

  /** Rows that serve queries (the anchor copy excluded once phase 1 is done). */
  get cacheBytes(): number {
    const rows = this.next > this.p.context ? this.length - this.p.anchorCopy : this.length;
    return 2 * this.dims.kvHeads * rows * this.dims.headDim * 4;
  }

  get plan(): string {
    const side = this.p.remotes.length ? `query host, merging ${this.p.remotes.length} context hosts` : 'context host';
    return `${this.spec} across hosts (${side}); cache ${this.p.capacity} rows; flash: cpu-tiled`;
  }

  reset(): void {
    this.length = 0;
    this.next = 0;
    Object.assign(this.times, emptySplit());
    this.p.remotes.forEach((r) => r.reset());
  }

  /** Time the query host waited for the context hosts after its own part, ms. */
  get waitMs(): number {
    return this.times.waitMs;
  }

  /** The query host's phase-2 time of this layer by component (remote-layer.ts). */
  get split(): Phase2Split {
    return layerSplit(this.times, this.p.remotes);
  }

  destroy(): void {}

  async forward(c: LayerChunk<Float32Array>): Promise<void> {
    const { start, tokens: T } = c;
    if (start < this.next) throw new ShapeError(`layer ${this.layer}: a chunk at ${start} came after ${this.next}`);
    if (start < this.p.context && start + T > this.p.context)
      throw new ShapeError(
        `layer ${this.layer}: a chunk [${start}, ${start + T}) crosses the context end ${this.p.context}`,
      );
    if (this.length + T > this.p.capacity)
      throw new ShapeError(`layer ${this.layer}: ${this.length} + ${T} rows exceed the host's ${this.p.capacity}`);
    const phase2 = start >= this.p.context;
    if (this.p.method === 'ring' && !phase2 && this.length > 0)
      throw new ShapeError(`layer ${this.layer}: a ring host encodes its shard in one chunk (its KV travels whole)`);
    // Ask the context hosts first: their answers travel while this host computes its own part.
    const t0 = performance.now();
    const remote = phase2 && this.p.remotes.length ? Promise.all(this.p.remotes.map((r) => r.state(c))) : undefined;
    remote?.catch(() => {}); // awaited below, after this host's own part
    const t1 = performance.now();
    const shared = this.p.method === 'ring' && !phase2 ? this.shareChunk(c) : undefined;
    this.append(c);
    let state: AttentionState;
    if (phase2) {
      state = await this.attendRows(c.q, T, this.p.anchorCopy, this.length, { causal: true });
      this.times.steps++;
      this.times.sendMs += t1 - t0;
      this.times.ownMs += performance.now() - t1;
    } else if (this.p.method === 'star')
      state = await this.attendRows(c.q, T, 0, this.length, { mask: this.starMask() });
    else {
      const own = await this.attendRows(c.q, T, 0, this.length, { causal: true });
      const earlier = await this.p.ring!.earlier(this.layer);
      const parts: AttentionState[] = [];
      for (const kv of earlier) parts.push(await this.attendShard(c.q, T, kv));
      state = mergeAll([...parts, own]);
    }
    if (remote) {
      const t2 = performance.now();
      const states = await remote;
      const t3 = performance.now();
      state = mergeAll([...states, state]);
      this.times.waitMs += t3 - t2;
      this.times.mergeMs += performance.now() - t3;
    }
    await shared;
    c.out.set(state.o);
    this.next = start + T;
  }

  /** A context host's answer: queries q [heads, tokens, dim] over every row it serves (all before them). */
  contextState(q: Float32Array, tokens: number): Promise<AttentionState> {
    return this.attendRows(q, tokens, this.p.anchorCopy, this.length, { causal: false });
  }

  private async shareChunk(c: LayerChunk<Float32Array>): Promise<void> {
    const n = this.dims.kvHeads * c.tokens * this.dims.headDim;
    // Copies: the activations are reused by the next layer while the message may still be going out.
    await this.p.ring!.share(this.layer, { k: c.k.slice(0, n), v: c.v.slice(0, n), tokens: c.tokens });
  }

  /** Phase 1's visible set over the held rows: causal, and an anchor row or a row of the query's block. */
  private starMask(): MaskNode {
    const sinks = this.p.anchorCopy > 0 ? this.p.anchorCopy : this.p.anchor;
    return and(causal(), or(sinkTokens(sinks), documents(this.blockIds.subarray(0, this.length))));
  }

  private append(c: LayerChunk<Float32Array>): void {
    const { kvHeads, headDim: D } = this.dims;
    const cap = this.p.capacity;
    const T = c.tokens;
    for (let h = 0; h < kvHeads; h++) {
      this.k.set(c.k.subarray(h * T * D, (h + 1) * T * D), (h * cap + this.length) * D);
      this.v.set(c.v.subarray(h * T * D, (h + 1) * T * D), (h * cap + this.length) * D);
    }
    const copy = c.start < this.p.anchorCopy && this.length < this.p.anchorCopy;
    for (let t = 0; t < T; t++)
      this.blockIds[this.length + t] = copy ? -1 : Math.floor(Math.min(c.start + t, this.p.context) / this.p.block);
    this.length += T;
  }

  /** The state of q [heads, T, D] over held rows [from, to): per KV head one flash call on views of the cache. */
  private attendRows(
    q: Float32Array,
    T: number,
    from: number,
    to: number,
    o: { causal?: boolean; mask?: MaskNode },
  ): Promise<AttentionState> {
    const cap = this.p.capacity;
    const D = this.dims.headDim;
    return this.perGroup(q, T, to - from, (g) => ({
      k: this.k.subarray((g * cap + from) * D, (g * cap + to) * D),
      v: this.v.subarray((g * cap + from) * D, (g * cap + to) * D),
      ...o,
    }));
  }

  private attendShard(q: Float32Array, T: number, kv: KvShard): Promise<AttentionState> {
    const n = kv.tokens * this.dims.headDim;
    return this.perGroup(q, T, kv.tokens, (g) => ({
      k: kv.k.subarray(g * n, (g + 1) * n),
      v: kv.v.subarray(g * n, (g + 1) * n),
      causal: false,
    }));
  }

  private async perGroup(
    q: Float32Array,
    T: number,
    rows: number,
    keys: (g: number) => { k: Float32Array; v: Float32Array; causal?: boolean; mask?: MaskNode },
  ): Promise<AttentionState> {
    const { heads, kvHeads, headDim: D } = this.dims;
    const out = emptyState(heads, T, D);
    if (rows === 0 || T === 0) return out;
    const group = heads / kvHeads;
    for (let g = 0; g < kvHeads; g++) {
      const x = keys(g);
      const s = await flashAttention(
        cpuDevice,
        tensor([group, T, D], 'f32', q.subarray(g * group * T * D, (g + 1) * group * T * D)),
        tensor([1, rows, D], 'f32', x.k),
        tensor([1, rows, D], 'f32', x.v),
        { causal: x.causal ?? true, mask: x.mask },
      );
      out.o.set(s.o, g * group * T * D);
      out.lse.set(s.lse, g * group * T);
    }
    return out;
  }
}
