// The Llama-family decoder on the CPU: embeddings, per layer RMSNorm -> Q/K/V (+ Qwen2 biases) -> RoPE ->
// grouped-query attention through attention() with the layer's method -> output projection -> residual,
// RMSNorm -> SwiGLU MLP -> residual; final RMSNorm and the (possibly tied) output projection.
// A prompt runs in chunks of `chunk` tokens against the KV cache, so no N x N matrix exists beyond a chunk.
import { ShapeError } from '../../errors.js';
import { tensor } from '../../tensor.js';
import { cpuDevice } from '../../runtime/device.js';
import { attention } from '../../attention/attention.js';
import { attendSelected } from '../../attention/dsa.js';
import type { MethodSpec } from '../../attention/spec.js';
import type { LayerSchedule } from '../../attention/sparse.js';
import { matmulRowsCpu } from '../../kernels/matmul-cpu.js';
import { rmsNormCpu } from '../../kernels/rmsnorm-cpu.js';
import { ropeCpu } from '../../kernels/rope-cpu.js';
import { swigluCpu } from '../../kernels/elementwise-cpu.js';
import { WeightMatrix } from '../../weights/weight-matrix.js';
import { DenseKVCache, RingKVCache, type LayerKVCache } from '../caches/kv-cache.js';
import { ropeAttentionFactor, ropeInverseFrequencies } from '../positions/rope.js';
import type { LoadedModel, ModelConfig } from '../types.js';
import type { CcaKVCache } from '../../attention/cca-cache.js';
import { ccaLayerCache, checkDecoderMethod } from '../caches/method-caches.js';
import { StarMasks } from '../caches/star-layers.js';
import { flashAttention } from '../../attention/flash.js';
import { DsaLayer, dsaLayerParams } from '../caches/dsa-layer.js';

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
  /** Sees every layer's post-RoPE queries [Hq, T, D] and keys [Hkv, T, D] of a chunk at `position` (measurements),
   * and, on the CPU, the layer's attention input h [T, hidden] (after its RMSNorm: what a trained indexer reads). */
  observe?: (layer: number, position: number, T: number, q: Float32Array, k: Float32Array, h?: Float32Array) => void;
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
  method: MethodSpec;
  cache: LayerKVCache;
  /** CCA layers attend through their compressed cache instead (cache then holds nothing). */
  cca?: CcaKVCache;
  /** DSA layers: index keys and key selection (cache holds their keys and values). */
  dsa?: DsaLayer;
}

export function modelParameterCount(c: ModelConfig): number {
  const attn = c.hiddenSize * (c.heads + 2 * c.kvHeads) * c.headDim + c.heads * c.headDim * c.hiddenSize;
  return (
    c.layers * (attn + 3 * c.hiddenSize * c.intermediateSize) + c.vocabSize * c.hiddenSize * (c.tiedEmbeddings ? 1 : 2)
  );
}

