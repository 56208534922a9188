// Large host-to-GPU copies (a saved session's caches: 4 GiB for a 1B model at 128K tokens) in bounded pieces.
// One queue.writeBuffer of N bytes makes Dawn stage all N bytes in a buffer of their own before the copy, so
// a session load would hold a second copy of every cache in staging memory until the GPU caught up. Writing
// PIECE bytes at a time and waiting for the queue after every DRAIN bytes bounds that to DRAIN, and lets Dawn
// reuse its staging memory instead of allocating gigabytes of it.
import type { GpuContext } from './webgpu.js';

const PIECE = 64 << 20;
const DRAIN = 512 << 20;

/** Element views the uploads take (the caches' f16 bits and f32 values). */
export type UploadData = Uint16Array<ArrayBuffer> | Float32Array<ArrayBuffer> | Uint8Array<ArrayBuffer>;

/** Queues uploads of `data` into buffers and waits for the queue now and then (see above). */
export class GpuUploader {
  private since = 0;
  constructor(
    private readonly gpu: GpuContext,
    private readonly piece = PIECE,
    private readonly drain = DRAIN,
  ) {}

  /** Writes `count` elements of `data` from element `from` at byte `offset` of `buffer` (sizes multiples of 4 bytes). */
  async write(
    buffer: GPUBuffer,
    offset: number,
    data: UploadData,
    from = 0,
    count = data.length - from,
  ): Promise<void> {
    const size = data.BYTES_PER_ELEMENT;
    const step = Math.max(1, Math.floor(this.piece / size / 4) * 4);
    for (let done = 0; done < count; done += step) {
      const n = Math.min(step, count - done);
      this.gpu.write(buffer, offset + done * size, data, from + done, n);
      this.since += n * size;
      if (this.since >= this.drain) await this.settle();
    }
  }

  /** Waits until the queued writes have reached the GPU. */
  async settle(): Promise<void> {
    this.since = 0;
    await this.gpu.idle();
  }
}

const uploaders = new WeakMap<GpuContext, GpuUploader>();

/** The device's uploader: every large upload shares its count, so layers restored one after another drain too. */
export function uploaderOf(gpu: GpuContext): GpuUploader {
  let u = uploaders.get(gpu);
  if (!u) uploaders.set(gpu, (u = new GpuUploader(gpu)));
  return u;
}
