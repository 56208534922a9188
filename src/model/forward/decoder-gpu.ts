// The decoder on WebGPU: the forward pass of llama-forward.ts over GpuOps (gpu-ops.ts). Weights go up once
// (gpu-weights.ts); activations and KV caches stay on the GPU; only token ids and RoPE's cos/sin go up and
// the last logits come down (one host read per forward). Attention is each layer's object from the factory
// (caches/layer-factory.ts), which takes the chunk's rotated q, k and v where they lie.
import { UnsupportedError } from '../../errors.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import type { LayerSchedule } from '../../attention/sparse.js';
import type { LayerAttention, LayerDims } from '../../attention/layer.js';
import type { DecoderOptions } from './decoder-cpu.js';
import { LlamaDecoder } from './llama-forward.js';
import { GpuOps } from './gpu-ops.js';
import { FiniteFlags } from './finite-flags-gpu.js';
import type { Activations } from './ops.js';
import type { GpuWeights } from './gpu-weights.js';
import { leaseWeights, type WeightsLease } from './gpu-weights-shared.js';
import { createGpuLayer, GpuLayerScratch } from '../caches/layer-factory.js';
import type { LoadedModel, ModelConfig } from '../types.js';
import { checkPositionMethod } from '../positions/position-method.js';
import { MATMUL_TC_MIN_OUTPUT_BYTES } from '../../kernels/matmul-tc-wgsl.js';
import { defaultPrefillChunk } from '../../attention/planner.js';

export class GpuDecoder extends LlamaDecoder<GPUBuffer, GPUBuffer, GPUBuffer> {
  private constructor(
    private readonly gpu: GpuContext,
    config: ModelConfig,
    private readonly gpuOps: GpuOps,
    weights: GpuWeights,
    attention: LayerAttention<GPUBuffer>[],
    private readonly scratch: GpuLayerScratch,
    act: Activations<GPUBuffer>,
    chunk: number,
    opts: DecoderOptions,
    private readonly owned: GPUBuffer[],
    private readonly lease: WeightsLease,
  ) {
    super(config, gpuOps, weights, attention, act, chunk, opts);
  }

  static async create(
    gpu: GpuContext,
    model: LoadedModel,
    schedule: LayerSchedule,
    opts: DecoderOptions,
  ): Promise<GpuDecoder> {
    const c = model.config;
    const owned: GPUBuffer[] = [];
    let lease: WeightsLease | undefined;
    const attention: LayerAttention<GPUBuffer>[] = [];
    let scratch: GpuLayerScratch | undefined;
    try {
      const storage = opts.storage ?? 'f32';
      if (storage === 'f16' && !gpu.features.f16)
        throw new UnsupportedError('f16 storage needs a device with shader-f16; use storage f32');
      const e = storage === 'f16' ? 2 : 4;
      const chunk = Math.max(
        1,
        Math.min(opts.chunk ?? defaultPrefillChunk(gpu, storage, c.hiddenSize), opts.maxTokens),
      );
      const dims: LayerDims = {
        heads: c.heads,
        kvHeads: c.kvHeads,
        headDim: c.headDim,
        maxTokens: opts.maxTokens,
        chunk,
        dtype: storage,
        ring: opts.ringCaches ?? true,
      };
      const positions = opts.positions?.kind === 'none' ? undefined : opts.positions;
      if (positions) checkPositionMethod(positions, c.contextLength);
      scratch = await GpuLayerScratch.create(gpu, dims);
      for (const [i, l] of model.weights.layers.entries())
        attention.push(
          (await opts.gpuLayer?.(i, dims)) ??
            (await createGpuLayer(
              gpu,
              {
                index: i,
                method: schedule.methodFor(i),
                dims,
                config: c,
                weights: l,
                positions,
                hostLayer: opts.cpuLayer?.(i, dims),
              },
              scratch,
            )),
        );
      lease = await leaseWeights(gpu, model, storage);
      const weights = lease.weights;
      const buf = async (floats: number, label: string, bytesPer = 4) => {
        // A short run's activations can be smaller than a tensor-core matmul binds as its output.
        const b = await gpu.createBuffer(Math.max(floats * bytesPer, MATMUL_TC_MIN_OUTPUT_BYTES), label);
        owned.push(b);
        return b;
      };
      const [H, D, Hq, Hkv, F, V] = [c.hiddenSize, c.headDim, c.heads, c.kvHeads, c.intermediateSize, c.vocabSize];
      const act: Activations<GPUBuffer> = {
        x: await buf(chunk * H, 'x'),
        h: await buf(chunk * H, 'h'),
        qkv: await buf(weights.layers.some((l) => 'fused' in l.qkv) ? chunk * (Hq + 2 * Hkv) * D : 1, 'qkv'),
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
        logits: await buf(FiniteFlags.words(V, c.layers), 'logits and per-layer non-finite flags'),
      };
      const io = {
        ids: await buf(chunk, 'ids'),
        rope: await buf(chunk * D, 'rope cos sin'),
        none: await buf(4, 'no bias'),
      };
      const ops = await GpuOps.create(
        gpu,
        c,
        storage,
        io,
        chunk,
        opts.matmul,
        weights.matrixStorage,
        new FiniteFlags(act.logits, V, c.layers),
      );
      return new GpuDecoder(gpu, c, ops, weights, attention, scratch, act, chunk, opts, owned, lease);
    } catch (e) {
      lease?.release();
      owned.forEach((b) => gpu.release(b));
      attention.forEach((a) => a.destroy());
      scratch?.destroy();
      throw e;
    }
  }

  /** Bytes the weights take on the GPU (quantised matrices in their GPU layouts): `bench model`. */
  get weightBytes(): number {
    return (this.weights as GpuWeights).bytes;
  }

  /** The matmul kernels that ran (or are planned), one line per choice (`generate --stats`, `bench model`). */
  get matmulPlans(): string[] {
    return this.gpuOps.matmulPlans();
  }

  override destroy(): void {
    super.destroy();
    this.owned.forEach((b) => this.gpu.release(b));
    this.owned.length = 0;
    this.lease.release();
    this.scratch.destroy();
    this.gpuOps.destroy();
  }
}
