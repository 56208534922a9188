// Uniform buffers by call site and bind groups by (call site, pipeline): a forward pass rewrites the same
// uniforms (queue writes land in submission order) and binds the same groups every step, so once warm it
// creates nothing on the device (GpuContext.counters hold that in tests).
import type { GpuContext } from './webgpu.js';

interface CachedGroup {
  buffers: GPUBuffer[];
  group: GPUBindGroup;
}

export class CallSites {
  private slots: GPUBuffer[] = [];
  private next = 0;
  private groups = new Map<GPUBuffer, Map<GPUComputePipeline, CachedGroup>>();

  constructor(
    private readonly gpu: GpuContext,
    private readonly label: string,
  ) {}

  /** Starts a step: call sites are numbered again from the first. */
  begin(): void {
    this.next = 0;
  }

  /** The next call site's uniform buffer (at most 64 bytes), holding `words`. */
  uniform(words: ArrayBuffer): GPUBuffer {
    let u = this.slots[this.next];
    if (!u) {
      u = this.gpu.uniform(new ArrayBuffer(64), `${this.label} uniform ${this.next}`);
      this.slots.push(u);
    }
    this.next++;
    this.gpu.write(u, 0, words);
    return u;
  }

  /** The bind group of `buffers`, made once per (call site, pipeline) while the buffers stay the same;
   * `key` is the call site's uniform (default: the last buffer). */
  group(pipe: GPUComputePipeline, buffers: GPUBuffer[], key = buffers[buffers.length - 1]): GPUBindGroup {
    let byPipe = this.groups.get(key);
    if (!byPipe) this.groups.set(key, (byPipe = new Map()));
    const cached = byPipe.get(pipe);
    if (cached && cached.buffers.length === buffers.length && cached.buffers.every((b, i) => b === buffers[i]))
      return cached.group;
    const group = this.gpu.bind(pipe, buffers);
    byPipe.set(pipe, { buffers: [...buffers], group });
    return group;
  }

  dispatch(
    pass: GPUComputePassEncoder,
    pipe: GPUComputePipeline,
    buffers: GPUBuffer[],
    groups: readonly number[],
    key?: GPUBuffer,
  ): void {
    pass.setPipeline(pipe);
    pass.setBindGroup(0, this.group(pipe, buffers, key));
    pass.dispatchWorkgroups(groups[0], groups[1] ?? 1, groups[2] ?? 1);
  }

  destroy(): void {
    this.slots.forEach((u) => u.destroy());
    this.slots = [];
    this.groups.clear();
  }
}
