// The WebGPU device handle: adapter, device, features, limits, a pipeline cache, buffer helpers with
// memory accounting, and error scopes turned into typed errors. Node gets WebGPU from Dawn's `webgpu`
// package; browsers from navigator.gpu.
import { DeviceError, OutOfMemoryError } from '../errors.js';

export interface GpuFeatures {
  f16: boolean;
  subgroups: boolean;
  /** f16 -> f32 subgroup matrices of 16x16x16 with 32-lane subgroups (NVIDIA tensor cores through Dawn). */
  subgroupMatrixF16: boolean;
  timestamps: boolean;
}

/** Dawn toggles, all in one string (a second enable-dawn-features would replace the first). */
export const DAWN_OPTIONS: readonly string[] = [
  'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,use_vulkan_memory_model',
  'disable-dawn-features=timestamp_quantization',
];

/** Counts of what crosses to the host or is allocated; see GpuContext.counters. */
export interface GpuCounters {
  /** Device-to-host reads (GpuContext.read) and their bytes. */
  hostReads: number;
  hostReadBytes: number;
  /** Storage and staging buffers created through this context. */
  buffersCreated: number;
  /** Uniform buffers created through GpuContext.uniform. */
  uniformsCreated: number;
  bindGroupsCreated: number;
}

export class GpuContext {
  readonly features: GpuFeatures;
  readonly maxBindingBytes: number;
  readonly maxWorkgroupStorageBytes: number;
  readonly maxWorkgroupsPerDim: number;
  private pipelines = new Map<string, GPUComputePipeline>();
  /** With LONGCTX_CHECK_PIPELINE_KEYS=1 (the tests set it): each key's WGSL, to refuse a key that names two
   * kernels. A collision once made a model run whichever of two append kernels compiled first (issue 11). */
  private readonly sources =
    typeof process !== 'undefined' && process.env?.LONGCTX_CHECK_PIPELINE_KEYS === '1'
      ? new Map<string, string>()
      : undefined;
  private live = new Map<GPUBuffer, number>();
  private liveBytes = 0;
  private peak = 0;
  /** One staging buffer for host reads, grown when a larger read comes (never one per read). */
  private staging?: GPUBuffer;
  /** What this context did since it was made: tests hold reads and creations per decoded token to a budget. */
  readonly counters: GpuCounters = {
    hostReads: 0,
    hostReadBytes: 0,
    buffersCreated: 0,
    uniformsCreated: 0,
    bindGroupsCreated: 0,
  };

  constructor(
    readonly device: GPUDevice,
    readonly adapterName: string,
    /** Dawn's GPU instance: held so that V8 never collects it while work runs (docs/WEBGPU.md). */
    private readonly instance: unknown,
    features: GpuFeatures,
  ) {
    this.features = features;
    this.maxBindingBytes = device.limits.maxStorageBufferBindingSize;
    this.maxWorkgroupStorageBytes = device.limits.maxComputeWorkgroupStorageSize;
    this.maxWorkgroupsPerDim = device.limits.maxComputeWorkgroupsPerDimension;
  }

  get instanceHandle(): unknown {
    return this.instance;
  }

  /** Bytes in buffers this context created and has not destroyed. */
  get allocatedBytes(): number {
    return this.liveBytes;
  }

  get peakBytes(): number {
    return this.peak;
  }

  resetPeak(): void {
    this.peak = this.liveBytes;
  }

