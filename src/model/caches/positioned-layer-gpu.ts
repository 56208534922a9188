// The WebGPU twin of PositionedCpuLayer: a layer whose positions come from a training-free positional method,
// resident on the device. The method is split into parts (model/positions/position-parts.ts: Self-Extend's
// neighbour and grouped attentions, dual-chunk's intra, successive and inter); each key is cached once per
// rotation a part reads (Self-Extend: at j and at floor(j/G); dual-chunk: at j mod S only), each part rotates
// the chunk's queries to its own positions and runs the flash kernel under its mask (and the method's window
// or sinks), and the parts' states are folded by the one GPU merge (kernels/merge-wgsl.ts). Cost: one extra
// K cache per extra rotation (Self-Extend: 1.5x a plain KV cache) and one flash call per part; Self-Extend's
// grouped part reads what exact attention would, its neighbour part W keys per query.
// Tables, block masks and the parts' scratch are shared by the layers of one decoder (one GpuLayerScratch).
import { UnsupportedError } from '../../errors.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { CallSites } from '../../runtime/call-sites.js';
import { grid } from '../../kernels/elementwise-wgsl.js';
import { ROPE_THREADS, ropeParams, ropeWgsl } from '../../kernels/rope-wgsl.js';
import { mergeStatesWgsl, mergeWorkgroups } from '../../kernels/merge-wgsl.js';
import { maskKey } from '../../spine/mask.js';
import { keptTiles } from '../../spine/block-mask.js';
import { flashCall, flashRecorder, prepareBlockMask, type GpuBlockMask } from '../../attention/flash.js';
import { variantParam, vcheckParam, formatMethodSpec, type FlashVariant } from '../../attention/spec.js';
import type { FlashVCheck } from '../../kernels/flash-tc-wgsl.js';
import { checkChunkFits, type LayerAttention, type LayerChunk } from '../../attention/layer.js';
import type { GpuLayerScratch } from '../../attention/layers/kv-layer-gpu.js';
import { ropeAttentionFactor, ropeInverseFrequencies } from '../positions/rope.js';
import { formatPositionSpec } from '../positions/position-method.js';
import { positionParts, positionTable, type PositionParts } from '../positions/position-parts.js';
import { positionsVisibleMask } from '../positions/positions-beside.js';
import type { LayerSetup } from './layer-factory.js';
import { RemapGpuLayer } from './remap-layer-gpu.js';

/** What the layers of one decoder share for the current chunk: RoPE tables, block masks, parts' scratch. */
class PositionedShared {
  private chunkKey = '';
  private masks = new Map<string, GpuBlockMask>();
  private users = 0;

  private constructor(
    private readonly gpu: GpuContext,
    private readonly s: LayerSetup,
    /** Per key rotation, then per part: [cos | sin] x chunk x D/2. */
    readonly keyTables: GPUBuffer[],
    readonly queryTables: GPUBuffer[],
    /** Per part: its rotated queries [Hq, chunk, D] (storage dtype). */
    readonly queries: GPUBuffer[],
    /** The parts' states stacked for the merge: o [P, Hq * T, D] and lse [P, Hq * T], and each later part's own. */
    readonly stack: { o: GPUBuffer; lse: GPUBuffer },
    readonly partStates: { o: GPUBuffer; lse: GPUBuffer }[],
  ) {}

  private static byScratch = new WeakMap<GpuLayerScratch, PositionedShared>();

  static async for(gpu: GpuContext, s: LayerSetup, parts: PositionParts, scratch: GpuLayerScratch) {
    let shared = PositionedShared.byScratch.get(scratch);
    if (!shared) {
      const { heads: Hq, headDim: D, chunk, dtype } = s.dims;
      const e = dtype === 'f16' ? 2 : 4;
      const owned: GPUBuffer[] = [];
      const buf = async (bytes: number, label: string) => {
        const b = await gpu.createBuffer(Math.max(4, bytes), label);
        owned.push(b);
        return b;
      };
      try {
        const P = parts.parts.length;
        const table = (label: string) => buf(chunk * D * 4, label);
        const keyTables = await Promise.all(parts.keyPositions.map((_, r) => table(`positions: key table ${r}`)));
        const queryTables = await Promise.all(parts.parts.map((p) => table(`positions: ${p.name} query table`)));
        const queries = await Promise.all(parts.parts.map((p) => buf(Hq * chunk * D * e, `positions: ${p.name} q`)));
        const stack = {
          o: await buf(P * Hq * chunk * D * 4, 'positions: stacked o'),
          lse: await buf(P * Hq * chunk * 4, 'positions: stacked lse'),
        };
        const partStates = [];
        for (const p of parts.parts.slice(1))
          partStates.push({
            o: await buf(Hq * chunk * D * 4, `positions: ${p.name} o`),
            lse: await buf(Hq * chunk * 4, `positions: ${p.name} lse`),
          });
        shared = new PositionedShared(gpu, s, keyTables, queryTables, queries, stack, partStates);
      } catch (err) {
        owned.forEach((b) => gpu.release(b));
        throw err;
      }
      PositionedShared.byScratch.set(scratch, shared);
    }
    shared.users++;
    return { shared, release: () => shared.release(scratch) };
  }

