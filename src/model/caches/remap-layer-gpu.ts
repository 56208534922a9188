// Remapped top-k positions (`--positions remap:window=W,topk=K`; ReAttention, InfLLM) as a resident WebGPU
// layer, the twin of PositionedCpuLayer's remap: exact distances inside the local window of W keys, and of the
// far keys the K with the largest position-agnostic score q . k per (token, query head), attended in order at
// distances W .. W + K - 1, so every distance stays inside the trained context however long the text. Keys
// are cached once, unrotated (the cache costs what a plain one does), and rotated per list entry by a table of
// positions 0 .. W + K - 1. Per block of query tokens (as many as a 256 MiB score scratch holds at the
// longest context; decoding: one token), in one submission:
//   1. scores of the block's (token, head) rows against its far keys (kernels/remap-scores-wgsl.ts);
//   2. the radix select of DSA's top-k over the stored scores, a row per (token, head)
//      (kernels/topk-wgsl.ts, kernels/topk-decide-wgsl.ts), K picks per row;
//   3. the picks sorted by position and attended with the window (kernels/remap-attend-wgsl.ts).
// The score, selection and pick buffers are shared by the layers of a device (gpu-binds sharedBuffer).
// Cost against exact attention: the same q . k work on scalar lanes (not tensor cores) plus the select's
// passes over the stored scores; the attention itself reads W + K keys per query.
// A saved session holds the unrotated rows as PositionedCpuLayer saves its own, so it restores on either backend.
import { ShapeError, UnsupportedError } from '../../errors.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { CallSites } from '../../runtime/call-sites.js';
import { grid } from '../../kernels/elementwise-wgsl.js';
import { ROPE_THREADS, ropeParams, ropeWgsl } from '../../kernels/rope-wgsl.js';
import { TOPK_MAX_PASSES } from '../../kernels/topk-cpu.js';
import {
  SELECTION_SCRATCH,
  STATE_WORDS,
  STORED_BLOCK_QUERIES,
  topkParams,
  topkPassWgsl,
} from '../../kernels/topk-wgsl.js';
import { DEFAULT_DECIDE, decideGroups } from '../../kernels/topk-decide-wgsl.js';
import {
  REMAP_SCORE_THREADS,
  remapScoreParams,
  remapScoreTokens,
  remapScoresWgsl,
} from '../../kernels/remap-scores-wgsl.js';
import { remapAttendParams, remapAttendWgsl } from '../../kernels/remap-attend-wgsl.js';
import { decidePipeline, selectSplits } from '../../attention/dsa-select.js';
import { releaseShared, sharedBuffer, wrapGrid } from '../../attention/layers/gpu-binds.js';
import { formatMethodSpec } from '../../attention/spec.js';
import { checkChunkFits, type LayerAttention, type LayerCacheState, type LayerChunk } from '../../attention/layer.js';
import { saveKvCache } from '../../attention/layers/kv-cache-state.js';
import { restoreGpuKvCache } from '../../attention/layers/kv-cache-gpu.js';
import { RingLayout } from '../../attention/layers/ring-layout.js';
import type { HostData } from '../../tensor.js';
import { positionedStateSpec } from './positioned-layer-cpu.js';
import type { GpuLayerScratch } from '../../attention/layers/kv-layer-gpu.js';
import { ropeAttentionFactor, ropeInverseFrequencies } from '../positions/rope.js';
import { formatPositionSpec, type PositionMethod } from '../positions/position-method.js';
import { positionTable } from '../positions/position-parts.js';
import type { LayerSetup } from './layer-factory.js';

/** Bytes of stored scores at most (shared by the layers of a device). */
export const REMAP_SCORE_BYTES = 256 << 20;

type Remap = Extract<PositionMethod, { kind: 'remap' }>;

interface Kernels {
  append: GPUComputePipeline;
  score: GPUComputePipeline;
  pass: GPUComputePipeline;
  decide: GPUComputePipeline;
  attend: GPUComputePipeline;
}

