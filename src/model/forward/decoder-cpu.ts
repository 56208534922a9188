// The Llama-family decoder on the CPU: the forward pass of llama-forward.ts over CpuOps (cpu-ops.ts), with
// weights decoded to f32 once for small models (or row by row), f32 activations of one chunk allocated once,
// and each layer's attention object from the factory. A prompt runs in chunks of `chunk` tokens against the
// layers' caches, so no N x N matrix exists beyond a chunk.
import { PositionedCpuLayer } from '../caches/positioned-layer-cpu.js';
import { ropeAttentionFactor, ropeInverseFrequencies } from '../positions/rope.js';
import { PositionedAttentionCpu } from '../positions/positioned-attention-cpu.js';
import { checkPositionMethod, type PositionMethod } from '../positions/position-method.js';
import type { LayerSchedule } from '../../attention/sparse.js';
import { DEFAULT_PREFILL_CHUNK } from '../../attention/planner.js';
import type { LayerAttention, LayerCacheState, LayerDims } from '../../attention/layer.js';
import { WeightMatrix } from '../../weights/weight-matrix.js';
import type { LoadedModel, ModelConfig } from '../types.js';
import { createCpuLayer } from '../caches/layer-factory.js';
import { LlamaDecoder } from './llama-forward.js';
import { CpuOps } from './cpu-ops.js';
import type { Activations } from './ops.js';

export interface DecoderOptions {
  /** Tokens the run will hold at most (prompt + generated): caches are sized once from it. */
  maxTokens: number;
  /** Queries per prefill step (default: the planner's defaultPrefillChunk, 2048 on tensor cores, else 512). */
  chunk?: number;
  /** Decode every weight to f32 once (fast for small models); default when the model is under 256 MiB as f32. */
  decodeAll?: boolean;
  /** Window and sinks layers keep a ring of what the window sees (default); false keeps every position. */
  ringCaches?: boolean;
  /** WebGPU: weight matrices, Q and the KV cache in f32 (default, exact) or f16 (half the memory and bandwidth,
   * and the tensor-core flash kernel where the device has one); activations and sums stay f32. */
  storage?: 'f32' | 'f16';
  /** WebGPU: the matmul kernel by name (a planner name: tensor-cores, tiled, gemv, matvec; or a version of
   * kernels/versions.ts) for products of more than one row (`rows`: prefill) and of one row (`row`: decode
   * steps, the logits); absent or 'auto': the planner's choice for the device and shape. */
  matmul?: { rows?: string; row?: string };
  /** Sees every layer's post-RoPE queries [Hq, T, D] and keys [Hkv, T, D] of a chunk at `position` (measurements),
   * and the layer's attention input h [T, hidden] (after its RMSNorm: what a trained indexer reads). */
  observe?: (layer: number, position: number, T: number, q: Float32Array, k: Float32Array, h?: Float32Array) => void;
  /** Training-free position handling (src/model/positions): every layer attends through the method's position
   * assignment beside flash, dense, window or sinks (CPU: keys cached before RoPE; WebGPU: Self-Extend, keys
   * cached per rotation; `observe` then sees unrotated q and k); absent or 'none': plain RoPE. */
  positions?: PositionMethod;
  /** The attention object of layer `index` instead of the factory's, when it returns one (the layers of a host
   * of a model spread over processes, src/cluster/star-model-host.ts); on WebGPU it runs on host arrays behind
   * caches/star-host-layer-gpu.ts (q, k, v read back per chunk, the output written up). */
  cpuLayer?: (index: number, dims: LayerDims) => LayerAttention<Float32Array> | undefined;
  /** WebGPU: the attention object of layer `index` instead of the factory's (and before cpuLayer), when it
   * returns one (a Star host's layer with its KV on the device, caches/star-host-layer-flash-gpu.ts). */
  gpuLayer?: (index: number, dims: LayerDims) => Promise<LayerAttention<GPUBuffer>> | undefined;
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
  /** Every layer's cache (saved sessions), or undefined when a layer cannot hand its cache over. */
  saveCaches?(): Promise<SavedCaches | undefined>;
  /** Restores saved caches in place of feeding their tokens; false (and reset) when a layer cannot take its
   * state, so the caller replays the tokens instead. */
  restoreCaches?(saved: PendingCaches): Promise<boolean>;
}