  /** Uploads the tables of the chunk [start, start + T) once for all layers; forgets the last chunk's masks. */
  prepare(parts: PositionParts, start: number, T: number): void {
    const key = `${start}:${T}`;
    if (key === this.chunkKey) return;
    this.releaseMasks();
    this.chunkKey = key;
    const c = this.s.config;
    const [inv, factor] = [ropeInverseFrequencies(c), ropeAttentionFactor(c)];
    const at = (f: (p: number) => number) =>
      positionTable(
        Array.from({ length: T }, (_, t) => f(start + t)),
        inv,
        factor,
      );
    parts.keyPositions.forEach((f, r) => this.gpu.write(this.keyTables[r], 0, at(f)));
    parts.parts.forEach((p, s) => this.gpu.write(this.queryTables[s], 0, at(p.queryPosition)));
  }

  /** The block mask of a part over this chunk (built once for all layers with the same mask and variant). */
  async mask(part: number, parts: PositionParts, T: number, keys: number, variant: FlashVariant) {
    const m = parts.parts[part].mask;
    const key = `${maskKey(m)}|${variant}`;
    let b = this.masks.get(key);
    if (!b) {
      const d = this.s.dims;
      b = await prepareBlockMask(this.gpu, m, T, keys, d.headDim, d.dtype, variant);
      this.masks.set(key, b);
    }
    return b;
  }

  private releaseMasks(): void {
    this.masks.forEach((b) => b.release());
    this.masks.clear();
  }

  private release(scratch: GpuLayerScratch): void {
    if (--this.users > 0) return;
    this.releaseMasks();
    const all = [...this.keyTables, ...this.queryTables, ...this.queries, this.stack.o, this.stack.lse];
    [...all, ...this.partStates.flatMap((p) => [p.o, p.lse])].forEach((b) => this.gpu.release(b));
    PositionedShared.byScratch.delete(scratch);
  }
}

export class PositionedGpuLayer implements LayerAttention<GPUBuffer> {
  readonly spec: string;
  readonly plan: string;
  private length = 0;
  private readonly sites: CallSites;
  private readonly variant: FlashVariant;
  private readonly vcheck: FlashVCheck;

  private constructor(
    private readonly gpu: GpuContext,
    private readonly s: LayerSetup,
    private readonly parts: PositionParts,
    private readonly shared: PositionedShared,
    private readonly releaseShared: () => void,
    /** One K cache per key rotation, and V: [Hkv, maxTokens, D] each. */
    private readonly keys: GPUBuffer[],
    private readonly values: GPUBuffer,
    private readonly lse: GPUBuffer,
  ) {
    this.spec = formatMethodSpec(s.method);
    this.variant = s.method.name === 'dense' ? 'auto' : variantParam(s.method);
    this.vcheck = vcheckParam(s.method);
    const names = parts.parts.map((p) => p.name).join(' + ');
    this.plan =
      `${this.spec} with positions ${formatPositionSpec(s.positions!)} on WebGPU: keys cached in ` +
      `${keys.length} rotation(s) + values; ${names} by flash (${this.variant}), merged`;
    this.sites = new CallSites(gpu, `${this.spec} positioned layer`);
  }

  static async create(gpu: GpuContext, s: LayerSetup, scratch: GpuLayerScratch): Promise<PositionedGpuLayer> {
    const positions = s.positions!;
    const visible = positionsVisibleMask(s.method, positions);
    const parts = positionParts(positions, s.dims.maxTokens, visible);
    if (!parts)
      throw new UnsupportedError(
        `--positions ${formatPositionSpec(positions)} does not split into RoPE parts; remap has its own layer ` +
          '(createPositionedGpuLayer)',
      );
    const d = s.dims;
    const bytes = d.kvHeads * d.maxTokens * d.headDim * (d.dtype === 'f16' ? 2 : 4);
    const { shared, release } = await PositionedShared.for(gpu, s, parts, scratch);
    const owned: GPUBuffer[] = [];
    try {
      for (const r of parts.keyPositions.keys()) owned.push(await gpu.createBuffer(bytes, `positions: K cache ${r}`));
      owned.push(await gpu.createBuffer(bytes, 'positions: V cache'));
      const keys = owned.slice(0, -1);
      return new PositionedGpuLayer(gpu, s, parts, shared, release, keys, owned[owned.length - 1], scratch.lse);
    } catch (e) {
      owned.forEach((b) => gpu.release(b));
      release();
      throw e;
    }
  }

  get cacheBytes(): number {
    const d = this.s.dims;
    return (this.keys.length + 1) * d.kvHeads * this.length * d.headDim * (d.dtype === 'f16' ? 2 : 4);
  }

