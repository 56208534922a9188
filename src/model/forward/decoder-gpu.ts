// The decoder on WebGPU: weights uploaded once (decoded to f32), activations and KV caches stay on the
// GPU; only token ids, RoPE's cos/sin (float64 on the host) go up and the last logits come down.
// Attention runs through the library's GPU kernels (flash with the method's block mask, or dense) on
// the cache rows; a method without a GPU entry here (cca, dsa, ...) goes through attention() on host copies.
import { ShapeError, UnsupportedError } from '../../errors.js';
import { float32ToHalf } from '../../f16.js';
import { asFloat32, tensor, type Tensor } from '../../tensor.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { cpuDevice, type Device } from '../../runtime/device.js';
import type { CcaKVCache } from '../../attention/cca-cache.js';
import { ccaLayerCache, checkDecoderMethod } from '../caches/method-caches.js';
import { StarMasks } from '../caches/star-layers.js';
import { attention } from '../../attention/attention.js';
import { flashAttentionGpu, prepareBlockMask, type FlashVariant, type GpuBlockMask } from '../../attention/flash.js';
import { denseAttentionGpu } from '../../attention/dense.js';
import { sparseGatherGpu, type GatheredKeys } from '../../attention/dsa.js';
import { DsaLayer, dsaLayerParams } from '../caches/dsa-layer.js';
import { maskForSpec } from '../../attention/sparse.js';
import { choiceParam, type MethodSpec } from '../../attention/spec.js';
import type { LayerSchedule } from '../../attention/sparse.js';
import type { AttentionShape } from '../../spine/problem.js';
import {
  MATMUL_TILE,
  MATVEC_ROWS_PER_DIM,
  matmulParams,
  matmulTiledWgsl,
  matvecWgsl,
} from '../../kernels/matmul-wgsl.js';
import { rmsNormParams, rmsNormWgsl } from '../../kernels/rmsnorm-wgsl.js';
import { ROPE_THREADS, ropeParams, ropeWgsl } from '../../kernels/rope-wgsl.js';
import {
  ELEMENTWISE_THREADS,
  addWgsl,
  elementwiseParams,
  embeddingWgsl,
  grid,
  headsToTokensWgsl,
  swigluWgsl,
} from '../../kernels/elementwise-wgsl.js';
import { WeightMatrix } from '../../weights/weight-matrix.js';
import type { Decoder, DecoderOptions } from './decoder-cpu.js';
import { ropeAttentionFactor, ropeInverseFrequencies } from '../positions/rope.js';
import type { LoadedModel, ModelConfig, WeightTensor } from '../types.js';

/** The ring a window or sinks layer keeps, when narrower than the run (as cacheForMethod on the CPU). */
function ringOf(method: MethodSpec, maxTokens: number): { sinks: number; size: number } | undefined {
  if (method.name !== 'window' && method.name !== 'sinks') return undefined;
  const left = Number(method.params.left);
  const sinks = method.name === 'sinks' ? Number(method.params.tokens) : 0;
  return sinks + left + 1 < maxTokens ? { sinks, size: left + 1 } : undefined;
}

interface GpuLayer {
  attnNorm: GPUBuffer;
  ffnNorm: GPUBuffer;
  wq: GPUBuffer;
  wk: GPUBuffer;
  wv: GPUBuffer;
  wo: GPUBuffer;
  bq?: GPUBuffer;
  bk?: GPUBuffer;
  bv?: GPUBuffer;
  wGate: GPUBuffer;
  wUp: GPUBuffer;
  wDown: GPUBuffer;
  cacheK: GPUBuffer;
  cacheV: GPUBuffer;
  /** Rows per head of the cache: every position (dense), or sinks + a ring of window + 1 (window, sinks). */
  slots: number;
  ring?: { sinks: number; size: number };
  /** CCA layers keep their compressed cache on the host (attention/cca-cache.ts) and attend there. */
  cca?: CcaKVCache;
  /** DSA layers: index keys and selection on the host (from the chunk's q and k read back), gathered attention here. */
  dsa?: DsaLayer;
  method: MethodSpec;
}

type Pipelines = Record<
  'matvec' | 'matmul' | 'rmsnorm' | 'rope' | 'embedding' | 'add' | 'swiglu' | 'heads',
  GPUComputePipeline
