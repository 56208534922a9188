// A layer of host arrays behind the WebGPU layer interface: the chunk's q, k and v are read back (counted
// host reads, GpuContext.read), the host layer attends on them, and its output goes up into the chunk's
// out buffer. This is how a GPU decoder runs a layer of host arrays it is given (DecoderOptions.cpuLayer,
// e.g. a StarHostLayer or RemoteLayer) when no GPU layer is given for it: the matrix work of the model
// (projections, MLP, logits) stays on the GPU, the attention over that layer's cache runs on the host.
// The hosts of a model spread over host processes (src/cluster/star-model-host.ts) no longer need it: their
// Star and Ring layers run on the device (star-host-layer-flash-gpu.ts).
import { asFloat32 } from '../../tensor.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import type { LayerAttention, LayerChunk, LayerDims } from '../../attention/layer.js';
import { gpuIo, type HostIo } from './host-layers.js';

export class HostArraysGpuLayer implements LayerAttention<GPUBuffer> {
  private readonly io: HostIo<GPUBuffer>;
  /** The host layer's output for one chunk [heads, chunk, D] (f32), allocated once. */
  private readonly out: Float32Array;

  constructor(
    gpu: GpuContext,
    private readonly dims: LayerDims,
    readonly inner: LayerAttention<Float32Array>,
  ) {
    this.io = gpuIo(gpu, dims.dtype);
    this.out = new Float32Array(dims.heads * dims.chunk * dims.headDim);
  }

  get spec(): string {
    return this.inner.spec;
  }

  get plan(): string {
    return `${this.inner.plan}; on WebGPU: q, k, v read back per chunk, attention on the host`;
  }

  get cacheBytes(): number {
    return this.inner.cacheBytes;
  }

  async forward(c: LayerChunk<GPUBuffer>): Promise<void> {
    const { heads, kvHeads, headDim: D } = this.dims;
    const T = c.tokens;
    const q = asFloat32(await this.io.read(c.q, [heads, T, D]));
    const k = asFloat32(await this.io.read(c.k, [kvHeads, T, D]));
    const v = asFloat32(await this.io.read(c.v, [kvHeads, T, D]));
    const out = this.out.subarray(0, heads * T * D);
    await this.inner.forward({ q, k, v, out, start: c.start, tokens: T, promptTokens: c.promptTokens });
    this.io.write(c.out, out);
  }

  reset(): void {
    this.inner.reset();
  }

  destroy(): void {
    this.inner.destroy();
  }
}
