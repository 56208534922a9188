// One device handle for the whole library: WebGPU when asked (or, with 'auto', when an adapter exists),
// else the CPU. Kernels dispatch on `device.gpu`.
import { DeviceError } from '../errors.js';
import type { GpuContext } from './webgpu.js';
import { acquireGpu } from './acquire-gpu.js';

export type BackendName = 'cpu' | 'webgpu' | 'auto';

export interface Device {
  readonly backend: 'cpu' | 'webgpu';
  readonly name: string;
  /** Present exactly when backend is 'webgpu'. */
  readonly gpu?: GpuContext;
  destroy(): void;
}

export const cpuDevice: Device = { backend: 'cpu', name: 'CPU (JavaScript, f32)', destroy() {} };

export async function acquireDevice(backend: BackendName = 'auto'): Promise<Device> {
  if (backend === 'cpu') return cpuDevice;
  const gpu = await acquireGpu();
  if (!gpu) {
    if (backend === 'webgpu')
      throw new DeviceError(
        "no WebGPU adapter found (on Linux, install Mesa's lavapipe: see .ci/install-lavapipe.sh); use --backend cpu",
      );
    return cpuDevice;
  }
  return { backend: 'webgpu', name: gpu.adapterName, gpu, destroy: () => gpu.destroy() };
}