  /** A compute pipeline from WGSL, compiled once per key; compile errors become DeviceErrors with the messages. */
  async pipeline(key: string, code: () => string): Promise<GPUComputePipeline> {
    let p = this.pipelines.get(key);
    if (p && this.sources && this.sources.get(key) !== code())
      throw new DeviceError(`pipeline key ${key} names two different kernels: make the key say what differs`);
    if (!p) {
      const source = code();
      this.sources?.set(key, source);
      this.device.pushErrorScope('validation');
      const module = this.device.createShaderModule({ code: source, label: key });
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === 'error');
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
      const err = await this.device.popErrorScope();
      if (errors.length || err) {
        const where = errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ');
        throw new DeviceError(`kernel ${key} failed to compile: ${where || err!.message}`);
      }
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** A storage buffer. Throws OutOfMemoryError when the size exceeds a binding or the device refuses it. */
  async createBuffer(bytes: number, label: string, usage = 0): Promise<GPUBuffer> {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    if (size > this.maxBindingBytes) {
      throw new OutOfMemoryError(
        `${label}: ${size} bytes exceed this device's largest binding (${this.maxBindingBytes} bytes)`,
        size,
        this.maxBindingBytes,
      );
    }
    try {
      return await this.tryCreateBuffer(size, label, usage);
    } catch (e) {
      if (!(e instanceof OutOfMemoryError)) throw e;
      await this.flushDestroyed();
      return this.tryCreateBuffer(size, label, usage);
    }
  }

  private async tryCreateBuffer(size: number, label: string, usage: number): Promise<GPUBuffer> {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    const buffer = this.device.createBuffer({
      size,
      label,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | usage,
    });
    const validation = await this.device.popErrorScope();
    const oom = await this.device.popErrorScope();
    if (oom || validation) {
      buffer.destroy();
      const why = (oom ?? validation)!.message;
      if (oom)
        throw new OutOfMemoryError(
          `${label}: the device could not allocate ${size} bytes (${why})`,
          size,
          this.liveBytes,
        );
      throw new DeviceError(`${label}: buffer of ${size} bytes refused: ${why}`);
    }
    this.counters.buffersCreated++;
    this.live.set(buffer, size);
    this.liveBytes += size;
    this.peak = Math.max(this.peak, this.liveBytes);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const size = this.live.get(buffer);
    if (size === undefined) return;
    this.live.delete(buffer);
    this.liveBytes -= size;
    buffer.destroy();
  }

  async upload(data: ArrayBufferView, label: string): Promise<GPUBuffer> {
    const buffer = await this.createBuffer(data.byteLength, label);
    writePadded(this.device, buffer, data);
    return buffer;
  }

  uniform(words: ArrayBuffer, label?: string): GPUBuffer {
    this.counters.uniformsCreated++;
    const buffer = this.device.createBuffer({
      size: Math.max(16, Math.ceil(words.byteLength / 16) * 16),
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label,
    });
    this.device.queue.writeBuffer(buffer, 0, words);
    return buffer;
  }

  /** Reads run one at a time: they share the staging buffer, which cannot be mapped twice. */
  private reading: Promise<unknown> = Promise.resolve();

  read(buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const next = this.reading.then(() => this.readNow(buffer, bytes));
    this.reading = next.catch(() => undefined);
    return next;
  }

  private async readNow(buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    if (!this.staging || this.staging.size < size) {
      this.staging?.destroy();
      this.counters.buffersCreated++;
      this.staging = this.device.createBuffer({
        size: Math.max(size, 256),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: 'host read staging',
      });
    }
    const staging = this.staging;
    this.counters.hostReads++;
    this.counters.hostReadBytes += bytes;
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(buffer, 0, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ, 0, size);
    const copy = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    return copy;
  }

  /** Runs one compute pass of dispatches and reports validation errors as DeviceError. */
  async run(label: string, record: (pass: GPUComputePassEncoder) => void): Promise<void> {
    return this.encode(label, (enc) => {
      const pass = enc.beginComputePass();
      record(pass);
      pass.end();
    });
  }

  /** Inside `checked`: submissions are validated once, at its end, not each on its own. */
  private deferred = 0;

  /** Records copies and passes into one encoder, submits it, and reports validation errors as DeviceError. */
  async encode(label: string, record: (enc: GPUCommandEncoder) => void): Promise<void> {
    if (this.deferred > 0) {
      const enc = this.device.createCommandEncoder({ label });
      record(enc);
      this.device.queue.submit([enc.finish()]);
      return;
    }
    this.device.pushErrorScope('validation');
    const enc = this.device.createCommandEncoder({ label });
    record(enc);
    this.device.queue.submit([enc.finish()]);
    const err = await this.device.popErrorScope();
    if (err) throw new DeviceError(`${label}: ${err.message}`);
  }

  /**
   * Runs `work` with one validation scope around all its submissions instead of one each: every popped
   * scope is a round trip to Dawn, and a decoding step submits a few passes per layer (the model's forward).
   * A validation error is reported at the end, under `label`.
   */
  async checked<T>(label: string, work: () => Promise<T>): Promise<T> {
    this.device.pushErrorScope('validation');
    this.deferred++;
    let result: T;
    try {
      result = await work();
    } catch (e) {
      this.deferred--;
      await this.device.popErrorScope();
      throw e;
    }
    this.deferred--;
    const err = await this.device.popErrorScope();
    if (err) throw new DeviceError(`${label}: ${err.message}`);
    return result;
  }

  bind(pipeline: GPUComputePipeline, buffers: GPUBuffer[]): GPUBindGroup {
    this.counters.bindGroupsCreated++;
    return this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
  }

  /**
   * Dawn frees destroyed buffers only once a later queue serial completes: on the H100, 79 GiB of
   * destroyed 1 GiB buffers stayed held through idle waits, timers and V8 GC, and came back after one
   * empty submit (docs/WEBGPU.md). Called before giving up on an allocation.
   */
  async flushDestroyed(): Promise<void> {
    this.device.queue.submit([this.device.createCommandEncoder().finish()]);
    await this.idle();
  }

  async idle(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
  }

  destroy(): void {
    this.staging?.destroy();
    this.staging = undefined;
    for (const b of this.live.keys()) b.destroy();
    this.live.clear();
    this.liveBytes = 0;
    this.device.destroy();
  }
}

function writePadded(device: GPUDevice, buffer: GPUBuffer, data: ArrayBufferView): void {
  const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  const whole = bytes.byteLength - (bytes.byteLength % 4);
  if (whole > 0) device.queue.writeBuffer(buffer, 0, bytes, 0, whole);
  if (whole < bytes.byteLength) {
    const tail = new Uint8Array(4);
    tail.set(bytes.subarray(whole));
    device.queue.writeBuffer(buffer, whole, tail);
  }
}

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