/** The shared scratch: scores, selection state, counters, histogram, candidates, picks. */
interface Scratch {
  scores: GPUBuffer;
  state: GPUBuffer;
  counters: GPUBuffer;
  hist: GPUBuffer;
  cand: GPUBuffer;
  picks: GPUBuffer;
}

export class RemapGpuLayer implements LayerAttention<GPUBuffer> {
  readonly spec: string;
  readonly plan: string;
  private length = 0;
  private readonly sites: CallSites;

  private constructor(
    private readonly gpu: GpuContext,
    private readonly s: LayerSetup,
    private readonly m: Remap,
    private readonly kernels: Kernels,
    private readonly scratch: Scratch,
    /** Query tokens per selection block. */
    private readonly blockTokens: number,
    /** Unrotated K and V [Hkv, maxTokens, D], and the rotation table of positions 0 .. W + K - 1. */
    private readonly keys: GPUBuffer,
    private readonly values: GPUBuffer,
    private readonly table: GPUBuffer,
    private readonly lse: GPUBuffer,
  ) {
    this.spec = formatMethodSpec(s.method);
    this.plan =
      `${this.spec} with positions ${formatPositionSpec(m)} on WebGPU: keys cached unrotated + values; per block of ` +
      `${blockTokens} tokens q.k scores of the far keys, radix top-${m.topk} per (token, head), the picks sorted ` +
      `and attended with the window of ${m.window} at positions 0..${m.window + m.topk - 1}`;
    this.sites = new CallSites(gpu, `${this.spec} remap layer`);
  }

  /** scoreBytes: the score scratch's budget (tests make it small to run a chunk in several blocks). */
  static async create(
    gpu: GpuContext,
    s: LayerSetup,
    scratch: GpuLayerScratch,
    scoreBytes = REMAP_SCORE_BYTES,
  ): Promise<RemapGpuLayer> {
    const m = s.positions as Remap;
    const d = s.dims;
    const G = d.heads / d.kvHeads;
    if (d.headDim % 2 !== 0) throw new ShapeError(`remap rotates pairs of channels: head dim ${d.headDim} is odd`);
    const maxFar = Math.max(1, d.maxTokens - m.window);
    const budget = Math.min(scoreBytes, gpu.maxBindingBytes);
    const rowBytes = d.heads * maxFar * 4;
    if (rowBytes > budget)
      throw new UnsupportedError(
        `--positions ${formatPositionSpec(m)}: one token's far-key scores (${d.heads} heads x ${maxFar} keys) ` +
          `exceed the ${budget}-byte scratch; use fewer tokens or self-extend`,
      );
    const blockTokens = Math.max(1, Math.min(d.chunk, Math.floor(budget / rowBytes)));
    const rows = blockTokens * d.heads;
    const kernels: Kernels = {
      append: await gpu.pipeline(`rope-heads-${d.dtype}`, () => ropeWgsl(d.dtype, { dtype: d.dtype, headMajor: true })),
      score: await gpu.pipeline(`remap-scores-${d.dtype}-${d.headDim}-${G}`, () =>
        remapScoresWgsl(d.dtype, d.headDim, G),
      ),
      pass: await gpu.pipeline('dsa-topk-pass-stored', () => topkPassWgsl('stored')),
      decide: await decidePipeline(gpu, DEFAULT_DECIDE),
      attend: await gpu.pipeline(`remap-attend-${d.dtype}-${d.headDim}-${m.topk}`, () =>
        remapAttendWgsl(d.dtype, d.headDim, m.topk),
      ),
    };
    const shared: GPUBuffer[] = [];
    const owned: GPUBuffer[] = [];
    try {
      shared.push(await sharedBuffer(gpu, rows * maxFar * 4, 'remap scores'));
      // The histogram is zero when fresh, and every finished selection leaves it so.
      for (const [label, words] of SELECTION_SCRATCH)
        shared.push(await sharedBuffer(gpu, rows * words * 4, `remap select ${label}`));
      shared.push(await sharedBuffer(gpu, rows * m.topk * 4, 'remap picks'));
      const bytes = d.kvHeads * d.maxTokens * d.headDim * (d.dtype === 'f16' ? 2 : 4);
      owned.push(await gpu.createBuffer(bytes, 'remap: K cache (unrotated)'));
      owned.push(await gpu.createBuffer(bytes, 'remap: V cache'));
      const c = s.config;
      const positions = Array.from({ length: m.window + m.topk }, (_, i) => i);
      const table = positionTable(positions, ropeInverseFrequencies(c), ropeAttentionFactor(c));
      owned.push(await gpu.createBuffer(table.byteLength, 'remap: rotation table'));
      gpu.write(owned[2], 0, table);
      const [scores, state, counters, hist, cand, picks] = shared;
      const sc = { scores, state, counters, hist, cand, picks };
      return new RemapGpuLayer(gpu, s, m, kernels, sc, blockTokens, owned[0], owned[1], owned[2], scratch.lse);
    } catch (e) {
      shared.forEach((b) => releaseShared(gpu, b));
      owned.forEach((b) => gpu.release(b));
      throw e;
    }
  }

