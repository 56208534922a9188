// The WebGPU layer of every method whose cache is keys in rows (dense, flash, window, sinks, star, ring):
// the chunk's k and v are appended in place (kernels/kv-append-wgsl.ts), and attention reads the cache
// rows where they lie, with the kv row stride. A decoding step whose query sees every cached row runs over
// the rows in slot order (split-KV flash decoding on long caches); a prefill chunk runs over
// position-ordered rows under the method's mask: the cache itself while no row was overwritten, else the
// sinks and the ring unrolled into a shared scratch (prefill only: decoding never copies the past).
// Uniforms and bind groups are per call site (runtime/call-sites.ts): a warm decoding step allocates nothing.
import { ShapeError } from '../../errors.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { CallSites } from '../../runtime/call-sites.js';
import { DENSE_TILE, densePvWgsl, denseScoresWgsl, denseSoftmaxWgsl } from '../../kernels/dense-wgsl.js';
import { attentionParams } from '../../kernels/wgsl-common.js';
import type { AttentionShape } from '../../spine/problem.js';
import type { GpuInputs } from '../gpu-chunks.js';
import {
  flashCall,
  flashRecorder,
  gpuFlashTarget,
  prepareBlockMask,
  type FlashVariant,
  type GpuBlockMask,
} from '../flash.js';
import { createDecodeScratch, decodeSplitting, flashDecodeCalls, type DecodeScratch } from '../flash-decode.js';
import { decodeSplits } from '../../kernels/flash-decode-wgsl.js';
import { formatChoice, planFlash, type KernelChoice } from '../planner.js';
import { formatMethodSpec, type DecodeKernel, type MethodSpec } from '../spec.js';
import type { LayerAttention, LayerCacheState, LayerChunk, LayerDims } from '../layer.js';
import { restoreGpuKvCache, saveGpuKvCache, type GpuKvCache } from './kv-cache-gpu.js';
import { kvMethod, type KvMethod } from './kv-method.js';
import { kvAppendAtSite } from './kv-append-gpu.js';

/** Buffers every layer of a model shares: LSE, split-KV partials, and the position-ordered keys of a
 * prefill chunk over a wrapped ring (grown when a larger chunk comes). */
export class GpuLayerScratch {
  private packRows = 0;
  pack?: { k: GPUBuffer; v: GPUBuffer };

  private constructor(
    private readonly gpu: GpuContext,
    private readonly dims: LayerDims,
    readonly lse: GPUBuffer,
    readonly decode: DecodeScratch,
  ) {}

  static async create(gpu: GpuContext, dims: LayerDims): Promise<GpuLayerScratch> {
    const lse = await gpu.createBuffer(dims.heads * dims.chunk * 4, 'attention lse');
    return new GpuLayerScratch(gpu, dims, lse, await createDecodeScratch(gpu, dims.heads, dims.headDim));
  }

  async packFor(rows: number): Promise<{ k: GPUBuffer; v: GPUBuffer }> {
    if (!this.pack || rows > this.packRows) {
      this.releasePack();
      const bytes = this.dims.kvHeads * rows * this.dims.headDim * (this.dims.dtype === 'f16' ? 2 : 4);
      this.pack = {
        k: await this.gpu.createBuffer(bytes, 'packed keys'),
        v: await this.gpu.createBuffer(bytes, 'packed values'),
      };
      this.packRows = rows;
    }
    return this.pack;
  }

  private releasePack(): void {
    if (this.pack) [this.pack.k, this.pack.v].forEach((b) => this.gpu.release(b));
    this.pack = undefined;
  }

  destroy(): void {
    this.releasePack();
    [this.lse, this.decode.o, this.decode.lse].forEach((b) => this.gpu.release(b));
  }
}

/** What one attention call reads: rows of k and v (kvStride per head), nk keys, T queries. */
interface Keys {
  k: GPUBuffer;
  v: GPUBuffer;
  nk: number;
  kvStride: number;
  causal: boolean;
  allVisible: boolean;
  blocks?: GpuBlockMask;
}

