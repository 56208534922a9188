// The WebGPU device handle (acquire-gpu.ts finds one): device, features, limits, a pipeline cache, buffer helpers
// with memory accounting, error scopes turned into typed errors. Dawn's `webgpu` in Node; navigator.gpu in browsers.
import { SubmitBatch } from './submit-batch.js';
import { DeviceError, OutOfMemoryError } from '../errors.js';
import { checkShaderSizes } from './wgsl-sizes.js';

export interface GpuFeatures {
  f16: boolean;
  subgroups: boolean;
  /** f16 -> f32 subgroup matrices of 16x16x16 with 32-lane subgroups (NVIDIA tensor cores through Dawn). */
  subgroupMatrixF16: boolean;
  timestamps: boolean;
}

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
  /** Command buffers submitted (a forward pass's batch is one). */
  submits: number;
  /** Queue writes made (GpuContext.write), and those skipped because a uniform already held the bytes. */
  writes: number;
  writesSkipped: number;
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
    submits: 0,
    writes: 0,
    writesSkipped: 0,
  };
  /** What each uniform made here holds (as last written): rewriting the same bytes is skipped. A decoded token
   * rewrites every call site's uniform, most with the shapes of the step before; each write is a staging copy
   * Dawn records before the submission (~0.8 ms of host time per token on the H200, docs/BENCHMARKS.md run 4). */
  private uniformBytes = new WeakMap<GPUBuffer, Uint8Array>();
  /** The forward pass's passes in one submission (submit-batch.ts). */
  private readonly batch: SubmitBatch;

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
    this.batch = new SubmitBatch(device);
    this.batch.onSubmit = () => this.counters.submits++;
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

  /** A compute pipeline from WGSL, compiled once per key; sizes checked first, compile errors one-line DeviceErrors. */
  async pipeline(key: string, code: () => string): Promise<GPUComputePipeline> {
    let p = this.pipelines.get(key);
    if (p && this.sources && this.sources.get(key) !== code())
      throw new DeviceError(`pipeline key ${key} names two different kernels: make the key say what differs`);
    if (!p) {
      const source = code();
      checkShaderSizes(key, source, this.maxWorkgroupStorageBytes);
      this.sources?.set(key, source);
      this.device.pushErrorScope('validation');
      const module = this.device.createShaderModule({ code: source, label: key });
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === 'error');
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
      const err = await this.device.popErrorScope();
      if (errors.length || err) {
        const where = errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ') || err!.message;
        throw new DeviceError(`kernel ${key} failed to compile: ${where.replace(/\s*\n\s*/g, '; ')}`);
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
    this.batch.destroy(buffer);
  }

  /** queue.writeBuffer, ordered against a pending batch (submit-batch.ts): every write inside a forward goes here. */
  write(buffer: GPUBuffer, offset: number, data: BufferSource, dataOffset?: number, size?: number): void {
    const held = this.uniformBytes.get(buffer);
    if (held) {
      // Skipping is exact: nothing else writes a uniform made here, and queue writes land in order, so the
      // buffer holds these bytes from the last write on, for every pass recorded after it.
      const bytes = byteView(data, dataOffset, size);
      if (offset + bytes.byteLength <= held.byteLength && sameBytes(held, offset, bytes)) {
        this.counters.writesSkipped++;
        this.batch.touch(buffer); // a different value later in the batch must still submit what reads this
        return;
      }
      held.set(bytes.subarray(0, Math.max(0, held.byteLength - offset)), offset);
    }
    this.counters.writes++;
    this.batch.write(buffer, offset, data, dataOffset, size);
  }

  /** Zeroes `size` bytes at `offset` (multiples of 4) in order with the passes around it: inside a batch a clear
   * in its encoder (no submission, where a second write of the buffer would submit what is pending). */
  clear(buffer: GPUBuffer, offset: number, size: number): void {
    if (this.batch.open) this.batch.clear(buffer, offset, size);
    else this.write(buffer, offset, new Uint8Array(size));
  }

  /** Passes per submission of a batch (BATCH_MAX_PASSES by default; `bench model --batch-passes`). */
  setBatchPasses(passes: number): void {
    this.batch.maxPasses = Math.max(1, Math.floor(passes));
  }

  /** Runs `work` with the passes it encodes with `batch` in one submission (GpuOps.forwardScope). */
  async batched<T>(work: () => Promise<T>): Promise<T> {
    this.batch.begin();
    try {
      return await work();
    } finally {
      this.batch.end();
    }
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
    const held = new Uint8Array(buffer.size);
    held.set(new Uint8Array(words));
    this.uniformBytes.set(buffer, held);
    return buffer;
  }

  /** Reads run one at a time: they share the staging buffer, which cannot be mapped twice. */
  private reading: Promise<unknown> = Promise.resolve();

  read = async (buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> => (await this.readParts([[buffer, bytes]]))[0];

  /** Several buffers' first bytes in one copy and one map (a state's o and lse: one wait, not two), each its own copy. */
  readParts(parts: ReadonlyArray<readonly [GPUBuffer, number]>): Promise<ArrayBuffer[]> {
    const next = this.reading.then(() => this.readPartsNow(parts));
    this.reading = next.catch(() => undefined);
    return next;
  }

  private async readPartsNow(parts: ReadonlyArray<readonly [GPUBuffer, number]>): Promise<ArrayBuffer[]> {
    // Each part lands at a multiple of 8 bytes (copies take multiples of 4, a mapped range starts at one of 8).
    const at: number[] = [];
    const size = parts.reduce((a, [, n]) => (at.push(a), a + Math.ceil(n / 8) * 8), 0);
    if (!this.staging || this.staging.size < size) {
      this.staging?.destroy();
      this.counters.buffersCreated++;
      const usage = GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
      this.staging = this.device.createBuffer({ size: Math.max(size, 256), usage, label: 'host read staging' });
    }
    const staging = this.staging;
    this.counters.hostReads++;
    for (const [, n] of parts) this.counters.hostReadBytes += n;
    // Inside a batch the copies join it: a decoded token is one submission, its logits' copy included.
    const batched = this.batch.pending;
    const enc = batched ? this.batch.encoderFor('host read') : this.device.createCommandEncoder();
    parts.forEach(([b, n], i) => enc.copyBufferToBuffer(b, 0, staging, at[i], Math.ceil(n / 4) * 4));
    if (batched) this.batch.flush();
    else this.submit(enc);
    await staging.mapAsync(GPUMapMode.READ, 0, size);
    const mapped = staging.getMappedRange(0, size);
    const out = parts.map(([, n], i) => mapped.slice(at[i], at[i] + n));
    staging.unmap();
    return out;
  }

  /** Runs one compute pass of dispatches and reports validation errors as DeviceError; `batch` as encode's. */
  async run(label: string, record: (pass: GPUComputePassEncoder) => void, batch = false): Promise<void> {
    return this.encode(
      label,
      (enc) => {
        const pass = enc.beginComputePass();
        record(pass);
        pass.end();
      },
      batch,
    );
  }

  private submit(enc: GPUCommandEncoder): void {
    this.device.queue.submit([enc.finish()]);
    this.counters.submits++;
  }

  /** Inside `checked`: submissions are validated once, at its end, not each on its own. */
  private deferred = 0;

  /**
   * Records copies and passes into one encoder, submits it, and reports validation errors as DeviceError.
   * With `batch`, inside `batched` and `checked`: records into the pending batch instead (submitted at its end,
   * at a read or at an encode without `batch`); the caller vouches that what it records destroys nothing the
   * batch still holds and writes its buffers through `write`.
   */
  async encode(label: string, record: (enc: GPUCommandEncoder) => void, batch = false): Promise<void> {
    if (batch && this.batch.open && this.deferred > 0) return record(this.batch.encoderFor(label));
    this.batch.flush();
    if (this.deferred > 0) {
      const enc = this.device.createCommandEncoder({ label });
      record(enc);
      this.submit(enc);
      return;
    }
    this.device.pushErrorScope('validation');
    const enc = this.device.createCommandEncoder({ label });
    record(enc);
    this.submit(enc);
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
      this.batch.flush();
      await this.device.popErrorScope();
      throw e;
    }
    this.deferred--;
    this.batch.flush();
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
    this.batch.flush();
    this.submit(this.device.createCommandEncoder());
    await this.idle();
  }

  async idle(): Promise<void> {
    this.batch.flush();
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

/** The bytes queue.writeBuffer would take from `data`: dataOffset and size count elements of a typed array. */
function byteView(data: BufferSource, dataOffset = 0, size?: number): Uint8Array {
  if (!ArrayBuffer.isView(data)) return new Uint8Array(data, dataOffset, size);
  const unit = 'BYTES_PER_ELEMENT' in data ? (data.BYTES_PER_ELEMENT as number) : 1;
  const count = size ?? data.byteLength / unit - dataOffset;
  return new Uint8Array(data.buffer, data.byteOffset + dataOffset * unit, count * unit);
}

function sameBytes(held: Uint8Array, offset: number, bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.byteLength; i++) if (held[offset + i] !== bytes[i]) return false;
  return true;
}
