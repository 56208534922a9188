// A DSA layer resident on WebGPU (DeepSeek-V3.2 sec. 2.1; the CPU truth is model/caches/dsa-layer.ts with the
// CPU selection and gathered attention): the dense KV cache [Hkv, maxTokens, D] and the training-free
// indexer's index keys (int8 with a power-of-two scale per token, or f32) stay on the device. Per chunk:
// append k and v in place; project the chunk's rotated k and q onto the index heads' rotary pairs and
// quantise them (kernels/dsa-indexer-project-wgsl.ts); score each block of query tokens against the middle
// keys once and radix-select the top-k over the stored scores (dsa-resident-select.ts); assemble sinks +
// picks + local window (kernels/sparse-lists-wgsl.ts); gathered attention (dsa-resident-attend.ts). No host
// reads; uniforms rewritten and bind groups kept, so a decode step allocates nothing. A trained indexer's
// vectors come from the attention input h instead (dsa-trained-gpu.ts), its one key per token shared by its heads.
import { ShapeError, UnsupportedError } from '../../errors.js';
import { bytesPerElement, type DType, type HostData } from '../../tensor.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import type { IndexerPrecision } from '../../kernels/dsa-indexer-cpu.js';
import {
  indexKeysWgsl,
  indexQueriesWgsl,
  PROJECT_THREADS,
  projectParams,
  slotWords,
  type IndexerSlots,
} from '../../kernels/dsa-indexer-project-wgsl.js';
import { LISTS_THREADS, sparseListsParams, sparseListsWgsl } from '../../kernels/sparse-lists-wgsl.js';
import { ResidentSelection } from '../dsa-resident-select.js';
import { ResidentSparseAttention } from '../dsa-resident-attend.js';
import type { LayerAttention, LayerCacheState, LayerChunk } from '../layer.js';
import { dsaIndexKeys, saveDsaCache } from './dsa-cache-state.js';
import type { KvImage } from './kv-cache-state.js';
import { restoreGpuKvCache } from './kv-cache-gpu.js';
import { RingLayout } from './ring-layout.js';
import { BindGroupCache, persistentUniform, wrapGrid, writeUniform } from './gpu-binds.js';
import { ResidentKvAppend } from './kv-append-gpu.js';
import { DEFAULT_DECIDE, type DecideVersion } from '../../kernels/topk-decide-wgsl.js';
import { type ResidentTrainedIndexer, TrainedIndexProjection } from './dsa-trained-gpu.js';

/** What the layer needs of model/caches/dsa-indexer.ts's LayerIndexer (which satisfies it). */
export interface ResidentIndexer {
  heads: number;
  dim: number;
  /** Per index head j: the channels (within head dim D) of KV head j, in slot order. */
  channels: ArrayLike<number>[];
  /** Set for a trained indexer (heads = H_I, dim = D_I, no channels), which needs `resident` too. */
  trained?: unknown;
  /** A trained indexer's weights in the form the GPU projection takes (model/caches/dsa-indexer.ts). */
  resident?: ResidentTrainedIndexer;
}

/** As model/caches/dsa-layer.ts DsaLayerParams (sinks, local window, top-k of the middle keys). */
export interface DsaResidentParams {
  topk: number;
  precision: IndexerPrecision;
  sinks: number;
  local: number;
  /** The selection's decide step (kernels/topk-decide-wgsl.ts; default DEFAULT_DECIDE). */
  decide?: DecideVersion;
}

export interface DsaGpuLayerOptions extends DsaResidentParams {
  heads: number;
  kvHeads: number;
  headDim: number;
  maxTokens: number;
  /** Largest chunk (default min(maxTokens, 4096)). */
  maxChunk?: number;
  dtype: DType;
  indexer: ResidentIndexer;
  scale?: number;
  /** Bytes of the stored-score scratch (default 64 MiB). */
  scoreBudgetBytes?: number;
}

