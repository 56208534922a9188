// The Llama-family decoder on the CPU: embeddings, per layer RMSNorm -> Q/K/V (+ Qwen2 biases) -> RoPE ->
// grouped-query attention through attention() with the layer's method -> output projection -> residual,
// RMSNorm -> SwiGLU MLP -> residual; final RMSNorm and the (possibly tied) output projection.
// A prompt runs in chunks of `chunk` tokens against the KV cache, so no N x N matrix exists beyond a chunk.
import { ShapeError } from '../../errors.js';
import type { LayerSchedule } from '../../attention/sparse.js';
import type { LayerAttention, LayerDims } from '../../attention/layer.js';
import { matmulRowsCpu } from '../../kernels/matmul-cpu.js';
import { rmsNormCpu } from '../../kernels/rmsnorm-cpu.js';
import { ropeCpu } from '../../kernels/rope-cpu.js';
import { swigluCpu } from '../../kernels/elementwise-cpu.js';
import { WeightMatrix } from '../../weights/weight-matrix.js';
import { ropeAttentionFactor, ropeInverseFrequencies } from '../positions/rope.js';
import type { LoadedModel, ModelConfig } from '../types.js';
import { createCpuLayer } from '../caches/layer-factory.js';

export interface DecoderOptions {
  /** Tokens the run will hold at most (prompt + generated): caches are sized once from it. */
  maxTokens: number;
  /** Queries per prefill step. */
  chunk?: number;
  /** Decode every weight to f32 once (fast for small models); default when the model is under 256 MiB as f32. */
  decodeAll?: boolean;
  /** Window and sinks layers keep a ring of what the window sees (default); false keeps every position. */
  ringCaches?: boolean;
  /** WebGPU: weight matrices, Q and the KV cache in f32 (default, exact) or f16 (half the memory and bandwidth,
   * and the tensor-core flash kernel where the device has one); activations and sums stay f32. */
  storage?: 'f32' | 'f16';
  /** Sees every layer's post-RoPE queries [Hq, T, D] and keys [Hkv, T, D] of a chunk at `position` (measurements). */
  observe?: (layer: number, position: number, T: number, q: Float32Array, k: Float32Array) => void;
}

/** The decoder's common face, CPU or WebGPU. */
export interface Decoder {
  readonly config: ModelConfig;
  /** Feeds tokens at the next positions; returns the logits [vocab] of the last one. */
  forward(tokens: readonly number[]): Promise<Float32Array>;
  readonly position: number;
  /** KV-cache bytes held. */
  readonly cacheBytes: number;
  /** Forgets every position (the caches are reused, not reallocated), to start a new sequence. */
  reset(): void;
  destroy(): void;
}

interface Layer {
  attnNorm: Float32Array;
  ffnNorm: Float32Array;
  wq: WeightMatrix;
  wk: WeightMatrix;
  wv: WeightMatrix;
  wo: WeightMatrix;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  wGate: WeightMatrix;
  wUp: WeightMatrix;
  wDown: WeightMatrix;
  attention: LayerAttention<Float32Array>;
}

export function modelParameterCount(c: ModelConfig): number {
  const attn = c.hiddenSize * (c.heads + 2 * c.kvHeads) * c.headDim + c.heads * c.headDim * c.hiddenSize;
  return (
    c.layers * (attn + 3 * c.hiddenSize * c.intermediateSize) + c.vocabSize * c.hiddenSize * (c.tiedEmbeddings ? 1 : 2)
  );
}

export class CpuDecoder implements Decoder {
  readonly config: ModelConfig;
  private readonly layers: Layer[];
  private readonly embedding: WeightMatrix;
  private readonly output: WeightMatrix;
  private readonly outputNorm: Float32Array;
  private readonly invFreq: Float64Array;
  private readonly ropeFactor: number;
  private readonly chunk: number;
  private pos = 0;
  private prompt?: number;
  /** Activations of one chunk, allocated once. */
  private readonly scratch: Record<
    'x' | 'h' | 'q' | 'k' | 'v' | 'qh' | 'kh' | 'vh' | 'oh' | 'o' | 'proj' | 'gate' | 'up',
    Float32Array
  >;

