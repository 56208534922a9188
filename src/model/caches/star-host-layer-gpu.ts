// A layer of host arrays behind the WebGPU layer interface: the chunk's q, k and v are read back (counted
// host reads, GpuContext.read), the host layer attends on them, and its output goes up into the chunk's
// out buffer. This is how a host of a model spread over host processes (src/cluster/star-model-host.ts)
// runs its StarHostLayer or RemoteLayer under the GPU decoder: their tensors travel over NATS as host
// arrays anyway (the query host's q goes out per layer, states come back), so one read per chunk and
// layer is inherent to the protocol; the matrix work of the model (projections, MLP, logits) stays on
// the GPU. The states stay exact: the host layer keeps f32 rows and merges with the spine's merge.
// What stays on the host: the attention over this host's own cache (StarHostLayer's flash on the CPU).
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