interface Kernels {
  /** The training-free indexer's projections of q and k (a trained one has `trained` instead). */
  keys?: GPUComputePipeline;
  queries?: GPUComputePipeline;
  trained?: TrainedIndexProjection;
  lists: GPUComputePipeline;
}

export class DsaGpuLayer implements LayerAttention<GPUBuffer> {
  readonly spec: string;
  readonly plan: string;
  readonly listWidth: number;
  private seen = 0;
  private readonly binds = new BindGroupCache();
  private readonly uniforms: { project: GPUBuffer; lists: GPUBuffer };
  private readonly listsGroup: GPUBindGroup;

  private constructor(
    private readonly gpu: GpuContext,
    private readonly o: Required<Omit<DsaGpuLayerOptions, 'scoreBudgetBytes'>>,
    private readonly slots: IndexerSlots,
    private readonly kernels: Kernels,
    private readonly buf: Record<'k' | 'v' | 'ik' | 'channels' | 'iq' | 'iw' | 'picked' | 'lists', GPUBuffer> & {
      kscale?: GPUBuffer;
    },
    private readonly select: ResidentSelection,
    private readonly attend: ResidentSparseAttention,
    private readonly append: ResidentKvAppend,
    listWidth: number,
  ) {
    this.listWidth = listWidth;
    this.uniforms = {
      project: persistentUniform(gpu, 32),
      lists: persistentUniform(gpu, 32),
    };
    this.listsGroup = gpu.bind(kernels.lists, [buf.picked, buf.lists, this.uniforms.lists]);
    this.spec = `dsa:topk=${o.topk},indexer=${o.precision},sinks=${o.sinks},local=${o.local},decide=${o.decide}`;
    this.plan =
      `dsa resident: ${o.indexer.resident ? 'trained indexer from h, ' : ''}${o.indexer.heads} index heads x ` +
      `${slots.per} channels${slots.shared ? ' on one shared key' : ''} (${o.precision}), scores stored per ` +
      `block of ${select.blockQueries} tokens then radix select (decide: ${o.decide}), gathered attention ` +
      `${attend.variant}, ${o.dtype}`;
  }