/** The cache a layer's method needs: a ring for window and sinks (when narrower than the run), else dense. */
export function cacheForMethod(
  c: ModelConfig,
  method: MethodSpec,
  maxTokens: number,
  chunk: number,
  ring = true,
): LayerKVCache {
  if (ring && (method.name === 'window' || method.name === 'sinks')) {
    const left = Number(method.params.left);
    const sinks = method.name === 'sinks' ? Number(method.params.tokens) : 0;
    // The ring also holds one chunk's keys while it is attended: worth it only when smaller than the run.
    if (sinks + left + 1 + chunk < maxTokens) return new RingKVCache(c.kvHeads, c.headDim, left, sinks, chunk);
  }
  return new DenseKVCache(c.kvHeads, c.headDim, maxTokens);
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
  private readonly starMasks: StarMasks;
  /** Activations of one chunk, allocated once. */
  private readonly scratch: Record<
    'x' | 'h' | 'q' | 'k' | 'v' | 'qh' | 'kh' | 'vh' | 'o' | 'proj' | 'gate' | 'up',
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
    this.starMasks = new StarMasks(opts.maxTokens);
    this.layers = w.layers.map((l, i) => {
      const method = schedule.methodFor(i);
      checkDecoderMethod(method);
      const cca = ccaLayerCache(c, method);
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
        method,
        cache: cca
          ? new DenseKVCache(c.kvHeads, c.headDim, 0)
          : cacheForMethod(c, method, opts.maxTokens, this.chunk, opts.ringCaches ?? true),
        cca,
        dsa: method.name === 'dsa' ? new DsaLayer(l, c, dsaLayerParams(method), opts.maxTokens) : undefined,
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
    return this.layers.reduce((a, l) => a + (l.cca ? l.cca.bytes : l.cache.bytes) + (l.dsa?.bytes ?? 0), 0);
  }

  reset(): void {
    for (const l of this.layers) {
      l.cache.reset();
      l.dsa?.reset();
      if (l.cca) l.cca = ccaLayerCache(this.config, l.method);
    }
    this.pos = 0;
  }

  destroy(): void {}

  async forward(tokens: readonly number[]): Promise<Float32Array> {
    if (tokens.length === 0) throw new ShapeError('forward needs at least one token');
    if (this.pos + tokens.length > this.opts.maxTokens)
      throw new ShapeError(
        `the run was sized for ${this.opts.maxTokens} tokens; ${this.pos} + ${tokens.length} exceed it`,
      );
    if (this.pos === 0) this.starMasks.begin(tokens.length);
    let last: Float32Array | undefined;
    for (let a = 0; a < tokens.length; a += this.chunk) last = await this.forwardChunk(tokens.slice(a, a + this.chunk));
    return last!;
  }

  private async forwardChunk(tokens: readonly number[]): Promise<Float32Array> {
    const c = this.config;
    const T = tokens.length;
    const [H, D, Hq, Hkv, F] = [c.hiddenSize, c.headDim, c.heads, c.kvHeads, c.intermediateSize];
    const group = Hq / Hkv;
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
    const [qh, kh, vh, o, gate, up] = [
      view(sc.qh, Hq * D),
      view(sc.kh, Hkv * D),
      view(sc.vh, Hkv * D),
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
      this.opts.observe?.(li, this.pos, T, qh, kh, h);
      if (layer.cca) {
        const state = await layer.cca.forward(
          cpuDevice,
          tensor([Hq, T, D], 'f32', qh),
          tensor([Hkv, T, D], 'f32', kh),
          tensor([Hkv, T, D], 'f32', vh),
        );
        headMajorToTokenMajor(state.o, o, T, Hq, D, 0, Hq);
      }
      const keys = layer.cca ? undefined : layer.cache.append(kh, vh, T);
      layer.dsa?.append(kh, T, h);
      const selected = layer.dsa && (await layer.dsa.select(cpuDevice, qh, T, h));
      for (let g = 0; keys && g < Hkv; g++) {
        // One call per key/value head: its cache rows are contiguous views, so nothing is copied.
        const qg = tensor([group, T, D], 'f32', qh.subarray(g * group * T * D, (g + 1) * group * T * D));
        const kg = tensor([1, keys.n, D], 'f32', keys.keys[g]);
        const vg = tensor([1, keys.n, D], 'f32', keys.values[g]);
        const state = selected
          ? await attendSelected(cpuDevice, qg, kg, vg, selected, { causal: true })
          : layer.method.name === 'star' || layer.method.name === 'ring'
            ? await flashAttention(cpuDevice, qg, kg, vg, {
                causal: true,
                mask: layer.method.name === 'star' ? this.starMasks.mask(layer.method) : undefined,
              })
            : await attention(cpuDevice, qg, kg, vg, layer.method, { causal: true });
        headMajorToTokenMajor(state.o, o, T, group, D, g * group, Hq);
      }
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
