// The decoder on WebGPU: weights uploaded once, activations and KV caches stay on the GPU; only token ids
// and RoPE's cos/sin (float64 on the host) go up and the last logits come down (one host read per
// forward). Attention is each layer's object (attention/layer.ts, made by caches/layer-factory.ts):
// the decoder hands it the chunk's rotated q, k and v where they lie and never names a method.
// Uniforms and bind groups are per call site (runtime/call-sites.ts): a warm decoding step creates nothing.
import { ShapeError, UnsupportedError } from '../../errors.js';
import { asFloat32, tensor } from '../../tensor.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { CallSites } from '../../runtime/call-sites.js';
import type { LayerSchedule } from '../../attention/sparse.js';
import type { LayerAttention, LayerDims } from '../../attention/layer.js';
import { chooseKernel, MATMUL_VERSIONS } from '../../attention/planner.js';
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
import type { Decoder, DecoderOptions } from './decoder-cpu.js';
import { ropeTable } from './rope-table.js';
import { uploadWeights, type GpuWeights } from './gpu-weights.js';
import { createGpuLayer, GpuLayerScratch } from '../caches/layer-factory.js';
import type { LoadedModel, ModelConfig } from '../types.js';

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
  | 'kh'
  | 'vh'
  | 'oh'
  | 'o'
  | 'proj'
  | 'gate'
  | 'up'
  | 'last'
  | 'logits'
  | 'ids'
  | 'rope'
  | 'none',
  GPUBuffer
>;

export class GpuDecoder implements Decoder {
  private pos = 0;
  private prompt?: number;
  private readonly sites: CallSites;

  private constructor(
    private readonly gpu: GpuContext,
    readonly config: ModelConfig,
    private readonly weights: GpuWeights,
    private readonly attention: LayerAttention<GPUBuffer>[],
    private readonly scratch: GpuLayerScratch,
    private readonly act: Act,
    private readonly pipes: Pipelines,
    private readonly chunk: number,
    private readonly opts: DecoderOptions,
    private readonly owned: GPUBuffer[],
  ) {
    this.sites = new CallSites(gpu, 'decoder');
  }