  constructor(
    model: LoadedModel,
    schedule: LayerSchedule,
    readonly opts: DecoderOptions,
  ) {
    const c = (this.config = model.config);
    const w = model.weights;
    const decodeAll = opts.decodeAll ?? modelParameterCount(c) * 4 < 256 * 2 ** 20;
    const mat = (t: typeof w.tokenEmbedding) => new WeightMatrix(t, decodeAll);
    const vec = (t: typeof w.tokenEmbedding) => new WeightMatrix(t, true).toFloat32();
    this.chunk = Math.max(1, Math.min(opts.chunk ?? 512, opts.maxTokens));
    const dims: LayerDims = {
      heads: c.heads,
      kvHeads: c.kvHeads,
      headDim: c.headDim,
      maxTokens: opts.maxTokens,
      chunk: this.chunk,
      dtype: 'f32',
      ring: opts.ringCaches ?? true,
    };
    this.layers = w.layers.map((l, i) => {
      const attention = createCpuLayer({ index: i, method: schedule.methodFor(i), dims, config: c, weights: l });
      return {
        attnNorm: vec(l.attnNorm),
        ffnNorm: vec(l.ffnNorm),
        wq: mat(l.wq),
        wk: mat(l.wk),
        wv: mat(l.wv),
        wo: mat(l.wo),
        bq: l.bq && vec(l.bq),
        bk: l.bk && vec(l.bk),
        bv: l.bv && vec(l.bv),
        wGate: mat(l.wGate),
        wUp: mat(l.wUp),
        wDown: mat(l.wDown),
        attention,
      };
    });
    this.embedding = mat(w.tokenEmbedding);
    this.output = w.output ? mat(w.output) : this.embedding;
    this.outputNorm = vec(w.outputNorm);
    const n = this.chunk;
    const f = (per: number) => new Float32Array(n * per);
    const [qd, kd] = [c.heads * c.headDim, c.kvHeads * c.headDim];
    this.scratch = {
      x: f(c.hiddenSize),
      h: f(c.hiddenSize),
      q: f(qd),
      k: f(kd),
      v: f(kd),
      qh: f(qd),
      kh: f(kd),
      vh: f(kd),
      oh: f(qd),
      o: f(qd),
      proj: f(c.hiddenSize),
      gate: f(c.intermediateSize),
      up: f(c.intermediateSize),
    };
    this.invFreq = ropeInverseFrequencies(c);
    this.ropeFactor = ropeAttentionFactor(c);
  }

  get position(): number {
    return this.pos;
  }

  get cacheBytes(): number {
    return this.layers.reduce((a, l) => a + l.attention.cacheBytes, 0);
  }

  /** Each layer's method and kernel choice (`generate --stats`, `plan`). */
  get plans(): string[] {
    return this.layers.map((l) => l.attention.plan);
  }

  reset(): void {
    for (const l of this.layers) l.attention.reset();
    this.pos = 0;
  }

  destroy(): void {}

  async forward(tokens: readonly number[]): Promise<Float32Array> {
    if (tokens.length === 0) throw new ShapeError('forward needs at least one token');
    if (this.pos + tokens.length > this.opts.maxTokens)
      throw new ShapeError(
        `the run was sized for ${this.opts.maxTokens} tokens; ${this.pos} + ${tokens.length} exceed it`,
      );
    if (this.pos === 0) this.prompt = tokens.length;
    let last: Float32Array | undefined;
    for (let a = 0; a < tokens.length; a += this.chunk) last = await this.forwardChunk(tokens.slice(a, a + this.chunk));
    return last!;
  }

