// The state merge on WebGPU: folds state b into state a, both resident on the device.
import { ShapeError } from '../errors.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { MERGE_THREADS, mergeStatesWgsl } from '../kernels/merge-wgsl.js';

export interface GpuState {
  o: GPUBuffer;
  lse: GPUBuffer;
  /** heads * queries */
  rows: number;
  headDim: number;
}

export async function mergeStatesGpu(gpu: GpuContext, a: GpuState, b: GpuState): Promise<void> {
  if (a.rows !== b.rows || a.headDim !== b.headDim)
    throw new ShapeError(`cannot merge states of ${a.rows}x${a.headDim} and ${b.rows}x${b.headDim}`);
  const pipeline = await gpu.pipeline('merge-states', mergeStatesWgsl);
  const params = gpu.uniform(new Uint32Array([a.rows, a.headDim, 0, 0]).buffer);
  const groups = Math.ceil(a.rows / MERGE_THREADS);
  const x = Math.min(groups, gpu.maxWorkgroupsPerDim);
  await gpu.run('merge states', (pass) => {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, gpu.bind(pipeline, [a.o, a.lse, b.o, b.lse, params]));
    pass.dispatchWorkgroups(x, Math.ceil(groups / x));
  });
  params.destroy();
}
