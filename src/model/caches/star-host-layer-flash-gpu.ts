// The WebGPU twin of StarHostLayer for Star (Acharya et al. 2024) and Ring (Liu et al. 2023) as its exact
// baseline (star-host-layer.ts says what each phase attends to): the host's KV rows stay in device buffers and
// every attention over them is flash there (tiled; one query over >= 256 rows split-KV decoding, as the planner
// picks for one process), so only what must travel over NATS crosses to the host: the query host's q, the
// states, and Ring's KV shards. In f16 storage the rows and the uploaded q are f16, the states f32.
// - Rows: the anchor's copy (Star, hosts after the first) in its own buffers, the host's blocks or Ring shard
//   (and, on the query host, the query and generated tokens) in the main ones, [kvHeads, capacity, D] each; a
//   chunk's k and v are appended by buffer copies (head-major rows, nothing to convert).
// - Phase 1 is a list of parts, each one flash into the chunk's output, folded on the GPU by the one merge
//   kernel (kernels/merge-wgsl.ts) when there are several: Star with an anchor copy, the state over the
//   anchor (every row visible) and over the main rows (causal, its own block only: a documents mask of block
//   ids); Star's host 0, one flash under causal AND (sinks OR same block), the mask the CPU layer uses; Ring,
//   the KV shard of every earlier host (arrived over NATS, uploaded, all visible) and its own rows (causal),
//   while its own chunk's k and v are read back and sent to the later hosts.
// - Phase 2 (the query host): its own state over the main rows (causal), read back in one read while the context
//   hosts' answers travel, merged after theirs (RemoteLayer, host order) with the spine's merge, as on the CPU.
// - A context host's answer: q uploaded, flash over its main rows (all visible), o and lse in one read.
import { ShapeError, UnsupportedError } from '../../errors.js';
import { float32ToHalf, halfToFloat32 } from '../../f16.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { CallSites } from '../../runtime/call-sites.js';
import { mergeStatesWgsl, mergeWorkgroups } from '../../kernels/merge-wgsl.js';
import {
  flashCall,
  flashRecorder,
  gpuFlashTarget,
  prepareBlockMask,
  type GpuBlockMask,
} from '../../attention/flash.js';
import { createDecodeScratch, flashDecodeCalls, type DecodeScratch } from '../../attention/flash-decode.js';
import { planFlash } from '../../attention/planner.js';
import { and, causal, documents, or, sinkTokens, type MaskNode } from '../../spine/mask.js';
import { emptyState, mergeAll, type AttentionState } from '../../spine/state.js';
import type { LayerAttention, LayerChunk, LayerDims } from '../../attention/layer.js';
import type { HostLayerPlan, KvShard } from './star-host-layer.js';
import { emptySplit, layerSplit, type Phase2Split } from './remote-layer.js';

interface Rows {
  k: GPUBuffer;
  v: GPUBuffer;
  rows: number;
  stride: number;
}

/** One attention over rows, prepared: what it records into a pass, and the block mask it binds (released after). */
interface Prepared {
  record(pass: GPUComputePassEncoder): void;
  blocks?: GpuBlockMask;
}

export class StarHostFlashGpuLayer implements LayerAttention<GPUBuffer> {
  readonly spec: string;
  /** Where the query host's phase-2 time went (split), ms summed over its forwards. */
  private readonly times = emptySplit();
  private length = 0;
  private anchorRows = 0;
  private next = 0;
  private readonly blockIds: Int32Array;
  private readonly sites: CallSites;
  private readonly answerSites: CallSites;
  /** A context host's answer buffers (q, o, lse), grown to the largest query chunk seen. */
  private answer?: { q: GPUBuffer; o: GPUBuffer; lse: GPUBuffer; tokens: number };
  /** Split-KV decoding's partial states (one query over many rows), made at the first such step. */
  private decodeScratch?: DecodeScratch;
  /** A context host's prepared answer: its rows stay put while the query host decodes, so it is made once. */
  private answerCall?: { x: Prepared; rows: number; tokens: number; on: object };
  /** Attentions prepared as split-KV decoding (the tests check that path ran). */
  splitDecodes = 0;

