// Where a forward pass's GPU time goes, per kernel: with the profiler installed, every dispatch recorded on the
// device runs in a compute pass of its own whose begin and end write timestamps, and the time between is put
// to the dispatch's pipeline (its label is the kernel's pipeline key, GpuContext.pipeline). Issue 11 asks, where
// a speed target is missed, which kernel holds it back and with what share: this answers it on the device the
// target is set on (the H200), without touching any kernel's call site.
//
// How: the device's createCommandEncoder is wrapped (so the decoder's batches, GpuContext.encode and any
// caller's own encoder are all seen); the wrapped encoder's beginComputePass returns a pass that remembers the
// pipeline and bind groups and, at each dispatch, replays them into a real timed pass. At finish the encoder
// resolves its queries into a buffer that is mapped after the submission (queue.submit is wrapped for that);
// `collect` waits for those maps and sums per (phase, kernel).
//
// Splitting passes and resolving queries cost time of their own, so a profiled run's tokens/s are not the
// benchmark's: a profile gives shares, and its row says it was profiled. Copies and clears are not timed (they
// are not kernels); dispatches past QUERY_PAIRS in one encoder run untimed and are counted as such.
import { DeviceError } from '../errors.js';

/** Timed dispatches per encoder (two queries each; WebGPU's limit on a query set is 4096 queries). */
export const QUERY_PAIRS = 2048;

export interface KernelTime {
  /** The pipeline's label (its GpuContext.pipeline key), or 'unlabelled'. */
  kernel: string;
  dispatches: number;
  ms: number;
}

export interface PhaseProfile {
  phase: string;
  /** Summed GPU time of the timed dispatches, and their kernels by time, largest first. */
  ms: number;
  kernels: KernelTime[];
  /** Dispatches that ran without timestamps (an encoder past QUERY_PAIRS). */
  untimed: number;
}

interface Slot {
  set: GPUQuerySet;
  resolve: GPUBuffer;
  read: GPUBuffer;
}

interface Pending {
  slot: Slot;
  labels: string[];
  phase: string;
  mapped?: Promise<void>;
}

type Bound = [index: number, group: GPUBindGroup | null, offsets?: Iterable<number>];

export class GpuProfiler {
  private phaseName = 'default';
  private free: Slot[] = [];
  private finished: Pending[] = [];
  private submitted: Pending[] = [];
  private sums = new Map<string, Map<string, { dispatches: number; ns: number }>>();
  private untimed = new Map<string, number>();
  private restore?: () => void;

  constructor(private readonly device: GPUDevice) {}

  /** Patches the device (its createCommandEncoder and its queue's submit) until `uninstall`. */
  install(): void {
    if (this.restore) return;
    if (!this.device.features.has('timestamp-query'))
      throw new DeviceError('profiling needs the timestamp-query feature, which this WebGPU device lacks');
    const device = this.device as GPUDevice & { createCommandEncoder: GPUDevice['createCommandEncoder'] };
    const queue = device.queue as GPUQueue & { submit: GPUQueue['submit'] };
    const create = device.createCommandEncoder;
    const submit = queue.submit;
    device.createCommandEncoder = (desc?: GPUCommandEncoderDescriptor) => this.wrapEncoder(create.call(device, desc));
    queue.submit = (buffers: Iterable<GPUCommandBuffer>) => {
      submit.call(queue, buffers);
      this.afterSubmit();
    };
    this.restore = () => {
      device.createCommandEncoder = create;
      queue.submit = submit;
    };
  }

  uninstall(): void {
    this.restore?.();
    this.restore = undefined;
  }

  /** Later dispatches are summed under this phase (a prefill, decoding). */
  phase(name: string): void {
    this.phaseName = name;
  }

  /** Waits for every submitted encoder's timestamps and returns the phases so far (then starts afresh). */
  async collect(): Promise<PhaseProfile[]> {
    if (this.finished.length) throw new DeviceError('profile collected with an encoder finished but not submitted');
    const pending = this.submitted;
    this.submitted = [];
    for (const p of pending) {
      await p.mapped;
      const stamps = new BigInt64Array(p.slot.read.getMappedRange(0, p.labels.length * 16));
      for (let i = 0; i < p.labels.length; i++)
        this.add(p.phase, p.labels[i], Number(stamps[2 * i + 1] - stamps[2 * i]));
      p.slot.read.unmap();
      this.free.push(p.slot);
    }
    const phases = [...new Set([...this.sums.keys(), ...this.untimed.keys()])].map((phase) => {
      const kernels = [...(this.sums.get(phase) ?? new Map()).entries()]
        .map(([kernel, s]) => ({ kernel, dispatches: s.dispatches, ms: s.ns / 1e6 }))
        .sort((a, b) => b.ms - a.ms);
      return { phase, ms: kernels.reduce((t, k) => t + k.ms, 0), kernels, untimed: this.untimed.get(phase) ?? 0 };
    });
    this.sums.clear();
    this.untimed.clear();
    return phases;
  }