  static async create(gpu: GpuContext, options: DsaGpuLayerOptions): Promise<DsaGpuLayer> {
    const { heads, kvHeads, headDim: D, dtype, maxTokens, indexer: ix, topk, sinks, local } = options;
    if (!(kvHeads >= 1 && heads % kvHeads === 0 && D >= 1 && maxTokens >= 1))
      throw new ShapeError(`dsa layer: heads ${heads} must be a multiple of KV heads ${kvHeads}, dims >= 1`);
    const trained = ix.resident;
    if (ix.trained && !trained)
      throw new UnsupportedError('a trained dsa indexer is resident only with its weights (ResidentIndexer.resident)');
    if (
      !trained &&
      (ix.heads < 1 || heads % ix.heads !== 0 || ix.dim % ix.heads !== 0 || ix.channels.length !== ix.heads)
    )
      throw new ShapeError(`dsa indexer of ${ix.heads} heads x ${ix.dim} does not fit ${heads} query heads`);
    if (trained && !(ix.heads >= 1 && ix.heads < 64 && ix.dim >= 1))
      throw new ShapeError(`a trained dsa indexer needs 1..63 heads and a dim >= 1, got ${ix.heads} x ${ix.dim}`);
    if (!(topk >= 1 && sinks >= 0 && local >= 1)) throw new ShapeError('dsa layer: topk >= 1, sinks >= 0, local >= 1');
    if (dtype === 'f16' && !gpu.features.f16)
      throw new UnsupportedError('this device has no shader-f16; use f32 storage for the dsa layer');
    const maxChunk = Math.min(options.maxChunk ?? 4096, maxTokens);
    const decide = options.decide ?? DEFAULT_DECIDE;
    const slots: IndexerSlots = trained
      ? { precision: options.precision, heads: ix.heads, per: ix.dim, shared: true }
      : { precision: options.precision, heads: ix.heads, per: ix.dim / ix.heads };
    const SW = slotWords(slots);
    const channels = new Uint32Array(trained ? 1 : ix.heads * slots.per);
    ix.channels.forEach((ch, j) => {
      for (let c = 0; c < slots.per; c++) {
        if (!(ch[c] >= 0 && ch[c] < D)) throw new ShapeError(`dsa indexer channel ${ch[c]} outside head dim ${D}`);
        channels[j * slots.per + c] = ch[c];
      }
    });
    const listWidth = Math.min(maxTokens, topk + sinks + local);
    const kernels: Kernels = {
      ...(trained
        ? {}
        : {
            keys: await gpu.pipeline(`dsa-index-keys-${slots.precision}-${slots.heads}-${slots.per}-${dtype}`, () =>
              indexKeysWgsl(slots, dtype),
            ),
            queries: await gpu.pipeline(
              `dsa-index-queries-${slots.precision}-${slots.heads}-${slots.per}-${dtype}`,
              () => indexQueriesWgsl(slots, dtype),
            ),
          }),
      lists: await gpu.pipeline('sparse-lists', sparseListsWgsl),
    };
    const owned: GPUBuffer[] = [];
    const make = async (bytes: number, label: string) => {
      const b = await gpu.createBuffer(bytes, label);
      owned.push(b);
      return b;
    };
    let select: ResidentSelection | undefined;
    let append: ResidentKvAppend | undefined;
    try {
      const kvBytes = kvHeads * maxTokens * D * bytesPerElement(dtype);
      const buf = {
        k: await make(kvBytes, 'dsa cache keys'),
        v: await make(kvBytes, 'dsa cache values'),
        ik: await make(maxTokens * keySlots(slots) * SW * 4, 'dsa index keys'),
        kscale: slots.precision === 'int8' ? await make(maxTokens * 4, 'dsa index key scales') : undefined,
        channels: await make(channels.byteLength, 'dsa index channels'),
        iq: await make(ix.heads * maxChunk * SW * 4, 'dsa index queries'),
        iw: await make(maxChunk * ix.heads * 4, 'dsa index weights'),
        picked: await make(maxChunk * topk * 4, 'dsa picks'),
        lists: await make(maxChunk * listWidth * 4, 'dsa key lists'),
      };
      gpu.write(buf.channels, 0, channels);
      if (trained) kernels.trained = await TrainedIndexProjection.create(gpu, trained, slots, buf, maxChunk);
      // A linear cache: position p in row p.
      const layout = { kvHeads, headDim: D, slots: maxTokens, sinks: 0, ring: maxTokens };
      append = await ResidentKvAppend.create(gpu, dtype, { k: buf.k, v: buf.v }, layout);
      select = await ResidentSelection.create(
        gpu,
        { slots, maxKeys: maxTokens, maxChunk, topk, scoreBudgetBytes: options.scoreBudgetBytes, decide },
        buf,
        buf.picked,
      );
      const scale = options.scale ?? 1 / Math.sqrt(D);
      const attend = await ResidentSparseAttention.create(gpu, {
        heads,
        kvHeads,
        headDim: D,
        dtype,
        scale,
        keyStride: maxTokens,
        listWidth,
        maxChunk,
      });
      const o = { ...options, maxChunk, scale, decide };
      delete (o as DsaGpuLayerOptions).scoreBudgetBytes;
      return new DsaGpuLayer(gpu, o, slots, kernels, buf, select, attend, append, listWidth);
    } catch (e) {
      kernels.trained?.destroy();
      select?.destroy();
      append?.destroy();
      owned.forEach((b) => gpu.release(b));
      throw e;
    }
  }

  get length(): number {
    return this.seen;
  }

  /** Bytes held: keys and values of the tokens so far, and their index keys (and scales). */
  get cacheBytes(): number {
    const o = this.o;
    const index = keySlots(this.slots) * slotWords(this.slots) * 4 + (this.buf.kscale ? 4 : 0);
    return this.seen * (2 * o.kvHeads * o.headDim * bytesPerElement(o.dtype) + index);
  }