>;
type Act = Record<
  | 'x'
  | 'h'
  | 'q'
  | 'k'
  | 'v'
  | 'qh'
  | 'kAttn'
  | 'vAttn'
  | 'oh'
  | 'o'
  | 'lse'
  | 'proj'
  | 'gate'
  | 'up'
  | 'last'
  | 'logits'
  | 'ids'
  | 'rope'
  | 'none'
  | 'kChunk'
  | 'vChunk'
  | 'dsaIndices',
  GPUBuffer
>;

export class GpuDecoder implements Decoder {
  private pos = 0;
  private readonly starMasks: StarMasks;
  /** The block mask of the last decoding step, per masked method (see attend). */
  private readonly decodeMasks = new Map<string, { n: number; blocks: GpuBlockMask }>();
  /** Storage of matrices, Q and the KV cache; activations and accumulations are f32 either way. */
  private readonly storage: 'f32' | 'f16';
  private readonly elementBytes: number;
  /** Uniform buffers by call site (the n-th dispatch of a chunk), rewritten each chunk: none is allocated per token. */
  private uniformSlots: GPUBuffer[] = [];
  private nextSlot = 0;
  /** Bind groups by uniform slot and pipeline: a call site always binds the same buffers. */
  private bindGroups = new Map<GPUBuffer, Map<GPUComputePipeline, GPUBindGroup>>();

  private constructor(
    private readonly gpu: GpuContext,
    readonly config: ModelConfig,
    private readonly layers: GpuLayer[],
    private readonly embedding: GPUBuffer,
    private readonly output: GPUBuffer,
    private readonly outputNorm: GPUBuffer,
    private readonly act: Act,
    private readonly pipes: Pipelines,
    private readonly chunk: number,
    private readonly opts: DecoderOptions,
    private readonly owned: GPUBuffer[],
  ) {
    this.storage = opts.storage ?? 'f32';
    this.elementBytes = this.storage === 'f16' ? 2 : 4;
    this.starMasks = new StarMasks(opts.maxTokens);
  }

