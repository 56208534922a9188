// The state merge on WebGPU: folds state b into state a, both resident on the device. The two states are
// stacked into scratch and folded by the one merge kernel (kernels/merge-wgsl.ts), the same that DSA's
// split-KV decoding runs.
import { ShapeError } from '../errors.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { mergeStatesWgsl, mergeWorkgroups } from '../kernels/merge-wgsl.js';

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
  const oBytes = a.rows * a.headDim * 4;
  const lseBytes = a.rows * 4;
  const pipeline = await gpu.pipeline(`merge-states-${a.headDim}`, () => mergeStatesWgsl(a.headDim));
  const po = await gpu.createBuffer(2 * oBytes, 'merge: stacked o');
  let plse: GPUBuffer | undefined;
  const params = gpu.uniform(new Uint32Array([a.rows, 2, 0xff800000, 0]).buffer);
  try {
    plse = await gpu.createBuffer(2 * lseBytes, 'merge: stacked lse');
    const enc = gpu.device.createCommandEncoder({ label: 'merge: stack the states' });
    enc.copyBufferToBuffer(a.o, 0, po, 0, oBytes);
    enc.copyBufferToBuffer(b.o, 0, po, oBytes, oBytes);
    enc.copyBufferToBuffer(a.lse, 0, plse, 0, lseBytes);
    enc.copyBufferToBuffer(b.lse, 0, plse, lseBytes, lseBytes);
    gpu.device.queue.submit([enc.finish()]);
    const [x, y] = mergeWorkgroups(a.rows, a.headDim, gpu.maxWorkgroupsPerDim);
    const group = gpu.bind(pipeline, [po, plse, a.o, a.lse, params]);
    await gpu.run('merge states', (pass) => {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(x, y);
    });
  } finally {
    params.destroy();
    gpu.release(po);
    if (plse) gpu.release(plse);
  }
}