  private async forwardChunk(tokens: readonly number[]): Promise<Float32Array> {
    const c = this.config;
    const T = tokens.length;
    const [H, D, Hq, Hkv, F] = [c.hiddenSize, c.headDim, c.heads, c.kvHeads, c.intermediateSize];
    const sc = this.scratch;
    const view = (a: Float32Array, per: number) => a.subarray(0, T * per);
    const [x, h, q, k, v, proj] = [
      view(sc.x, H),
      view(sc.h, H),
      view(sc.q, Hq * D),
      view(sc.k, Hkv * D),
      view(sc.v, Hkv * D),
      view(sc.proj, H),
    ];
    const [qh, kh, vh, oh, o, gate, up] = [
      view(sc.qh, Hq * D),
      view(sc.kh, Hkv * D),
      view(sc.vh, Hkv * D),
      view(sc.oh, Hq * D),
      view(sc.o, Hq * D),
      view(sc.gate, F),
      view(sc.up, F),
    ];
    tokens.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize)
        throw new ShapeError(`token id ${id} is outside the vocabulary (0..${c.vocabSize - 1})`);
      x.set(this.embedding.row(id), t * H);
    });
    for (const [li, layer] of this.layers.entries()) {
      rmsNormCpu(x, T, H, layer.attnNorm, c.rmsNormEps, h);
      matmulRowsCpu(h, T, layer.wq, q, layer.bq);
      matmulRowsCpu(h, T, layer.wk, k, layer.bk);
      matmulRowsCpu(h, T, layer.wv, v, layer.bv);
      ropeCpu(q, T, Hq, D, this.pos, this.invFreq, c.ropeLayout, this.ropeFactor);
      ropeCpu(k, T, Hkv, D, this.pos, this.invFreq, c.ropeLayout, this.ropeFactor);
      tokenMajorToHeadMajor(q, qh, T, Hq, D);
      tokenMajorToHeadMajor(k, kh, T, Hkv, D);
      tokenMajorToHeadMajor(v, vh, T, Hkv, D);
      this.opts.observe?.(li, this.pos, T, qh, kh);
      await layer.attention.forward({
        q: qh,
        k: kh,
        v: vh,
        out: oh,
        start: this.pos,
        tokens: T,
        promptTokens: this.prompt,
        input: h,
      });
      headMajorToTokenMajor(oh, o, T, Hq, D, 0, Hq);
      matmulRowsCpu(o, T, layer.wo, proj);
      for (let i = 0; i < x.length; i++) x[i] += proj[i];
      rmsNormCpu(x, T, H, layer.ffnNorm, c.rmsNormEps, h);
      matmulRowsCpu(h, T, layer.wGate, gate);
      matmulRowsCpu(h, T, layer.wUp, up);
      swigluCpu(gate, up, T * F);
      matmulRowsCpu(gate, T, layer.wDown, proj);
      for (let i = 0; i < x.length; i++) x[i] += proj[i];
    }
    this.pos += T;
    const lastRow = x.subarray((T - 1) * H, T * H);
    const normed = new Float32Array(H);
    rmsNormCpu(lastRow, 1, H, this.outputNorm, c.rmsNormEps, normed);
    const logits = new Float32Array(c.vocabSize);
    matmulRowsCpu(normed, 1, this.output, logits);
    return logits;
  }
}

/** [T, heads, D] -> [heads, T, D]. */
export function tokenMajorToHeadMajor(src: Float32Array, dst: Float32Array, T: number, heads: number, D: number): void {
  for (let t = 0; t < T; t++)
    for (let h = 0; h < heads; h++)
      dst.set(src.subarray((t * heads + h) * D, (t * heads + h + 1) * D), (h * T + t) * D);
}

/** Writes `heads` heads [heads, T, D] into dst [T, totalHeads, D] starting at head `first`. */
function headMajorToTokenMajor(
  src: Float32Array,
  dst: Float32Array,
  T: number,
  heads: number,
  D: number,
  first: number,
  totalHeads: number,
): void {
  for (let h = 0; h < heads; h++)
    for (let t = 0; t < T; t++)
      dst.set(src.subarray((h * T + t) * D, (h * T + t + 1) * D), (t * totalHeads + first + h) * D);
}