  static async create(
    gpu: GpuContext,
    model: LoadedModel,
    schedule: LayerSchedule,
    opts: DecoderOptions,
  ): Promise<GpuDecoder> {
    const c = model.config;
    const owned: GPUBuffer[] = [];
    try {
      const storage = opts.storage ?? 'f32';
      if (storage === 'f16' && !gpu.features.f16)
        throw new UnsupportedError('f16 storage needs a device with shader-f16; use storage f32');
      const e = storage === 'f16' ? 2 : 4;
      // Matrices in the storage type; norm weights and biases (vectors) stay f32.
      const up = async (w: WeightTensor) => {
        const values = new WeightMatrix(w).toFloat32();
        const b = await gpu.upload(storage === 'f16' && w.shape.length === 2 ? float32ToHalf(values) : values, w.name);
        owned.push(b);
        return b;
      };
      const buf = async (floats: number, label: string, bytesPer = 4) => {
        const b = await gpu.createBuffer(Math.max(1, floats) * bytesPer, label);
        owned.push(b);
        return b;
      };
      const cap = opts.maxTokens;
      const chunk = Math.max(1, Math.min(opts.chunk ?? 512, cap));
      const [H, D, Hq, Hkv, F, V] = [c.hiddenSize, c.headDim, c.heads, c.kvHeads, c.intermediateSize, c.vocabSize];
      const layers: GpuLayer[] = [];
      let packed = 1;
      for (const [i, l] of model.weights.layers.entries()) {
        const method = schedule.methodFor(i);
        checkDecoderMethod(method);
        const cca = ccaLayerCache(c, method, storage);
        const ring = ringOf(method, cap);
        const slots = cca ? 0 : ring ? ring.sinks + ring.size : cap;
        packed = Math.max(packed, cca ? chunk : ring ? Math.min(cap, slots + chunk) : cap);
        layers.push({
          attnNorm: await up(l.attnNorm),
          ffnNorm: await up(l.ffnNorm),
          wq: await up(l.wq),
          wk: await up(l.wk),
          wv: await up(l.wv),
          wo: await up(l.wo),
          bq: l.bq && (await up(l.bq)),
          bk: l.bk && (await up(l.bk)),
          bv: l.bv && (await up(l.bv)),
          wGate: await up(l.wGate),
          wUp: await up(l.wUp),
          wDown: await up(l.wDown),
          cacheK: await buf(Hkv * slots * D, `layer ${i} K cache`, e),
          cacheV: await buf(Hkv * slots * D, `layer ${i} V cache`, e),
          slots,
          ring,
          method,
          cca,
          dsa: method.name === 'dsa' ? new DsaLayer(l, c, dsaLayerParams(method), cap) : undefined,
        });
      }
      const embedding = await up(model.weights.tokenEmbedding);
      const output = model.weights.output ? await up(model.weights.output) : embedding;
      const outputNorm = await up(model.weights.outputNorm);
      const act: Act = {
        x: await buf(chunk * H, 'x'),
        h: await buf(chunk * H, 'h'),
        q: await buf(chunk * Hq * D, 'q'),
        k: await buf(chunk * Hkv * D, 'k'),
        v: await buf(chunk * Hkv * D, 'v'),
        qh: await buf(chunk * Hq * D, 'q heads', e),
        kAttn: await buf(Hkv * packed * D, 'attention keys', e),
        vAttn: await buf(Hkv * packed * D, 'attention values', e),
        kChunk: await buf(Hkv * chunk * D, 'chunk keys', e),
        vChunk: await buf(Hkv * chunk * D, 'chunk values', e),
        oh: await buf(chunk * Hq * D, 'attention out'),
        o: await buf(chunk * Hq * D, 'o'),
        lse: await buf(chunk * Hq, 'lse'),
        proj: await buf(chunk * H, 'proj'),
        gate: await buf(chunk * F, 'gate'),
        up: await buf(chunk * F, 'up'),
        last: await buf(H, 'last'),
        logits: await buf(V, 'logits'),
        ids: await buf(chunk, 'ids'),
        rope: await buf(chunk * D, 'rope cos sin'),
        none: await buf(4, 'no bias'),
        dsaIndices: await buf(chunk * Math.max(1, ...layers.map((l) => l.dsa?.width ?? 0)), 'dsa key lists'),
      };
      const pipes: Pipelines = {
        matvec: await gpu.pipeline(`model-matvec-${storage}`, () => matvecWgsl(storage)),
        matmul: await gpu.pipeline(`model-matmul-${storage}`, () => matmulTiledWgsl(storage)),
        rmsnorm: await gpu.pipeline('model-rmsnorm', rmsNormWgsl),
        rope: await gpu.pipeline(`model-rope-${storage}`, () => ropeWgsl(storage)),
        embedding: await gpu.pipeline(`model-embedding-${storage}`, () => embeddingWgsl(storage)),
        add: await gpu.pipeline('model-add', addWgsl),
        swiglu: await gpu.pipeline('model-swiglu', swigluWgsl),
        heads: await gpu.pipeline('model-heads', headsToTokensWgsl),
      };
      return new GpuDecoder(gpu, c, layers, embedding, output, outputNorm, act, pipes, chunk, opts, owned);
    } catch (e) {
      owned.forEach((b) => gpu.release(b));
      throw e;
    }
  }

  get position(): number {
    return this.pos;
  }

  get cacheBytes(): number {
    return this.layers.reduce(
      (sum, l) =>
        sum +
        (l.cca ? l.cca.bytes : 2 * this.config.kvHeads * l.slots * this.config.headDim * this.elementBytes) +
        (l.dsa?.bytes ?? 0),
      0,
    );
  }

  reset(): void {
    this.pos = 0;
    for (const l of this.layers) {
      if (l.cca) l.cca = ccaLayerCache(this.config, l.method, this.storage);
      l.dsa?.reset();
    }
  }

  destroy(): void {
    this.decodeMasks.forEach((m) => m.blocks.release());
    this.decodeMasks.clear();
    this.owned.forEach((b) => this.gpu.release(b));
    this.owned.length = 0;
    this.uniformSlots.forEach((u) => u.destroy());
    this.uniformSlots = [];
    this.bindGroups.clear();
  }