export class GpuKvLayer implements LayerAttention<GPUBuffer> {
  readonly spec: string;
  private length = 0;
  private readonly sites: CallSites;
  /** Dense layers: one score matrix per query head, grown to the largest chunk seen. */
  private scores: GPUBuffer[] = [];
  private scoreBytes = 0;

  private constructor(
    private readonly gpu: GpuContext,
    private readonly dims: LayerDims,
    private readonly method: KvMethod,
    private readonly cacheK: GPUBuffer,
    private readonly cacheV: GPUBuffer,
    private readonly scratch: GpuLayerScratch,
  ) {
    this.spec = formatMethodSpec(method.spec);
    this.sites = new CallSites(gpu, `${this.spec} layer`);
  }

  static async create(
    gpu: GpuContext,
    dims: LayerDims,
    spec: MethodSpec,
    scratch: GpuLayerScratch,
  ): Promise<GpuKvLayer> {
    const method = kvMethod(spec, dims.maxTokens, dims.ring ?? true);
    const bytes = dims.kvHeads * method.layout.slots * dims.headDim * (dims.dtype === 'f16' ? 2 : 4);
    const k = await gpu.createBuffer(bytes, `${spec.name} K cache`);
    const v = await gpu.createBuffer(bytes, `${spec.name} V cache`).catch((e) => {
      gpu.release(k);
      throw e;
    });
    return new GpuKvLayer(gpu, dims, method, k, v, scratch);
  }

  /** The cache read back, for a saved session (kv-cache-gpu.ts). */
  async saveCache(): Promise<LayerCacheState> {
    return saveGpuKvCache(this.gpu, this.cacheImage(), this.length);
  }

  async restoreCache(state: LayerCacheState): Promise<boolean> {
    if (state.spec !== this.spec || state.tokens > this.dims.maxTokens) return false;
    if (!(await restoreGpuKvCache(this.gpu, this.cacheImage(), state))) return false;
    this.length = state.tokens;
    return true;
  }

  private cacheImage(): GpuKvCache {
    const { kvHeads, headDim, dtype } = this.dims;
    return { spec: this.spec, kvHeads, headDim, dtype, layout: this.method.layout, k: this.cacheK, v: this.cacheV };
  }

  /** Bytes of the rows held now (the cache is allocated once for the run: layout.slots rows per head). */
  get cacheBytes(): number {
    const rows = this.method.layout.held(this.length);
    return 2 * this.dims.kvHeads * rows * this.dims.headDim * (this.dims.dtype === 'f16' ? 2 : 4);
  }

  get plan(): string {
    const { layout } = this.method;
    const d = this.dims;
    const asked = this.method.decode;
    const kernel = (queries: number, keys: number, decode: boolean) =>
      this.method.kernel === 'dense'
        ? 'dense: materialised scores'
        : formatChoice(
            withDecodeKernel(
              planFlash(
                gpuFlashTarget(this.gpu, {
                  dtype: d.dtype,
                  headDim: d.headDim,
                  queries,
                  keys,
                  allKeysVisible: decode,
                  masked: !decode && this.method.mask(d.maxTokens) !== undefined,
                }),
                this.method.variant,
              ),
              asked,
              keys,
            ),
          );
    const cache =
      layout.sinks || layout.slots < d.maxTokens
        ? `ring of ${layout.sinks} sinks + ${layout.ring} rows`
        : `${layout.slots} rows`;
    return `${this.spec}: cache ${cache}; prefill ${kernel(d.chunk, d.maxTokens, false)}; decode ${kernel(1, layout.held(d.maxTokens), true)}`;
  }

  reset(): void {
    this.length = 0;
  }

  destroy(): void {
    [this.cacheK, this.cacheV, ...this.scores].forEach((b) => this.gpu.release(b));
    this.scores = [];
    this.sites.destroy();
  }