  private constructor(
    private readonly gpu: GpuContext,
    readonly layer: number,
    private readonly dims: LayerDims,
    private readonly p: HostLayerPlan,
    private readonly main: { k: GPUBuffer; v: GPUBuffer },
    private readonly anchor: { k: GPUBuffer; v: GPUBuffer },
    /** The chunk's own lse, and the states of a phase-1 chunk's parts stacked for the merge (grown to fit). */
    private readonly lse: GPUBuffer,
    private stack: { o: GPUBuffer; lse: GPUBuffer; parts: number },
  ) {
    this.spec = p.method === 'star' ? `star:block=${p.block},anchor=${p.anchor}` : 'ring';
    this.blockIds = new Int32Array(p.capacity);
    this.sites = new CallSites(gpu, `${this.spec} host layer`);
    this.answerSites = new CallSites(gpu, `${this.spec} host layer answers`);
  }

  static async create(gpu: GpuContext, layer: number, dims: LayerDims, p: HostLayerPlan) {
    if (p.method === 'ring' && !p.ring) throw new UnsupportedError('a ring host layer needs its ring exchange');
    const { heads: Hq, kvHeads, headDim: D, chunk } = dims;
    const e = dims.dtype === 'f16' ? 2 : 4;
    const owned: GPUBuffer[] = [];
    const buf = async (bytes: number, label: string) => {
      const b = await gpu.createBuffer(bytes, `star host layer ${layer}: ${label}`);
      owned.push(b);
      return b;
    };
    try {
      const main = { k: await buf(kvHeads * p.capacity * D * e, 'K'), v: await buf(kvHeads * p.capacity * D * e, 'V') };
      const a = Math.max(1, p.anchorCopy);
      const anchor = { k: await buf(kvHeads * a * D * e, 'anchor K'), v: await buf(kvHeads * a * D * e, 'anchor V') };
      const lse = await buf(Hq * chunk * 4, 'lse');
      const stack = {
        o: await buf(2 * Hq * chunk * D * 4, 'stacked o'),
        lse: await buf(2 * Hq * chunk * 4, 'stacked lse'),
        parts: 2,
      };
      return new StarHostFlashGpuLayer(gpu, layer, dims, p, main, anchor, lse, stack);
    } catch (err) {
      owned.forEach((b) => gpu.release(b));
      throw err;
    }
  }

  /** Rows that serve queries (the anchor's copy is dropped from the count once phase 1 is done). */
  get cacheBytes(): number {
    const rows = this.next > this.p.context ? this.length : this.length + this.anchorRows;
    return 2 * this.dims.kvHeads * rows * this.dims.headDim * (this.dims.dtype === 'f16' ? 2 : 4);
  }

  get plan(): string {
    const side = this.p.remotes.length ? `query host, merging ${this.p.remotes.length} context hosts` : 'context host';
    return `${this.spec} across hosts (${side}); cache ${this.p.capacity} ${this.dims.dtype} rows on WebGPU; flash on the GPU`;
  }

