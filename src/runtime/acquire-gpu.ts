// Finding a WebGPU device: the browser's navigator.gpu, or Dawn's Node bindings (the `webgpu` package) with the
// toggles below; the device gets the adapter's maximum limits and the features the kernels can use.
import { DeviceError } from '../errors.js';
import { GpuContext, type GpuFeatures } from './webgpu.js';

/** Dawn toggles, all in one string (a second enable-dawn-features would replace the first). */
export const DAWN_OPTIONS: readonly string[] = [
  'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,use_vulkan_memory_model',
  'disable-dawn-features=timestamp_quantization',
];

/** The Dawn toggles a user may ask for through LONGCTX_DAWN_TOGGLES (Node only): the ones docs/BENCHMARKS.md's
 * A/B measured. disable_robustness drops the bounds clamps on every buffer and workgroup access (27-50% of the
 * tensor-core kernels' time on the H200); our kernels bound their own indices, but an out-of-bounds access is
 * then undefined behaviour instead of a clamped read, so it is an opt-in and the tests run without it. */
export const OPTIONAL_DAWN_TOGGLES: readonly string[] = [
  'disable_robustness',
  'disable_workgroup_init',
  'skip_validation',
];

/** The toggles LONGCTX_DAWN_TOGGLES names (comma-separated), checked: an unknown one is a DeviceError. */
export function userDawnToggles(value: string | undefined): string[] {
  if (!value?.trim()) return [];
  const names = value
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  const unknown = names.filter((t) => !OPTIONAL_DAWN_TOGGLES.includes(t));
  if (unknown.length)
    throw new DeviceError(
      `LONGCTX_DAWN_TOGGLES: unknown toggle ${unknown.join(', ')}; allowed: ${OPTIONAL_DAWN_TOGGLES.join(', ')}`,
    );
  return [...new Set(names)];
}

async function getGpu(extraToggles: string[] = []): Promise<{ gpu: GPU; instance: unknown; toggles: string[] } | null> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, instance: nav.gpu, toggles: [] };
  if (typeof process === 'undefined' || !process.versions?.node) return null;
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  let mod: { create: (o: string[]) => GPU; globals: object };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch {
    return null;
  }
  Object.assign(globalThis, mod.globals);
  extraToggles = [...new Set([...extraToggles, ...userDawnToggles(process.env.LONGCTX_DAWN_TOGGLES)])];
  const options = extraToggles.length
    ? [`${DAWN_OPTIONS[0]},${extraToggles.join(',')}`, ...DAWN_OPTIONS.slice(1)]
    : DAWN_OPTIONS;
  const gpu = mod.create([...options]);
  return { gpu, instance: gpu, toggles: extraToggles };
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
  let name =
    [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' ') || 'WebGPU adapter';
  // Every report that names the device says when it ran without Dawn's defaults.
  if (found.toggles.length) name += ` [dawn: ${found.toggles.join(',')}]`;
  return new GpuContext(device, name, found.instance, features);
}