  get cacheBytes(): number {
    const d = this.s.dims;
    return 2 * d.kvHeads * this.length * d.headDim * (d.dtype === 'f16' ? 2 : 4);
  }

  async forward(c: LayerChunk<GPUBuffer>): Promise<void> {
    const d = this.s.dims;
    const { start, tokens: T } = c;
    checkChunkFits(this.spec, this.length, d, start, T);
    const { window: W, topk: K } = this.m;
    const [k, x, sites, gpu] = [this.kernels, this.scratch, this.sites, this.gpu];
    const G = d.heads / d.kvHeads;
    sites.begin();
    const interleaved = this.s.config.ropeLayout === 'interleaved';
    const copy = (heads: number) =>
      sites.uniform(
        ropeParams({
          tokens: T,
          heads,
          headDim: d.headDim,
          stride: d.maxTokens,
          offset: start,
          rotate: false,
          interleaved,
        }),
      );
    const appends = [
      { from: c.k, to: this.keys, u: copy(d.kvHeads) },
      { from: c.v, to: this.values, u: copy(d.kvHeads) },
    ];
    // Per block: its attention, and (once any of its tokens has far keys) the selection before it.
    type Select = { scoreU: GPUBuffer; topkU: GPUBuffer; scores: number[]; pass: number[]; decide: number[] };
    const blocks: { rows: number; attendU: GPUBuffer; attend: number[]; select?: Select }[] = [];
    for (let first = 0; first < T; first += this.blockTokens) {
      const tokens = Math.min(this.blockTokens, T - first);
      const rows = tokens * d.heads;
      // Far keys of the block's last token (position start + first + tokens - 1): j <= p - W.
      const far = Math.max(0, start + first + tokens - W);
      const attend = wrapGrid(gpu, rows);
      const attendU = sites.uniform(
        remapAttendParams({
          rows,
          firstToken: first,
          chunkTokens: T,
          start,
          heads: d.heads,
          group: G,
          stride: d.maxTokens,
          window: W,
          topk: K,
          tableRows: W + K,
          interleaved,
          columns: attend[0],
        }),
      );
      if (far === 0) {
        blocks.push({ rows, attendU, attend });
        continue;
      }
      const scores = [Math.ceil(far / REMAP_SCORE_THREADS), Math.ceil(tokens / remapScoreTokens(G)) * d.kvHeads];
      if (Math.max(...scores) > gpu.maxWorkgroupsPerDim)
        throw new UnsupportedError(`remap scores of ${far} keys x ${tokens} tokens exceed the dispatch grid`);
      const passBlocks = Math.ceil(rows / STORED_BLOCK_QUERIES);
      const splits = selectSplits(gpu, { queries: rows, keys: far, causal: true, topk: K }, passBlocks);
      const scoreU = sites.uniform(
        remapScoreParams({
          tokens,
          firstToken: first,
          keys: far,
          chunkTokens: T,
          kvHeads: d.kvHeads,
          stride: d.maxTokens,
        }),
      );
      const topkU = sites.uniform(
        topkParams({ queries: rows, keys: far, causal: true, width: K, splits, rowsPerToken: d.heads }),
      );
      const decide = wrapGrid(gpu, decideGroups(DEFAULT_DECIDE, rows));
      blocks.push({ rows, attendU, attend, select: { scoreU, topkU, scores, pass: [passBlocks, splits], decide } });
    }
    const sel = [x.state, x.counters, x.hist, x.cand, x.picks];
    await gpu.encode(
      `${this.spec} remap attention`,
      (enc) => {
        const pass = enc.beginComputePass();
        for (const a of appends)
          sites.dispatch(
            pass,
            k.append,
            [a.from, this.table, a.to, a.u],
            grid((d.kvHeads * T * d.headDim) / 2, ROPE_THREADS),
          );
        pass.end();
        for (const b of blocks) {
          const q = b.select;
          if (q) enc.clearBuffer(x.state, 0, b.rows * STATE_WORDS * 4);
          const p = enc.beginComputePass();
          if (q) {
            sites.dispatch(p, k.score, [q.scoreU, c.q, this.keys, x.scores], q.scores, q.scoreU);
            sites.dispatch(p, k.decide, [q.topkU, ...sel], q.decide, q.topkU);
            for (let i = 0; i < TOPK_MAX_PASSES; i++) {
              sites.dispatch(p, k.pass, [q.topkU, x.scores, ...sel], q.pass, q.topkU);
              sites.dispatch(p, k.decide, [q.topkU, ...sel], q.decide, q.topkU);
            }
          }
          const io = [b.attendU, c.q, this.keys, this.values, x.picks, this.table, c.out, this.lse];
          sites.dispatch(p, k.attend, io, b.attend, b.attendU);
          p.end();
        }
      },
      true,
    );
    this.length = start + T;
  }

