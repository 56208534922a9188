// A layer's KV append on WebGPU, the one append kernel (kernels/kv-append-wgsl.ts) over the layer's cache buffers
// in their layout: ResidentKvAppend for the resident layers (cca-gpu.ts, dsa-gpu.ts: its uniform block made
// once, its bind group kept by the layer), kvAppendAtSite for layers whose uniforms and bind groups are
// call sites (kv-layer-gpu.ts, the host DSA layer). Either way a decode step creates nothing.
import type { DType } from '../../tensor.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import type { CallSites } from '../../runtime/call-sites.js';
import {
  KV_APPEND_PARAMS_BYTES,
  kvAppendCall,
  kvAppendKernel,
  type KvAppendChunk,
  type KvAppendLayout,
} from '../../kernels/kv-append-wgsl.js';
import { persistentUniform, writeUniform } from './gpu-binds.js';

function kvAppendPipeline(gpu: GpuContext, dtype: DType): Promise<GPUComputePipeline> {
  const kernel = kvAppendKernel(dtype);
  return gpu.pipeline(kernel.key, kernel.code);
}

/** Writes the chunk's uniforms at the next call site; returns the recorder of its dispatch. */
export async function kvAppendAtSite(
  gpu: GpuContext,
  sites: CallSites,
  dtype: DType,
  cache: { k: GPUBuffer; v: GPUBuffer },
  layout: KvAppendLayout,
  chunk: KvAppendChunk & { k: GPUBuffer; v: GPUBuffer },
): Promise<(pass: GPUComputePassEncoder) => void> {
  const pipeline = await kvAppendPipeline(gpu, dtype);
  const call = kvAppendCall(layout, chunk);
  const u = sites.uniform(call.params);
  return (pass) => sites.dispatch(pass, pipeline, [chunk.k, chunk.v, cache.k, cache.v, u], call.groups);
}

export class ResidentKvAppend {
  private constructor(
    private readonly gpu: GpuContext,
    private readonly pipeline: GPUComputePipeline,
    private readonly uniform: GPUBuffer,
    private readonly cache: { k: GPUBuffer; v: GPUBuffer },
    readonly layout: KvAppendLayout,
  ) {}

  static async create(
    gpu: GpuContext,
    dtype: DType,
    cache: { k: GPUBuffer; v: GPUBuffer },
    layout: KvAppendLayout,
  ): Promise<ResidentKvAppend> {
    const pipeline = await kvAppendPipeline(gpu, dtype);
    return new ResidentKvAppend(gpu, pipeline, persistentUniform(gpu, KV_APPEND_PARAMS_BYTES), cache, layout);
  }

  /** The bind group for a chunk's k and v buffers (a layer keeps it with its others, per caller buffer set). */
  bind(k: GPUBuffer, v: GPUBuffer): GPUBindGroup {
    return this.gpu.bind(this.pipeline, [k, v, this.cache.k, this.cache.v, this.uniform]);
  }

  /** Writes the uniforms of the chunk [start, start + tokens); returns the recorder of its dispatch. */
  prepare(start: number, tokens: number): (pass: GPUComputePassEncoder, group: GPUBindGroup) => void {
    const call = kvAppendCall(this.layout, { start, tokens });
    writeUniform(this.gpu, this.uniform, call.params);
    return (pass, group) => {
      pass.setPipeline(this.pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(...call.groups);
    };
  }

  destroy(): void {
    this.uniform.destroy();
  }
}
