// Random device-resident inputs for benchmarks.
import type { GpuContext } from '../runtime/webgpu.js';
import { fillRandomWgsl } from '../kernels/fill-random-wgsl.js';

export async function randomGpuBuffer(
  gpu: GpuContext,
  count: number,
  f16: boolean,
  seed: number,
  label: string,
): Promise<GPUBuffer> {
  const buffer = await gpu.createBuffer(count * (f16 ? 2 : 4), label);
  const pipeline = await gpu.pipeline(`fill-random-${f16 ? 'f16' : 'f32'}`, () => fillRandomWgsl(f16));
  const params = gpu.uniform(new Uint32Array([count, seed, 0, 0]).buffer);
  const groups = Math.ceil(count / 256);
  const x = Math.min(groups, gpu.maxWorkgroupsPerDim);
  await gpu.run('fill random', (pass) => {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, gpu.bind(pipeline, [buffer, params]));
    pass.dispatchWorkgroups(x, Math.ceil(groups / x));
  });
  params.destroy();
  return buffer;
}