  async forward(tokens: readonly number[]): Promise<Float32Array> {
    if (tokens.length === 0) throw new ShapeError('forward needs at least one token');
    if (this.pos + tokens.length > this.opts.maxTokens)
      throw new ShapeError(
        `the run was sized for ${this.opts.maxTokens} tokens; ${this.pos} + ${tokens.length} exceed it`,
      );
    if (this.pos === 0) {
      // A new sequence: Star's mask follows its prompt, so no decoding mask carries over.
      this.starMasks.begin(tokens.length);
      this.decodeMasks.forEach((m) => m.blocks.release());
      this.decodeMasks.clear();
    }
    for (let a = 0; a < tokens.length; a += this.chunk)
      await this.forwardChunk(tokens.slice(a, a + this.chunk), a + this.chunk >= tokens.length);
    const logits = new Float32Array(await this.gpu.read(this.act.logits, this.config.vocabSize * 4));
    return logits;
  }

  /** The next call site's uniform buffer holding `words` (queue writes land after earlier submits). */
  private uniform(words: ArrayBuffer): GPUBuffer {
    let u = this.uniformSlots[this.nextSlot];
    if (!u) {
      u = this.gpu.device.createBuffer({
        size: 32,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: `decoder uniform ${this.nextSlot}`,
      });
      this.uniformSlots.push(u);
    }
    this.nextSlot++;
    this.gpu.device.queue.writeBuffer(u, 0, words);
    return u;
  }

  private dispatch(
    pass: GPUComputePassEncoder,
    pipe: GPUComputePipeline,
    buffers: GPUBuffer[],
    x: number,
    y = 1,
  ): void {
    pass.setPipeline(pipe);
    const params = buffers[buffers.length - 1];
    let byPipe = this.bindGroups.get(params);
    if (!byPipe) this.bindGroups.set(params, (byPipe = new Map()));
    let group = byPipe.get(pipe);
    if (!group) byPipe.set(pipe, (group = this.gpu.bind(pipe, buffers)));
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(x, y);
  }

  private matmul(
    pass: GPUComputePassEncoder,
    x: GPUBuffer,
    w: GPUBuffer,
    y: GPUBuffer,
    T: number,
    n: number,
    k: number,
    bias?: GPUBuffer,
  ): void {
    const params = this.uniform(matmulParams(T, n, k, bias !== undefined));
    const bound = [x, w, bias ?? this.act.none, y, params];
    if (T === 1)
      this.dispatch(
        pass,
        this.pipes.matvec,
        bound,
        Math.min(n, MATVEC_ROWS_PER_DIM),
        Math.ceil(n / MATVEC_ROWS_PER_DIM),
      );
    else this.dispatch(pass, this.pipes.matmul, bound, Math.ceil(n / MATMUL_TILE), Math.ceil(T / MATMUL_TILE));
  }

  private elementwise(
    pass: GPUComputePassEncoder,
    pipe: GPUComputePipeline,
    buffers: GPUBuffer[],
    n: number,
    a = 0,
    b = 0,
    c = 0,
  ): void {
    this.dispatch(
      pass,
      pipe,
      [...buffers, this.uniform(elementwiseParams(n, a, b, c))],
      ...grid(n, ELEMENTWISE_THREADS),
    );
  }