  static async create(
    gpu: GpuContext,
    model: LoadedModel,
    schedule: LayerSchedule,
    opts: DecoderOptions,
  ): Promise<GpuDecoder> {
    const c = model.config;
    const owned: GPUBuffer[] = [];
    const attention: LayerAttention<GPUBuffer>[] = [];
    let scratch: GpuLayerScratch | undefined;
    try {
      const storage = opts.storage ?? 'f32';
      if (storage === 'f16' && !gpu.features.f16)
        throw new UnsupportedError('f16 storage needs a device with shader-f16; use storage f32');
      const e = storage === 'f16' ? 2 : 4;
      const chunk = Math.max(1, Math.min(opts.chunk ?? 512, opts.maxTokens));
      const dims: LayerDims = {
        heads: c.heads,
        kvHeads: c.kvHeads,
        headDim: c.headDim,
        maxTokens: opts.maxTokens,
        chunk,
        dtype: storage,
        ring: opts.ringCaches ?? true,
      };
      scratch = await GpuLayerScratch.create(gpu, dims);
      for (const [i, l] of model.weights.layers.entries())
        attention.push(
          await createGpuLayer(gpu, { index: i, method: schedule.methodFor(i), dims, config: c, weights: l }, scratch),
        );
      const weights = await uploadWeights(gpu, model, storage, owned);
      const buf = async (floats: number, label: string, bytesPer = 4) => {
        const b = await gpu.createBuffer(Math.max(1, floats) * bytesPer, label);
        owned.push(b);
        return b;
      };
      const [H, D, Hq, Hkv, F, V] = [c.hiddenSize, c.headDim, c.heads, c.kvHeads, c.intermediateSize, c.vocabSize];
      const act: Act = {
        x: await buf(chunk * H, 'x'),
        h: await buf(chunk * H, 'h'),
        q: await buf(chunk * Hq * D, 'q'),
        k: await buf(chunk * Hkv * D, 'k'),
        v: await buf(chunk * Hkv * D, 'v'),
        qh: await buf(chunk * Hq * D, 'q heads', e),
        kh: await buf(chunk * Hkv * D, 'chunk keys', e),
        vh: await buf(chunk * Hkv * D, 'chunk values', e),
        oh: await buf(chunk * Hq * D, 'attention out'),
        o: await buf(chunk * Hq * D, 'o'),
        proj: await buf(chunk * H, 'proj'),
        gate: await buf(chunk * F, 'gate'),
        up: await buf(chunk * F, 'up'),
        last: await buf(H, 'last'),
        logits: await buf(V, 'logits'),
        ids: await buf(chunk, 'ids'),
        rope: await buf(chunk * D, 'rope cos sin'),
        none: await buf(4, 'no bias'),
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
      return new GpuDecoder(gpu, c, weights, attention, scratch, act, pipes, chunk, opts, owned);
    } catch (e) {
      owned.forEach((b) => gpu.release(b));
      attention.forEach((a) => a.destroy());
      scratch?.destroy();
      throw e;
    }
  }

  get position(): number {
    return this.pos;
  }

  get cacheBytes(): number {
    return this.attention.reduce((sum, a) => sum + a.cacheBytes, 0);
  }

  /** Each layer's method and kernel choice (`generate --stats`, `plan`). */
  get plans(): string[] {
    return this.attention.map((a) => a.plan);
  }

  reset(): void {
    this.pos = 0;
    this.attention.forEach((a) => a.reset());
  }

  destroy(): void {
    this.owned.forEach((b) => this.gpu.release(b));
    this.owned.length = 0;
    this.attention.forEach((a) => a.destroy());
    this.scratch.destroy();
    this.sites.destroy();
  }

  async forward(tokens: readonly number[]): Promise<Float32Array> {
    if (tokens.length === 0) throw new ShapeError('forward needs at least one token');
    if (this.pos + tokens.length > this.opts.maxTokens)
      throw new ShapeError(
        `the run was sized for ${this.opts.maxTokens} tokens; ${this.pos} + ${tokens.length} exceed it`,
      );
    const c = this.config;
    for (const id of tokens)
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize)
        throw new ShapeError(`token id ${id} is outside the vocabulary (0..${c.vocabSize - 1})`);
    if (this.pos === 0) this.prompt = tokens.length;
    for (let a = 0; a < tokens.length; a += this.chunk)
      await this.forwardChunk(tokens.slice(a, a + this.chunk), a + this.chunk >= tokens.length);
    return new Float32Array(await this.gpu.read(this.act.logits, c.vocabSize * 4));
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
    const u = this.sites.uniform(matmulParams(T, n, k, bias !== undefined));
    const bound = [x, w, bias ?? this.act.none, y, u];
    const version = chooseKernel('matmul', MATMUL_VERSIONS, {
      features: this.gpu.features,
      dtype: this.opts.storage ?? 'f32',
      headDim: 0,
      queries: T,
      keys: k,
    }).version;
    if (version === 'matvec')
      this.sites.dispatch(pass, this.pipes.matvec, bound, [
        Math.min(n, MATVEC_ROWS_PER_DIM),
        Math.ceil(n / MATVEC_ROWS_PER_DIM),
      ]);
    else this.sites.dispatch(pass, this.pipes.matmul, bound, [Math.ceil(n / MATMUL_TILE), Math.ceil(T / MATMUL_TILE)]);
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
    this.sites.dispatch(
      pass,
      pipe,
      [...buffers, this.sites.uniform(elementwiseParams(n, a, b, c))],
      grid(n, ELEMENTWISE_THREADS),
    );
  }

  private rmsNorm(
    pass: GPUComputePassEncoder,
    x: GPUBuffer,
    w: GPUBuffer,
    out: GPUBuffer,
    rows: number,
    first = 0,
  ): void {
    const c = this.config;
    this.sites.dispatch(
      pass,
      this.pipes.rmsnorm,
      [x, w, out, this.sites.uniform(rmsNormParams(rows, c.hiddenSize, c.rmsNormEps, first))],
      [rows],
    );
  }