  async forward(chunk: LayerChunk<GPUBuffer>): Promise<void> {
    const o = this.o;
    const { start: P, tokens: T } = chunk;
    if (P !== this.seen)
      throw new ShapeError(`dsa layer holds ${this.seen} tokens but the chunk starts at ${P}; reset() first`);
    if (!Number.isInteger(T) || T < 1 || T > o.maxChunk)
      throw new ShapeError(`dsa layer takes chunks of 1..${o.maxChunk} tokens, got ${T}`);
    if (P + T > o.maxTokens) throw new ShapeError(`dsa layer holds at most ${o.maxTokens} tokens (${P} + ${T})`);
    const gpu = this.gpu;
    const n = P + T;
    const middle = Math.max(0, n - o.local - o.sinks);
    const width = middle > 0 ? Math.min(o.topk, middle) : 0;
    const { q, k, v, out } = chunk;
    const b = this.buf;
    const kn = this.kernels;
    const groups = this.binds.get([q, k, v, out], () => [
      this.append.bind(k, v),
      ...(kn.keys && kn.queries
        ? [
            gpu.bind(kn.keys, [k, b.channels, b.ik, ...(b.kscale ? [b.kscale] : []), this.uniforms.project]),
            gpu.bind(kn.queries, [q, b.channels, b.iq, b.iw, this.uniforms.project]),
          ]
        : []),
      ...this.attend.bindings(q, b.k, b.v, b.lists, out),
    ]);
    const trained = kn.trained?.prepare(chunk.input, P, T);
    const append = this.append.prepare(P, T);
    writeUniform(
      gpu,
      this.uniforms.project,
      projectParams({ tokens: T, start: P, headDim: o.headDim, group: o.heads / o.indexer.heads }),
    );
    const [listCols, listRows] = wrapGrid(gpu, Math.ceil((T * this.listWidth) / LISTS_THREADS));
    writeUniform(
      gpu,
      this.uniforms.lists,
      sparseListsParams({
        tokens: T,
        start: P,
        sinks: o.sinks,
        local: o.local,
        middle,
        pickedWidth: width,
        listWidth: this.listWidth,
        columns: listCols,
      }),
    );
    const attend = this.attend.prepare(T, n, groups.slice(kn.keys ? 3 : 1));
    const blocks = width > 0 ? this.select.blocks(T, middle) : [];
    const runs = Math.max(1, blocks.length);
    for (let i = 0; i < runs; i++) {
      // Each block rewrites the selection uniforms, so each is its own submit (the queue keeps them in order).
      const selectBlock = blocks[i] && this.select.prepare(blocks[i], T, o.sinks, width);
      await gpu.run(
        'dsa layer',
        (pass) => {
          if (i === 0) {
            append(pass, groups[0]);
            if (trained) trained(pass);
            else {
              pass.setPipeline(kn.keys!);
              pass.setBindGroup(0, groups[1]);
              pass.dispatchWorkgroups(Math.ceil(T / PROJECT_THREADS));
              pass.setPipeline(kn.queries!);
              pass.setBindGroup(0, groups[2]);
              pass.dispatchWorkgroups(Math.ceil((o.indexer.heads * T) / PROJECT_THREADS));
            }
          }
          selectBlock?.(pass);
          if (i === runs - 1) {
            pass.setPipeline(kn.lists);
            pass.setBindGroup(0, this.listsGroup);
            pass.dispatchWorkgroups(listCols, listRows);
            attend(pass);
          }
        },
        true,
      );
    }
    this.seen = n;
  }

  reset(): void {
    this.seen = 0;
  }