  async forward(c: LayerChunk<GPUBuffer>): Promise<void> {
    const d = this.s.dims;
    const { start, tokens: T } = c;
    checkChunkFits(this.spec, this.length, d, start, T);
    const end = start + T;
    const [shared, parts] = [this.shared, this.parts];
    shared.prepare(parts, start, T);
    this.sites.begin();
    const rope = await this.gpu.pipeline(`rope-heads-${d.dtype}`, () =>
      ropeWgsl(d.dtype, { dtype: d.dtype, headMajor: true }),
    );
    const interleaved = this.s.config.ropeLayout === 'interleaved';
    const rows = d.heads * T;
    const moves: [GPUBuffer, GPUBuffer, GPUBuffer, number, number, number, boolean][] = [];
    parts.keyPositions.forEach((_, r) =>
      moves.push([c.k, shared.keyTables[r], this.keys[r], d.kvHeads, d.maxTokens, start, true]),
    );
    moves.push([c.v, shared.keyTables[0], this.values, d.kvHeads, d.maxTokens, start, false]);
    // The parts that keep any key here (Self-Extend's grouped part is empty until a query is W past the start).
    const active: { part: number; blocks: GpuBlockMask }[] = [];
    for (const [i] of parts.parts.entries()) {
      const blocks = await shared.mask(i, parts, T, end, this.variant);
      if (keptTiles(blocks.blocks) > 0) active.push({ part: i, blocks });
    }
    for (const { part } of active)
      moves.push([c.q, shared.queryTables[part], shared.queries[part], d.heads, T, 0, true]);
    const single = active.length === 1;
    const flashes: ((pass: GPUComputePassEncoder) => void)[] = [];
    for (const [n, { part, blocks }] of active.entries()) {
      const out = n === 0 ? (single ? { o: c.out, lse: this.lse } : shared.stack) : shared.partStates[n - 1];
      const shape = {
        heads: d.heads,
        kvHeads: d.kvHeads,
        queries: T,
        keys: end,
        headDim: d.headDim,
        causal: true,
        scale: 1 / Math.sqrt(d.headDim),
      };
      const x = {
        q: shared.queries[part],
        k: this.keys[parts.parts[part].keys],
        v: this.values,
        o: out.o,
        lse: out.lse,
        shape,
        dtype: d.dtype,
      };
      const call = await flashCall(this.gpu, x, this.variant, blocks, d.maxTokens, this.vcheck);
      flashes.push(flashRecorder(this.sites, call));
    }
    const ropeUniforms = moves.map(([, , , heads, stride, offset, rotate]) =>
      this.sites.uniform(ropeParams({ tokens: T, heads, headDim: d.headDim, stride, offset, rotate, interleaved })),
    );
    const merge = single
      ? undefined
      : {
          pipe: await this.gpu.pipeline(`merge-states-${d.headDim}`, () => mergeStatesWgsl(d.headDim)),
          u: this.sites.uniform(new Uint32Array([rows, active.length, 0xff800000, 0]).buffer),
        };
    await this.gpu.encode(
      `${this.spec} positioned attention`,
      (enc) => {
        const pass = enc.beginComputePass();
        moves.forEach(([x, table, out, heads], i) =>
          this.sites.dispatch(
            pass,
            rope,
            [x, table, out, ropeUniforms[i]],
            grid((heads * T * d.headDim) / 2, ROPE_THREADS),
          ),
        );
        for (const record of flashes) record(pass);
        pass.end();
        if (!merge) return;
        // Each later part's state into its slot of the stack (the first part wrote slot 0 in place).
        shared.partStates.slice(0, active.length - 1).forEach((p, n) => {
          enc.copyBufferToBuffer(p.o, 0, shared.stack.o, (n + 1) * rows * d.headDim * 4, rows * d.headDim * 4);
          enc.copyBufferToBuffer(p.lse, 0, shared.stack.lse, (n + 1) * rows * 4, rows * 4);
        });
        const folds = enc.beginComputePass();
        const [gx, gy] = mergeWorkgroups(rows, d.headDim, this.gpu.maxWorkgroupsPerDim);
        this.sites.dispatch(folds, merge.pipe, [shared.stack.o, shared.stack.lse, c.out, this.lse, merge.u], [gx, gy]);
        folds.end();
      },
      true,
    );
    this.length = end;
  }

  reset(): void {
    this.length = 0;
  }

  destroy(): void {
    [...this.keys, this.values].forEach((b) => this.gpu.release(b));
    this.sites.destroy();
    this.releaseShared();
  }
}

/** The layer factory's entry for a layer with a positional method (layer-factory.ts, createGpuLayer): remap
 * selects per query, so it has its own layer (remap-layer-gpu.ts); the others decompose into parts. */
export const createPositionedGpuLayer = (
  gpu: GpuContext,
  s: LayerSetup,
  scratch: GpuLayerScratch,
): Promise<LayerAttention<GPUBuffer>> => {
  if (s.positions?.kind !== 'remap') return PositionedGpuLayer.create(gpu, s, scratch);
  positionsVisibleMask(s.method, s.positions); // refuses remap beside a window or sinks mask, typed
  if (s.method.name === 'dsa')
    throw new UnsupportedError(
      `--positions ${formatPositionSpec(s.positions)} beside ${formatMethodSpec(s.method)}: the DSA indexer as ` +
        "remap's selector runs on the CPU only so far (--backend cpu); on WebGPU remap selects by q.k beside flash",
    );
  return RemapGpuLayer.create(gpu, s, scratch);
};