  reset(): void {
    this.length = 0;
    this.anchorRows = 0;
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

  destroy(): void {
    const a = this.answer;
    const all = [this.main.k, this.main.v, this.anchor.k, this.anchor.v, this.lse, this.stack.o, this.stack.lse];
    const scratch = this.decodeScratch ? [this.decodeScratch.o, this.decodeScratch.lse] : [];
    [...all, ...scratch, ...(a ? [a.q, a.o, a.lse] : [])].forEach((b) => this.gpu.release(b));
    this.sites.destroy();
    this.answerSites.destroy();
  }

  async forward(c: LayerChunk<GPUBuffer>): Promise<void> {
    const { start, tokens: T } = c;
    const d = this.dims;
    if (start < this.next) throw new ShapeError(`layer ${this.layer}: a chunk at ${start} came after ${this.next}`);
    if (start < this.p.context && start + T > this.p.context)
      throw new ShapeError(`layer ${this.layer}: a chunk [${start}, ${start + T}) crosses the context end`);
    const copy = start < this.p.anchorCopy;
    const held = copy ? this.anchorRows : this.length;
    if (T > d.chunk || held + T > (copy ? this.p.anchorCopy : this.p.capacity))
      throw new ShapeError(`layer ${this.layer}: ${held} + ${T} rows exceed the host's (chunks of ${d.chunk})`);
    const phase2 = start >= this.p.context;
    const ring = this.p.method === 'ring' && !phase2 ? this.p.ring : undefined;
    if (ring && this.length > 0)
      throw new ShapeError(`layer ${this.layer}: a ring host encodes its shard in one chunk (its KV travels whole)`);
    // Ask the context hosts first (and send a ring shard on): they travel while this host computes its part.
    const remote = phase2 && this.p.remotes.length ? Promise.all(await this.askRemotes(c)) : undefined;
    remote?.catch(() => {}); // awaited below, after this host's own part
    const tOwn = performance.now();
    const shared = ring ? this.shareChunk(ring, c) : undefined;
    shared?.catch(() => {});
    const earlier = ring ? (await ring.earlier(this.layer)).filter((kv) => kv.tokens > 0) : [];
    this.sites.begin();
    const to = copy ? this.anchor : this.main;
    if (!copy) for (let t = 0; t < T; t++) this.blockIds[held + t] = Math.floor((start + t) / this.p.block);
    const rows: Rows = { k: to.k, v: to.v, rows: held + T, stride: copy ? this.p.anchorCopy : this.p.capacity };
    const out = { o: c.out, lse: this.lse };
    const parts: Prepared[] = [];
    const uploaded: GPUBuffer[] = [];
    try {
      if (copy || phase2) parts.push(await this.flash(this.sites, c.q, T, rows, out, true));
      else if (ring) {
        for (const kv of earlier) {
          const shard = await this.upload(kv, uploaded);
          parts.push(await this.flash(this.sites, c.q, T, shard, out, false));
        }
        parts.push(await this.flash(this.sites, c.q, T, rows, out, true));
      } else if (this.p.anchorCopy === 0)
        parts.push(await this.flash(this.sites, c.q, T, rows, out, true, this.mask(true, held + T)));
      else {
        const anchor = { k: this.anchor.k, v: this.anchor.v, rows: this.anchorRows, stride: this.p.anchorCopy };
        parts.push(await this.flash(this.sites, c.q, T, anchor, out, false));
        parts.push(await this.flash(this.sites, c.q, T, rows, out, true, this.mask(false, held + T)));
      }
      const merge = parts.length > 1 ? await this.mergeOf(parts.length, T) : undefined;
      const rowBytes = d.headDim * (d.dtype === 'f16' ? 2 : 4);
      const [oBytes, lseBytes] = [d.heads * T * d.headDim * 4, d.heads * T * 4];
      await this.gpu.encode(`${this.spec} host layer ${this.layer}`, (enc) => {
        for (let h = 0; h < d.kvHeads; h++)
          for (const [src, dst] of [
            [c.k, to.k],
            [c.v, to.v],
          ] as const)
            enc.copyBufferToBuffer(src, h * T * rowBytes, dst, (h * rows.stride + held) * rowBytes, T * rowBytes);
        // Each part's state into the chunk's output; with several, each is moved to its slot of the stack
        // and the merge folds them back into the output.
        for (const [i, part] of parts.entries()) {
          const pass = enc.beginComputePass();
          part.record(pass);
          pass.end();
          if (!merge) continue;
          enc.copyBufferToBuffer(c.out, 0, this.stack.o, i * oBytes, oBytes);
          enc.copyBufferToBuffer(this.lse, 0, this.stack.lse, i * lseBytes, lseBytes);
        }
        if (!merge) return;
        const fold = enc.beginComputePass();
        const [gx, gy] = mergeWorkgroups(d.heads * T, d.headDim, this.gpu.maxWorkgroupsPerDim);
        this.sites.dispatch(fold, merge.pipe, [this.stack.o, this.stack.lse, c.out, this.lse, merge.u], [gx, gy]);
        fold.end();
      });
    } finally {
      parts.forEach((x) => x.blocks?.release());
      uploaded.forEach((b) => this.gpu.release(b));
    }
    if (copy) this.anchorRows += T;
    else this.length += T;
    if (remote) {
      // The own state comes back while the context hosts' answers travel (one read of o and lse), then the wait
      // for what is left of theirs.
      const own = await this.readState(c.out, this.lse, T);
      const t0 = performance.now();
      const states = await remote;
      const t1 = performance.now();
      this.gpu.write(c.out, 0, mergeAll([...states, own]).o as Float32Array<ArrayBuffer>);
      this.times.steps++;
      this.times.ownMs += t0 - tOwn;
      this.times.waitMs += t1 - t0;
      this.times.mergeMs += performance.now() - t1;
    }
    await shared;
    this.next = start + T;
  }

  /** A context host's answer: queries q [heads, tokens, dim] (f32) over its main rows, all before them. */
  async contextState(q: Float32Array, tokens: number): Promise<AttentionState> {
    const d = this.dims;
    if (this.length === 0) return emptyState(d.heads, tokens, d.headDim);
    const a = await this.answerBuffers(tokens);
    this.gpu.write(
      a.q,
      0,
      (d.dtype === 'f16' ? float32ToHalf(q) : q) as Float32Array<ArrayBuffer> | Uint16Array<ArrayBuffer>,
    );
    let call = this.answerCall;
    if (!call || call.rows !== this.length || call.tokens !== tokens || call.on !== a) {
      this.answerSites.begin();
      const rows = { k: this.main.k, v: this.main.v, rows: this.length, stride: this.p.capacity };
      const x = await this.flash(this.answerSites, a.q, tokens, rows, a, false);
      call = this.answerCall = { x, rows: this.length, tokens, on: a };
    }
    const x = call.x;
    // One validation scope around the dispatch and the read of o and lse together: one wait for the device.
    const label = `${this.spec} host layer ${this.layer} answer`;
    return this.gpu.checked(label, async () => {
      await this.gpu.encode(label, (enc) => {
        const pass = enc.beginComputePass();
        x.record(pass);
        pass.end();
      });
      return this.readState(a.o, a.lse, tokens);
    });
  }

  /** The merge of `parts` stacked states of T queries (the stack grown to hold them). */
  private async mergeOf(parts: number, T: number) {
    const d = this.dims;
    if (parts > this.stack.parts) {
      const label = `star host layer ${this.layer}: stacked`;
      const o = await this.gpu.createBuffer(parts * d.heads * d.chunk * d.headDim * 4, `${label} o`);
      const lse = await this.gpu.createBuffer(parts * d.heads * d.chunk * 4, `${label} lse`).catch((e: Error) => {
        this.gpu.release(o);
        throw e;
      });
      [this.stack.o, this.stack.lse].forEach((b) => this.gpu.release(b));
      this.stack = { o, lse, parts };
    }
    return {
      pipe: await this.gpu.pipeline(`merge-states-${d.headDim}`, () => mergeStatesWgsl(d.headDim)),
      u: this.sites.uniform(new Uint32Array([d.heads * T, parts, 0xff800000, 0]).buffer),
    };
  }

  /** An earlier ring host's KV shard (f32 off the wire) uploaded in this layer's storage dtype. */
  private async upload(kv: KvShard, owned: GPUBuffer[]): Promise<Rows> {
    const f16 = this.dims.dtype === 'f16';
    const up = async (x: Float32Array, what: string) => {
      const b = await this.gpu.upload(f16 ? float32ToHalf(x) : x, `ring host layer ${this.layer}: earlier ${what}`);
      owned.push(b);
      return b;
    };
    return { k: await up(kv.k, 'K'), v: await up(kv.v, 'V'), rows: kv.tokens, stride: kv.tokens };
  }

  /** A ring host's own chunk of k and v read back (f32) and sent to every later host. */
  private async shareChunk(ring: NonNullable<HostLayerPlan['ring']>, c: LayerChunk<GPUBuffer>): Promise<void> {
    const d = this.dims;
    const n = d.kvHeads * c.tokens * d.headDim;
    const f16 = d.dtype === 'f16';
    const [k, v] = (
      await this.gpu.readParts([
        [c.k, n * (f16 ? 2 : 4)],
        [c.v, n * (f16 ? 2 : 4)],
      ])
    ).map((b) => (f16 ? halfToFloat32(new Uint16Array(b)) : new Float32Array(b)));
    await ring.share(this.layer, { k, v, tokens: c.tokens });
  }

  /** The query host's q read back (f32) and sent to every context host. */
  private async askRemotes(c: LayerChunk<GPUBuffer>): Promise<Promise<AttentionState>[]> {
    const d = this.dims;
    const n = d.heads * c.tokens * d.headDim;
    const t0 = performance.now();
    const bytes = await this.gpu.read(c.q, n * (d.dtype === 'f16' ? 2 : 4));
    const q = d.dtype === 'f16' ? halfToFloat32(new Uint16Array(bytes)) : new Float32Array(bytes);
    const t1 = performance.now();
    const asked = this.p.remotes.map((r) => r.stateOf(q, c.tokens, c.start));
    this.times.qReadMs += t1 - t0;
    this.times.sendMs += performance.now() - t1;
    return asked;
  }

  /** Phase 1's visible set over the main rows: causal, and the query's block (host 0: or the anchor). */
  private mask(withAnchor: boolean, rows: number): MaskNode {
    const same = documents(this.blockIds.slice(0, rows));
    return and(causal(), withAnchor ? or(sinkTokens(this.p.anchor), same) : same);
  }

  private async flash(
    sites: CallSites,
    q: GPUBuffer,
    T: number,
    keys: Rows,
    out: { o: GPUBuffer; lse: GPUBuffer },
    isCausal: boolean,
    mask?: MaskNode,
  ): Promise<Prepared> {
    const d = this.dims;
    const blocks = mask && (await prepareBlockMask(this.gpu, mask, T, keys.rows, d.headDim, d.dtype, 'auto'));
    const [heads, kvHeads, headDim, scale] = [d.heads, d.kvHeads, d.headDim, 1 / Math.sqrt(d.headDim)];
    const shape = { heads, kvHeads, queries: T, keys: keys.rows, headDim, causal: isCausal, scale };
    const x = { q, k: keys.k, v: keys.v, o: out.o, lse: out.lse, shape, dtype: d.dtype };
    try {
      // One query seeing every row (a decoded token: over a context host's rows, or its own on the query host):
      // split-KV decoding where the one-process flash layer would take it, not the tiled kernel's one workgroup
      // per head walking every row (planner.ts; the H200's per-layer wait grew with the rows per host).
      const target = { dtype: d.dtype, headDim: d.headDim, queries: T, keys: keys.rows, allKeysVisible: true };
      if (!mask && planFlash(gpuFlashTarget(this.gpu, target)).version === 'split-kv-decode') {
        this.decodeScratch ??= await createDecodeScratch(this.gpu, d.heads, d.headDim);
        const calls = await flashDecodeCalls(this.gpu, x, this.decodeScratch, keys.stride);
        const u = sites.uniform(calls.params);
        this.splitDecodes++;
        const record = (pass: GPUComputePassEncoder) => {
          for (const c of [calls.partial, calls.merge]) sites.dispatch(pass, c.pipeline, [...c.buffers, u], c.groups);
        };
        return { record };
      }
      const call = await flashCall(this.gpu, x, 'auto', blocks, keys.stride);
      return { record: flashRecorder(sites, call), blocks };
    } catch (e) {
      blocks?.release();
      throw e;
    }
  }

  /** The state of T queries in o and lse, read back in one copy. */
  private async readState(o: GPUBuffer, lse: GPUBuffer, T: number): Promise<AttentionState> {
    const { heads, headDim } = this.dims;
    const [ob, lb] = await this.gpu.readParts([
      [o, heads * T * headDim * 4],
      [lse, heads * T * 4],
    ]);
    return { heads, queries: T, headDim, o: new Float32Array(ob), lse: new Float32Array(lb) };
  }

  private async answerBuffers(tokens: number) {
    if (this.answer && this.answer.tokens >= tokens) return this.answer;
    const d = this.dims;
    if (this.answer) [this.answer.q, this.answer.o, this.answer.lse].forEach((b) => this.gpu.release(b));
    this.answer = undefined;
    const e = d.dtype === 'f16' ? 2 : 4;
    const label = `star host layer ${this.layer} answer`;
    const q = await this.gpu.createBuffer(d.heads * tokens * d.headDim * e, `${label} q`);
    const o = await this.gpu.createBuffer(d.heads * tokens * d.headDim * 4, `${label} o`);
    const lse = await this.gpu.createBuffer(d.heads * tokens * 4, `${label} lse`);
    this.answer = { q, o, lse, tokens };
    return this.answer;
  }
}