  async forward(c: LayerChunk<GPUBuffer>): Promise<void> {
    const { start, tokens: T } = c;
    if (start !== this.length)
      throw new ShapeError(`${this.spec} layer holds ${this.length} tokens; a chunk came at ${start}`);
    if (T > this.dims.chunk || start + T > this.dims.maxTokens)
      throw new ShapeError(
        `${this.spec} layer: chunk of ${T} at ${start} exceeds the run (${this.dims.maxTokens}, chunks of ${this.dims.chunk})`,
      );
    this.sites.begin();
    const layout = this.method.layout;
    const end = start + T;
    const stride = layout.slots;
    const d = this.dims;
    const rowBytes = d.headDim * (d.dtype === 'f16' ? 2 : 4);
    let keys: Keys;
    let copies: ((enc: GPUCommandEncoder) => void) | undefined;
    const mask = () => this.method.mask(c.promptTokens);
    if (T === 1 && this.method.seesAllRows(start, c.promptTokens)) {
      keys = {
        k: this.cacheK,
        v: this.cacheV,
        nk: layout.held(end),
        kvStride: stride,
        causal: false,
        allVisible: true,
      };
    } else if (layout.inOrder(end)) {
      keys = { k: this.cacheK, v: this.cacheV, nk: end, kvStride: stride, causal: true, allVisible: false };
    } else {
      const past = layout.past(start);
      const n = past.sinks + (start - past.first) + T;
      const pack = await this.scratch.packFor(n);
      keys = { k: pack.k, v: pack.v, nk: n, kvStride: n, causal: true, allVisible: false };
      const runs = [...layout.runs(0, past.sinks), ...layout.runs(past.first, start)];
      copies = (enc) => {
        for (let h = 0; h < d.kvHeads; h++)
          for (const [cache, chunk, packed] of [
            [this.cacheK, c.k, pack.k],
            [this.cacheV, c.v, pack.v],
          ] as const) {
            let at = h * n;
            for (const r of runs) {
              enc.copyBufferToBuffer(cache, (h * stride + r.slot) * rowBytes, packed, at * rowBytes, r.rows * rowBytes);
              at += r.rows;
            }
            enc.copyBufferToBuffer(chunk, h * T * rowBytes, packed, at * rowBytes, T * rowBytes);
          }
      };
    }
    const m = keys.allVisible ? undefined : mask();
    if (m && this.method.kernel === 'flash')
      keys.blocks = await prepareBlockMask(this.gpu, m, T, keys.nk, d.headDim, d.dtype, this.method.variant);
    try {
      const record = await this.attention(c, keys);
      const append = await kvAppendAtSite(
        this.gpu,
        this.sites,
        d.dtype,
        { k: this.cacheK, v: this.cacheV },
        { kvHeads: d.kvHeads, headDim: d.headDim, slots: stride, sinks: layout.sinks, ring: layout.ring },
        { start, tokens: T, k: c.k, v: c.v },
      );
      await this.gpu.encode(
        `${this.spec} attention`,
        (enc) => {
          copies?.(enc);
          const pass = enc.beginComputePass();
          append(pass);
          record(pass);
          pass.end();
        },
        true,
      );
    } finally {
      keys.blocks?.release();
    }
    this.length = end;
  }