  /** Token-major src [T, heads, D] into head-major dst [heads, T, D] in the storage dtype, rotated or not. */
  private rope(
    pass: GPUComputePassEncoder,
    src: GPUBuffer,
    dst: GPUBuffer,
    T: number,
    heads: number,
    rotate: boolean,
  ): void {
    const c = this.config;
    const u = this.sites.uniform(
      ropeParams({
        tokens: T,
        heads,
        headDim: c.headDim,
        stride: T,
        offset: 0,
        rotate,
        interleaved: c.ropeLayout === 'interleaved',
      }),
    );
    this.sites.dispatch(
      pass,
      this.pipes.rope,
      [src, this.act.rope, dst, u],
      grid((T * heads * c.headDim) / 2, ROPE_THREADS),
    );
  }

  private async forwardChunk(tokens: readonly number[], last: boolean): Promise<void> {
    this.sites.begin();
    const c = this.config;
    const { gpu, act: a, weights: w } = this;
    const T = tokens.length;
    const [H, D, Hq, Hkv, F] = [c.hiddenSize, c.headDim, c.heads, c.kvHeads, c.intermediateSize];
    gpu.device.queue.writeBuffer(a.ids, 0, new Uint32Array(tokens));
    gpu.device.queue.writeBuffer(a.rope, 0, ropeTable(c, this.pos, T));
    await gpu.run('embedding', (pass) =>
      this.elementwise(pass, this.pipes.embedding, [w.embedding, a.ids, a.x], T * H, H),
    );
    for (const [li, l] of w.layers.entries()) {
      await gpu.run('attention inputs', (pass) => {
        this.rmsNorm(pass, a.x, l.attnNorm, a.h, T);
        this.matmul(pass, a.h, l.wq, a.q, T, Hq * D, H, l.bq);
        this.matmul(pass, a.h, l.wk, a.k, T, Hkv * D, H, l.bk);
        this.matmul(pass, a.h, l.wv, a.v, T, Hkv * D, H, l.bv);
        this.rope(pass, a.q, a.qh, T, Hq, true);
        this.rope(pass, a.k, a.kh, T, Hkv, true);
        this.rope(pass, a.v, a.vh, T, Hkv, false);
      });
      if (this.opts.observe) await this.observe(li, T);
      await this.attention[li].forward({
        q: a.qh,
        k: a.kh,
        v: a.vh,
        out: a.oh,
        start: this.pos,
        tokens: T,
        promptTokens: this.prompt,
        input: a.h,
      });
      await gpu.run('attention output and MLP', (pass) => {
        this.elementwise(pass, this.pipes.heads, [a.oh, a.o], T * Hq * D, T, Hq, D);
        this.matmul(pass, a.o, l.wo, a.proj, T, H, Hq * D);
        this.elementwise(pass, this.pipes.add, [a.x, a.proj], T * H);
        this.rmsNorm(pass, a.x, l.ffnNorm, a.h, T);
        this.matmul(pass, a.h, l.wGate, a.gate, T, F, H);
        this.matmul(pass, a.h, l.wUp, a.up, T, F, H);
        this.elementwise(pass, this.pipes.swiglu, [a.gate, a.up], T * F);
        this.matmul(pass, a.gate, l.wDown, a.proj, T, H, F);
        this.elementwise(pass, this.pipes.add, [a.x, a.proj], T * H);
      });
    }
    this.pos += T;
    if (!last) return;
    await gpu.run('logits', (pass) => {
      this.rmsNorm(pass, a.x, w.outputNorm, a.last, 1, T - 1);
      this.matmul(pass, a.last, w.output, a.logits, 1, c.vocabSize, H);
    });
  }

  /** Observers see every layer's rotated q [Hq, T, D] and k [Hkv, T, D] (two host reads: measurements only). */
  private async observe(li: number, T: number): Promise<void> {
    const c = this.config;
    const dtype = this.opts.storage ?? 'f32';
    const read = async (b: GPUBuffer, shape: number[]) => {
      const bytes = await this.gpu.read(b, shape.reduce((x, y) => x * y, 1) * (dtype === 'f16' ? 2 : 4));
      return asFloat32(tensor(shape, dtype, dtype === 'f16' ? new Uint16Array(bytes) : new Float32Array(bytes)));
    };
    const q = await read(this.act.qh, [c.heads, T, c.headDim]);
    const k = await read(this.act.kh, [c.kvHeads, T, c.headDim]);
    this.opts.observe?.(li, this.pos, T, q, k);
  }
}