  reset(): void {
    this.length = 0;
  }

  /** The unrotated keys and values, as PositionedCpuLayer saves them (a state goes either way). */
  async saveCache(): Promise<LayerCacheState> {
    const [k, v] = await this.gpu.readParts([
      [this.keys, this.keys.size],
      [this.values, this.values.size],
    ]);
    const typed = (b: ArrayBuffer) => (this.s.dims.dtype === 'f16' ? new Uint16Array(b) : new Float32Array(b));
    return saveKvCache(positionedStateSpec(this.spec, this.m), this.length, this.image(typed(k), typed(v)));
  }

  async restoreCache(state: LayerCacheState): Promise<boolean> {
    const d = this.s.dims;
    if (state.spec !== positionedStateSpec(this.spec, this.m) || state.tokens > d.maxTokens) return false;
    const { kvHeads, headDim, dtype, maxTokens } = d;
    const cache = { spec: state.spec, kvHeads, headDim, dtype, layout: RingLayout.dense(maxTokens) };
    if (!(await restoreGpuKvCache(this.gpu, { ...cache, k: this.keys, v: this.values }, state))) return false;
    this.length = state.tokens;
    return true;
  }

  private image(k: HostData, v: HostData) {
    const { kvHeads, headDim, dtype, maxTokens } = this.s.dims;
    return { kvHeads, headDim, dtype, layout: RingLayout.dense(maxTokens), k, v };
  }

  destroy(): void {
    [this.keys, this.values, this.table].forEach((b) => this.gpu.release(b));
    Object.values(this.scratch).forEach((b) => releaseShared(this.gpu, b));
    this.sites.destroy();
  }
}