/** The decoder's state after `position` tokens: each layer's cache, and the prompt length Star's mask follows. */
export interface SavedCaches {
  position: number;
  promptTokens?: number;
  layers: LayerCacheState[];
}

/** Saved caches whose layer states may still be on their way: a function gives layer i's state once read (a file
 * read layer by layer while the layer before restores, api/session-prefetch.ts); restoreCaches calls each once,
 * in order, and is done with a state's arrays when that layer's restore has returned. */
export interface PendingCaches extends Omit<SavedCaches, 'layers'> {
  layers: ReadonlyArray<LayerCacheState | (() => Promise<LayerCacheState>)>;
}

export function modelParameterCount(c: ModelConfig): number {
  const attn = c.hiddenSize * (c.heads + 2 * c.kvHeads) * c.headDim + c.heads * c.headDim * c.hiddenSize;
  return (
    c.layers * (attn + 3 * c.hiddenSize * c.intermediateSize) + c.vocabSize * c.hiddenSize * (c.tiedEmbeddings ? 1 : 2)
  );
}

export class CpuDecoder extends LlamaDecoder<Float32Array, WeightMatrix, Float32Array> {
  constructor(model: LoadedModel, schedule: LayerSchedule, opts: DecoderOptions) {
    const c = model.config;
    const w = model.weights;
    const decodeAll = opts.decodeAll ?? modelParameterCount(c) * 4 < 256 * 2 ** 20;
    const mat = (t: typeof w.tokenEmbedding) => new WeightMatrix(t, decodeAll);
    const vec = (t: typeof w.tokenEmbedding) => new WeightMatrix(t, true).toFloat32();
    const chunk = Math.max(1, Math.min(opts.chunk ?? DEFAULT_PREFILL_CHUNK, opts.maxTokens));
    const dims: LayerDims = {
      heads: c.heads,
      kvHeads: c.kvHeads,
      headDim: c.headDim,
      maxTokens: opts.maxTokens,
      chunk,
      dtype: 'f32',
      ring: opts.ringCaches ?? true,
    };
    const embedding = mat(w.tokenEmbedding);
    const weights = {
      layers: w.layers.map((l) => ({
        attnNorm: vec(l.attnNorm),
        ffnNorm: vec(l.ffnNorm),
        // The CPU, the exact twin CI checks, keeps three products (the stacked one is the GPU's).
        qkv: {
          q: mat(l.wq),
          k: mat(l.wk),
          v: mat(l.wv),
          bq: l.bq && vec(l.bq),
          bk: l.bk && vec(l.bk),
          bv: l.bv && vec(l.bv),
        },
        wo: mat(l.wo),
        wGate: mat(l.wGate),
        wUp: mat(l.wUp),
        wDown: mat(l.wDown),
      })),
      embedding,
      output: w.output ? mat(w.output) : embedding,
      outputNorm: vec(w.outputNorm),
    };
    const positions = opts.positions?.kind === 'none' ? undefined : opts.positions;
    if (positions) checkPositionMethod(positions, c.contextLength);
    const positioned =
      positions &&
      new PositionedAttentionCpu(positions, ropeInverseFrequencies(c), ropeAttentionFactor(c), c.ropeLayout);
    const attention = w.layers.map((l, i) => {
      const own = opts.cpuLayer?.(i, dims);
      if (own) return own;
      const method = schedule.methodFor(i);
      if (!positions || !positioned) return createCpuLayer({ index: i, method, dims, config: c, weights: l });
      return new PositionedCpuLayer(dims, method, positions, positioned, { weights: l, config: c });
    });
    const f = (per: number) => new Float32Array(chunk * per);
    const [qd, kd] = [c.heads * c.headDim, c.kvHeads * c.headDim];
    const act: Activations<Float32Array> = {
      x: f(c.hiddenSize),
      h: f(c.hiddenSize),
      qkv: new Float32Array(0),
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
      last: new Float32Array(c.hiddenSize),
      logits: new Float32Array(c.vocabSize),
    };
    super(c, new CpuOps(c), weights, attention, act, chunk, opts);
  }
}