  /** The kv rows and index keys read back (the int8 words unpacked to [n, D_I]), for a saved session. */
  async saveCache(): Promise<LayerCacheState> {
    const [IH, per] = [keySlots(this.slots), this.slots.per];
    const n = this.seen;
    const b = this.buf;
    const [k, v, ik, scales] = await this.gpu.readParts([
      [b.k, b.k.size],
      [b.v, b.v.size],
      [b.ik, n * IH * slotWords(this.slots) * 4],
      ...(b.kscale ? [[b.kscale, n * 4] as const] : []),
    ]);
    const typed = (x: ArrayBuffer) => (this.o.dtype === 'f16' ? new Uint16Array(x) : new Float32Array(x));
    let keys: Float32Array | Int8Array = new Float32Array(ik);
    if (b.kscale) {
      // Each head's slot is padded to whole words: its channels are the slot's first `per` bytes.
      const [words, out] = [new Int8Array(ik), new Int8Array(n * IH * per)];
      const slot = slotWords(this.slots) * 4;
      for (let r = 0; r < n * IH; r++) out.set(words.subarray(r * slot, r * slot + per), r * per);
      keys = out;
    }
    const ix = { keys, scales: scales && new Float32Array(scales) };
    return saveDsaCache(this.stateParams, n, this.kvImage(typed(k), typed(v)), IH * per, ix);
  }

  async restoreCache(state: LayerCacheState): Promise<boolean> {
    const o = this.stateParams;
    const [IH, per] = [keySlots(this.slots), this.slots.per];
    const n = state.tokens;
    if (!(n >= 0 && n <= o.maxTokens)) return false;
    const ix = dsaIndexKeys(state, o, IH * per, this.buf.kscale !== undefined);
    const { kvHeads, headDim, dtype, maxTokens } = o;
    const kv = { spec: state.spec, kvHeads, headDim, dtype, layout: RingLayout.dense(maxTokens) };
    if (!ix || !(await restoreGpuKvCache(this.gpu, { ...kv, k: this.buf.k, v: this.buf.v }, state))) return false;
    let words: ArrayBufferView = ix.keys;
    if (ix.scales) {
      words = padSlots(ix.keys as Int8Array, n * IH, per, slotWords(this.slots) * 4);
      this.gpu.write(this.buf.kscale!, 0, ix.scales as Float32Array<ArrayBuffer>);
    }
    this.gpu.write(this.buf.ik, 0, words.buffer as ArrayBuffer, words.byteOffset, words.byteLength);
    this.seen = n;
    return true;
  }

  /** What a saved state of this layer names (a trained indexer's keys are not a training-free one's). */
  private get stateParams() {
    return { ...this.o, trained: this.o.indexer.trained !== undefined };
  }

  /** The kv buffers' bytes as a dense kv cache: position p in row p of each head. */
  private kvImage(k: HostData, v: HostData): KvImage {
    const { kvHeads, headDim, dtype, maxTokens } = this.o;
    return { kvHeads, headDim, dtype, layout: RingLayout.dense(maxTokens), k, v };
  }

  destroy(): void {
    for (const x of Object.values(this.buf)) if (x) this.gpu.release(x);
    this.select.destroy();
    this.attend.destroy();
    this.append.destroy();
    for (const u of Object.values(this.uniforms)) u.destroy();
    this.binds.clear();
  }
}

/** Slots in one index key row: one shared key (trained), else one per index head. */
function keySlots(s: IndexerSlots): number {
  return s.shared ? 1 : s.heads;
}

/** Rows of `per` int8 channels, each padded to a slot of `slot` bytes (whole words) as the buffer lays them out:
 * the keys themselves when no row needs padding, else a byte loop (a subarray and a set per row took 0.34 s for
 * 32K tokens x 8 heads on the 2-core dev machine, ~1.3 us a row). */
function padSlots(keys: Int8Array, rows: number, per: number, slot: number): Int8Array {
  if (slot === per) return keys;
  const packed = new Int8Array(rows * slot);
  for (let r = 0; r < rows; r++) {
    const [from, to] = [r * per, r * slot];
    for (let c = 0; c < per; c++) packed[to + c] = keys[from + c];
  }
  return packed;
}