  /** Prepares the attention dispatches over `keys` (pipelines, uniforms); returns their recorder. */
  private async attention(c: LayerChunk<GPUBuffer>, keys: Keys): Promise<(pass: GPUComputePassEncoder) => void> {
    const d = this.dims;
    const shape: AttentionShape = {
      heads: d.heads,
      kvHeads: d.kvHeads,
      queries: c.tokens,
      keys: keys.nk,
      headDim: d.headDim,
      causal: keys.causal,
      scale: 1 / Math.sqrt(d.headDim),
    };
    const x: GpuInputs = { q: c.q, k: keys.k, v: keys.v, o: c.out, lse: this.scratch.lse, shape, dtype: d.dtype };
    if (this.method.kernel === 'dense') return this.dense(x, keys.kvStride);
    const plan = planFlash(
      gpuFlashTarget(this.gpu, {
        dtype: d.dtype,
        headDim: d.headDim,
        queries: c.tokens,
        keys: keys.nk,
        allKeysVisible: keys.allVisible,
        masked: keys.blocks !== undefined,
      }),
      this.method.variant,
    );
    if (plan.version === 'split-kv-decode') {
      const calls = await flashDecodeCalls(this.gpu, x, this.scratch.decode, keys.kvStride, this.method.decode);
      const u = this.sites.uniform(calls.params);
      return (pass) => {
        this.sites.dispatch(pass, calls.partial.pipeline, [...calls.partial.buffers, u], calls.partial.groups);
        this.sites.dispatch(pass, calls.merge.pipeline, [...calls.merge.buffers, u], calls.merge.groups);
      };
    }
    // The tiled version the planner chose (tc2 where the device has the tensor cores and the memory).
    const call = await flashCall(
      this.gpu,
      x,
      plan.version as FlashVariant,
      keys.blocks,
      keys.kvStride,
      this.method.vcheck,
    );
    return flashRecorder(this.sites, call);
  }

  /** Dense attention: per query head, scores [T, nk] materialised, softmaxed in place, times V. */
  private async dense(x: GpuInputs, kvStride: number): Promise<(pass: GPUComputePassEncoder) => void> {
    const s = x.shape;
    const bytes = s.queries * s.keys * 4;
    if (bytes > this.scoreBytes) {
      this.scores.forEach((b) => this.gpu.release(b));
      this.scores = [];
      const size = Math.max(bytes, s.queries * this.method.layout.slots * 4);
      for (let h = 0; h < s.heads; h++) this.scores.push(await this.gpu.createBuffer(size, `dense scores head ${h}`));
      this.scoreBytes = size;
    }
    const scorePipe = await this.gpu.pipeline(`dense-scores-${s.headDim}-${x.dtype}`, () =>
      denseScoresWgsl(s.headDim, x.dtype),
    );
    const softPipe = await this.gpu.pipeline('dense-softmax', denseSoftmaxWgsl);
    const pvPipe = await this.gpu.pipeline(`dense-pv-${s.headDim}-${x.dtype}`, () => densePvWgsl(s.headDim, x.dtype));
    const group = s.heads / s.kvHeads;
    const uniforms = this.scores.map((_, h) =>
      this.sites.uniform(
        attentionParams({
          queries: s.queries,
          keys: s.keys,
          group,
          causal: s.causal,
          scale: s.scale,
          head: h,
          kvStride,
        }),
      ),
    );
    return (pass) => {
      for (let h = 0; h < s.heads; h++) {
        const u = uniforms[h];
        this.sites.dispatch(
          pass,
          scorePipe,
          [x.q, x.k, this.scores[h], u],
          [Math.ceil(s.keys / DENSE_TILE), Math.ceil(s.queries / DENSE_TILE)],
        );
        this.sites.dispatch(
          pass,
          softPipe,
          [this.scores[h], x.lse, u],
          [Math.min(s.queries, 65535), Math.ceil(s.queries / 65535)],
        );
        this.sites.dispatch(
          pass,
          pvPipe,
          [this.scores[h], x.v, x.o, u],
          [Math.ceil(s.headDim / DENSE_TILE), Math.ceil(s.queries / DENSE_TILE)],
        );
      }
    };
  }
}

/** A split-KV decoding choice names the decode kernel the spec asked for (decode=), else the default. */
function withDecodeKernel(c: KernelChoice, asked: DecodeKernel, keys: number): KernelChoice {
  if (!c.splits || asked === 'auto') return c;
  return {
    ...c,
    ...decodeSplits(keys, decodeSplitting(asked)),
    kernel: asked,
    reason: `${c.reason}; ${asked} asked for`,
  };
}