  destroy(): void {
    this.uninstall();
    for (const s of this.free) [s.set, s.resolve, s.read].forEach((r) => r.destroy());
    this.free = [];
  }

  private add(phase: string, kernel: string, ns: number): void {
    let byKernel = this.sums.get(phase);
    if (!byKernel) this.sums.set(phase, (byKernel = new Map()));
    const s = byKernel.get(kernel) ?? { dispatches: 0, ns: 0 };
    s.dispatches++;
    // A negative span (a clock that went back between passes) counts as none.
    s.ns += Math.max(0, ns);
    byKernel.set(kernel, s);
  }

  private slot(): Slot {
    return (
      this.free.pop() ?? {
        set: this.device.createQuerySet({ type: 'timestamp', count: 2 * QUERY_PAIRS }),
        resolve: this.device.createBuffer({
          size: 16 * QUERY_PAIRS,
          usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
        }),
        read: this.device.createBuffer({
          size: 16 * QUERY_PAIRS,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        }),
      }
    );
  }

  private afterSubmit(): void {
    for (const p of this.finished) {
      p.mapped = p.slot.read.mapAsync(GPUMapMode.READ, 0, p.labels.length * 16);
      this.submitted.push(p);
    }
    this.finished = [];
  }

  private wrapEncoder(enc: GPUCommandEncoder): GPUCommandEncoder {
    let slot: Slot | undefined;
    const labels: string[] = [];
    const phase = this.phaseName;
    const timedPass = (): GPUComputePassEncoder => {
      if (labels.length >= QUERY_PAIRS) {
        this.untimed.set(phase, (this.untimed.get(phase) ?? 0) + 1);
        return enc.beginComputePass();
      }
      slot ??= this.slot();
      const i = labels.length;
      return enc.beginComputePass({
        timestampWrites: { querySet: slot.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
    };
    const splitPass = (): GPUComputePassEncoder => {
      let pipeline: GPUComputePipeline | undefined;
      const bound = new Map<number, Bound>();
      const dispatch = (run: (real: GPUComputePassEncoder) => void) => {
        const timed = labels.length < QUERY_PAIRS;
        const real = timedPass();
        if (pipeline) real.setPipeline(pipeline);
        for (const [index, group, offsets] of bound.values()) real.setBindGroup(index, group, offsets);
        run(real);
        real.end();
        if (timed) labels.push(pipeline?.label || 'unlabelled');
      };
      const pass = {
        label: '',
        setPipeline: (p: GPUComputePipeline) => void (pipeline = p),
        setBindGroup: (index: number, group: GPUBindGroup | null, offsets?: Iterable<number>) =>
          void bound.set(index, [index, group, offsets ? [...offsets] : undefined]),
        dispatchWorkgroups: (x: number, y?: number, z?: number) => dispatch((r) => r.dispatchWorkgroups(x, y, z)),
        dispatchWorkgroupsIndirect: (b: GPUBuffer, off: number) =>
          dispatch((r) => r.dispatchWorkgroupsIndirect(b, off)),
        end: () => {},
        pushDebugGroup: () => {},
        popDebugGroup: () => {},
        insertDebugMarker: () => {},
      };
      return pass as unknown as GPUComputePassEncoder;
    };
    const finish = (desc?: GPUCommandBufferDescriptor): GPUCommandBuffer => {
      if (slot && labels.length) {
        enc.resolveQuerySet(slot.set, 0, 2 * labels.length, slot.resolve, 0);
        enc.copyBufferToBuffer(slot.resolve, 0, slot.read, 0, 16 * labels.length);
        this.finished.push({ slot, labels, phase });
      } else if (slot) this.free.push(slot);
      return enc.finish(desc);
    };
    return new Proxy(enc, {
      get(target, key) {
        if (key === 'beginComputePass')
          return (desc?: GPUComputePassDescriptor) =>
            desc?.timestampWrites ? target.beginComputePass(desc) : splitPass();
        if (key === 'finish') return finish;
        const v = Reflect.get(target, key, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }
}
