// Finding a WebGPU device: the browser's navigator.gpu, or Dawn's Node bindings (the `webgpu` package) with the
// toggles below; the device gets the adapter's maximum limits and the features the kernels can use.
import { DeviceError } from '../errors.js';
import { GpuContext, type GpuFeatures } from './webgpu.js';

/** Dawn toggles, all in one string (a second enable-dawn-features would replace the first). */
export const DAWN_OPTIONS: readonly string[] = [
  'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,use_vulkan_memory_model',
  'disable-dawn-features=timestamp_quantization',
];

async function getGpu(extraToggles: string[] = []): Promise<{ gpu: GPU; instance: unknown } | null> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, instance: nav.gpu };
  if (typeof process === 'undefined' || !process.versions?.node) return null;
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  let mod: { create: (o: string[]) => GPU; globals: object };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch {
    return null;
  }
  Object.assign(globalThis, mod.globals);
  const options = extraToggles.length
    ? [`${DAWN_OPTIONS[0]},${extraToggles.join(',')}`, ...DAWN_OPTIONS.slice(1)]
    : DAWN_OPTIONS;
  const gpu = mod.create([...options]);
  return { gpu, instance: gpu };
}

/** Acquires a WebGPU device with the adapter's maximum limits and the features we can use, or null.
 * extraToggles: more Dawn toggles to enable (the kernel benchmark's A/B of disable_robustness etc.). */
export async function acquireGpu(extraToggles: string[] = []): Promise<GpuContext | null> {
  const found = await getGpu(extraToggles);
  if (!found) return null;
  const adapter = await found.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return null;
  const want: GPUFeatureName[] = [];
  const has = (f: string) => adapter.features.has(f);
  for (const f of ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'])
    if (has(f)) want.push(f as GPUFeatureName);
  const requiredLimits: Record<string, number> = {};
  for (const name of [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxStorageBuffersPerShaderStage',
    'maxComputeWorkgroupsPerDimension',
  ]) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: want, requiredLimits });
  } catch (e) {
    throw new DeviceError(`the WebGPU adapter refused a device: ${(e as Error).message}`);
  }
  const configs =
    (
      adapter.info as unknown as {
        subgroupMatrixConfigs?: Array<{
          componentType: string;
          resultComponentType: string;
          M: number;
          N: number;
          K: number;
        }>;
      }
    ).subgroupMatrixConfigs ?? [];
  const info = adapter.info;
  const features: GpuFeatures = {
    f16: has('shader-f16'),
    subgroups: has('subgroups'),
    subgroupMatrixF16:
      has('chromium-experimental-subgroup-matrix') &&
      has('shader-f16') &&
      has('subgroups') &&
      (info as unknown as { subgroupMinSize?: number }).subgroupMinSize === 32 &&
      (info as unknown as { subgroupMaxSize?: number }).subgroupMaxSize === 32 &&
      configs.some(
        (c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16,
      ),
    timestamps: has('timestamp-query'),
  };
  const name =
    [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' ') || 'WebGPU adapter';
  return new GpuContext(device, name, found.instance, features);
}