  private ropeTable(T: number): Float32Array<ArrayBuffer> {
    const c = this.config;
    const half = c.headDim / 2;
    const inv = ropeInverseFrequencies(c);
    const factor = ropeAttentionFactor(c);
    const table = new Float32Array(2 * T * half);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < half; i++) {
        const angle = (this.pos + t) * inv[i];
        table[t * half + i] = Math.cos(angle) * factor;
        table[(T + t) * half + i] = Math.sin(angle) * factor;
      }
    }
    return table;
  }

  private async forwardChunk(tokens: readonly number[], last: boolean): Promise<void> {
    this.nextSlot = 0;
    const c = this.config;
    const gpu = this.gpu;
    const a = this.act;
    const T = tokens.length;
    const [H, D, Hq, Hkv, F] = [c.hiddenSize, c.headDim, c.heads, c.kvHeads, c.intermediateSize];
    const cap = this.opts.maxTokens;
    for (const id of tokens)
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize)
        throw new ShapeError(`token id ${id} is outside the vocabulary (0..${c.vocabSize - 1})`);
    gpu.device.queue.writeBuffer(a.ids, 0, new Uint32Array(tokens));
    gpu.device.queue.writeBuffer(a.rope, 0, this.ropeTable(T));
    await gpu.run('embedding', (pass) =>
      this.elementwise(pass, this.pipes.embedding, [this.embedding, a.ids, a.x], T * H, H),
    );
    const rope = (
      pass: GPUComputePassEncoder,
      src: GPUBuffer,
      dst: GPUBuffer,
      heads: number,
      stride: number,
      offset: number,
      rotate: boolean,
    ) => {
      const params = this.uniform(
        ropeParams({
          tokens: T,
          heads,
          headDim: D,
          stride,
          offset,
          rotate,
          interleaved: c.ropeLayout === 'interleaved',
        }),
      );
      this.dispatch(pass, this.pipes.rope, [src, a.rope, dst, params], ...grid((T * heads * D) / 2, ROPE_THREADS));
    };
    for (const [li, layer] of this.layers.entries()) {
      await gpu.run('attention inputs', (pass) => {
        this.dispatch(
          pass,
          this.pipes.rmsnorm,
          [a.x, layer.attnNorm, a.h, this.uniform(rmsNormParams(T, H, c.rmsNormEps))],
          T,
        );
        this.matmul(pass, a.h, layer.wq, a.q, T, Hq * D, H, layer.bq);
        this.matmul(pass, a.h, layer.wk, a.k, T, Hkv * D, H, layer.bk);
        this.matmul(pass, a.h, layer.wv, a.v, T, Hkv * D, H, layer.bv);
        rope(pass, a.q, a.qh, Hq, T, 0, true);
        // The chunk's rotated keys alone: ring and CCA layers store them, DSA layers and observers read them.
        if (layer.ring || layer.cca || layer.dsa || this.opts.observe) rope(pass, a.k, a.kChunk, Hkv, T, 0, true);
        if (layer.ring || layer.cca) {
          rope(pass, a.v, a.vChunk, Hkv, T, 0, false);
        } else {
          rope(pass, a.k, layer.cacheK, Hkv, cap, this.pos, true);
          rope(pass, a.v, layer.cacheV, Hkv, cap, this.pos, false);
        }
      });
      // The kernels read keys [Hkv, n, D] in position order: pack them from the cache rows of each head.
      const enc = gpu.device.createCommandEncoder({ label: 'pack KV' });
      const n = layer.cca ? T : layer.ring ? this.packRing(enc, layer, layer.ring, T) : this.pos + T;
      if (!layer.ring && !layer.cca) {
        for (let h = 0; h < Hkv; h++) {
          const row = D * this.elementBytes;
          enc.copyBufferToBuffer(layer.cacheK, h * cap * row, a.kAttn, h * n * row, n * row);
          enc.copyBufferToBuffer(layer.cacheV, h * cap * row, a.vAttn, h * n * row, n * row);
        }
      }
      gpu.device.queue.submit([enc.finish()]);
      if (layer.dsa || this.opts.observe) await this.observeChunk(li, layer, T);
      if (layer.cca) await this.attendCca(layer.cca, T);
      else if (layer.dsa) await this.attendDsa(layer.dsa, T, n);
      else await this.attend(layer.method, T, n);
      await gpu.run('attention output and MLP', (pass) => {
        this.elementwise(pass, this.pipes.heads, [a.oh, a.o], T * Hq * D, T, Hq, D);
        this.matmul(pass, a.o, layer.wo, a.proj, T, H, Hq * D);
        this.elementwise(pass, this.pipes.add, [a.x, a.proj], T * H);
        this.dispatch(
          pass,
          this.pipes.rmsnorm,
          [a.x, layer.ffnNorm, a.h, this.uniform(rmsNormParams(T, H, c.rmsNormEps))],
          T,
        );
        this.matmul(pass, a.h, layer.wGate, a.gate, T, F, H);
        this.matmul(pass, a.h, layer.wUp, a.up, T, F, H);
        this.elementwise(pass, this.pipes.swiglu, [a.gate, a.up], T * F);
        this.matmul(pass, a.gate, layer.wDown, a.proj, T, H, F);
        this.elementwise(pass, this.pipes.add, [a.x, a.proj], T * H);
      });
    }
    this.pos += T;
    if (!last) return;
    await gpu.run('logits', (pass) => {
      this.dispatch(
        pass,
        this.pipes.rmsnorm,
        [a.x, this.outputNorm, a.last, this.uniform(rmsNormParams(1, H, c.rmsNormEps, T - 1))],
        1,
      );
      this.matmul(pass, a.last, this.output, a.logits, 1, c.vocabSize, H);
    });
  }

  /**
   * Ring layers (the GPU form of kv-cache.ts's RingKVCache): sinks, the ring unrolled into position order
   * and the chunk are copied into the packed keys; then the chunk is stored into its ring slots. Returns
   * the packed length. Only copies: at most 4 per head and tensor.
   */
  private packRing(enc: GPUCommandEncoder, layer: GpuLayer, ring: { sinks: number; size: number }, T: number): number {
    const c = this.config;
    const a = this.act;
    const D = c.headDim;
    const rowBytes = D * this.elementBytes;
    const { sinks, size } = ring;
    const slot = (p: number) => (p < sinks ? p : sinks + ((p - sinks) % size));
    const sinksHeld = Math.min(this.pos, sinks);
    const ringFirst = Math.max(sinksHeld, this.pos - size);
    const n = sinksHeld + (this.pos - ringFirst) + T;
    for (let h = 0; h < c.kvHeads; h++) {
      for (const [cache, chunk, packed] of [
        [layer.cacheK, a.kChunk, a.kAttn],
        [layer.cacheV, a.vChunk, a.vAttn],
      ] as const) {
        const cacheRow = (r: number) => (h * layer.slots + r) * rowBytes;
        const packedRow = (r: number) => (h * n + r) * rowBytes;
        if (sinksHeld > 0) enc.copyBufferToBuffer(cache, cacheRow(0), packed, packedRow(0), sinksHeld * rowBytes);
        let at = sinksHeld;
        for (let p = ringFirst; p < this.pos; ) {
          const s = slot(p);
          const len = Math.min(this.pos - p, sinks + size - s);
          enc.copyBufferToBuffer(cache, cacheRow(s), packed, packedRow(at), len * rowBytes);
          at += len;
          p += len;
        }
        enc.copyBufferToBuffer(chunk, h * T * rowBytes, packed, packedRow(at), T * rowBytes);
        // Store the chunk: sink positions, then the last `size` others (earlier ones would be overwritten).
        const end = this.pos + T;
        for (let p = this.pos; p < end; ) {
          if (p >= sinks && p < end - size) {
            p = end - size;
            continue;
          }
          const s = slot(p);
          const len = p < sinks ? Math.min(sinks - p, end - p) : Math.min(end - p, sinks + size - s);
          enc.copyBufferToBuffer(chunk, (h * T + p - this.pos) * rowBytes, cache, cacheRow(s), len * rowBytes);
          p += len;
        }
      }
    }
    return n;
  }

  /** Attention of the chunk's T queries (a.qh) over the n packed keys (a.kAttn, a.vAttn) into a.oh. */
  private async attend(method: MethodSpec, T: number, n: number): Promise<void> {
    const c = this.config;
    const a = this.act;
    const shape: AttentionShape = {
      heads: c.heads,
      kvHeads: c.kvHeads,
      queries: T,
      keys: n,
      headDim: c.headDim,
      causal: true,
      scale: 1 / Math.sqrt(c.headDim),
    };
    const inputs = { q: a.qh, k: a.kAttn, v: a.vAttn, o: a.oh, lse: a.lse, shape, dtype: this.storage };
    switch (method.name) {
      case 'dense':
        return denseAttentionGpu(this.gpu, inputs);
      case 'flash':
      case 'window':
      case 'sinks':
      case 'star':
      case 'ring': {
        const variant =
          method.name === 'star' || method.name === 'ring'
            ? 'auto'
            : (choiceParam(
                method,
                'variant',
                ['auto', 'portable', 'subgroup-matrix'] as const,
                'auto',
              ) as FlashVariant);
        const mask =
          method.name === 'star'
            ? this.starMasks.mask(method)
            : method.name === 'ring'
              ? undefined
              : maskForSpec(method, true);
        if (!mask) return flashAttentionGpu(this.gpu, inputs, variant);
        // Decoding steps reuse their block mask while (T, n) stay the same — always, once a ring is full —
        // so a window layer uploads nothing per token; one mask is kept per method.
        const key = `${JSON.stringify(method)}|${variant}`;
        const kept = this.decodeMasks.get(key);
        if (T === 1 && kept && kept.n === n) return flashAttentionGpu(this.gpu, inputs, variant, kept.blocks);
        const blocks = await prepareBlockMask(this.gpu, mask, T, n, c.headDim, this.storage, variant);
        if (T === 1) {
          kept?.blocks.release();
          this.decodeMasks.set(key, { n, blocks });
          return flashAttentionGpu(this.gpu, inputs, variant, blocks);
        }
        try {
          return await flashAttentionGpu(this.gpu, inputs, variant, blocks);
        } finally {
          blocks.release();
        }
      }
      default:
        return this.attendOnHost(method, T, n);
    }
  }

  /** The chunk's rotated q [Hq, T, D] and k [Hkv, T, D] come down: DSA layers index them, observers see them. */
  private async observeChunk(li: number, layer: GpuLayer, T: number): Promise<void> {
    const c = this.config;
    const D = c.headDim;
    const read = async (b: GPUBuffer, shape: number[]) => asFloat32(await this.readTensor(b, shape));
    const q = await read(this.act.qh, [c.heads, T, D]);
    const k = await read(this.act.kChunk, [c.kvHeads, T, D]);
    this.opts.observe?.(li, this.pos, T, q, k);
    if (layer.dsa) {
      // A trained indexer reads the attention input h [T, hidden] (f32 activations).
      const h = layer.dsa.needsInput
        ? new Float32Array(await this.gpu.read(this.act.h, T * c.hiddenSize * 4))
        : undefined;
      layer.dsa.append(k, T, h);
      this.dsaLists = await layer.dsa.select(this.asDevice(), q, T, h);
    }
  }

  private dsaLists?: GatheredKeys;

  /** This decoder's GPU as a library Device (DSA selection, attention() on copies); destroying it is a no-op. */
  private asDevice(): Device {
    return { backend: 'webgpu', name: this.gpu.adapterName, gpu: this.gpu, destroy() {} };
  }

  /** DSA: the chunk's key lists go up into a preallocated buffer; gathered attention over the packed keys. */
  private async attendDsa(dsa: DsaLayer, T: number, n: number): Promise<void> {
    const c = this.config;
    const a = this.act;
    const lists = this.dsaLists!;
    if (lists.width > dsa.width) throw new ShapeError('dsa key lists wider than their buffer');
    this.gpu.device.queue.writeBuffer(a.dsaIndices, 0, lists.indices as Int32Array<ArrayBuffer>);
    const shape: AttentionShape = {
      heads: c.heads,
      kvHeads: c.kvHeads,
      queries: T,
      keys: n,
      headDim: c.headDim,
      causal: true,
      scale: 1 / Math.sqrt(c.headDim),
    };
    await sparseGatherGpu(
      this.gpu,
      { q: a.qh, k: a.kAttn, v: a.vAttn, o: a.oh, lse: a.lse, shape, dtype: this.storage },
      a.dsaIndices,
      lists.width,
    );
  }

  /** The first shape-many values of a storage-typed buffer, as a host tensor. */
  private async readTensor(b: GPUBuffer, shape: number[]): Promise<Tensor> {
    const bytes = await this.gpu.read(b, shape[0] * shape[1] * shape[2] * this.elementBytes);
    return tensor(shape, this.storage, this.storage === 'f16' ? new Uint16Array(bytes) : new Float32Array(bytes));
  }

  /** CCA through its host cache: the chunk's q, k, v come down, the output goes back up. */
  private async attendCca(cache: CcaKVCache, T: number): Promise<void> {
    const c = this.config;
    const a = this.act;
    const D = c.headDim;
    const q = await this.readTensor(a.qh, [c.heads, T, D]);
    const k = await this.readTensor(a.kChunk, [c.kvHeads, T, D]);
    const v = await this.readTensor(a.vChunk, [c.kvHeads, T, D]);
    const state = await cache.forward(cpuDevice, q, k, v);
    this.gpu.device.queue.writeBuffer(a.oh, 0, state.o as Float32Array<ArrayBuffer>);
  }

  /** Any other method through attention(): copies q, k, v down and the output back up. */
  private async attendOnHost(method: MethodSpec, T: number, n: number): Promise<void> {
    const c = this.config;
    const a = this.act;
    const D = c.headDim;
    const q = await this.readTensor(a.qh, [c.heads, T, D]);
    const k = await this.readTensor(a.kAttn, [c.kvHeads, n, D]);
    const v = await this.readTensor(a.vAttn, [c.kvHeads, n, D]);
    const state = await attention(this.asDevice(), q, k, v, method, { causal: true });
    this.gpu.device.queue.writeBuffer(a.oh, 0, state.o as Float32Array<ArrayBuffer>);
  }
}
