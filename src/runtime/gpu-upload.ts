// Large host-to-GPU copies (a saved session's caches: 4 GiB for a 1B model at 128K tokens) in bounded pieces.
// One queue.writeBuffer of N bytes makes Dawn stage all N bytes in a buffer of their own before the copy, so
// a session load would hold a second copy of every cache in staging memory until the GPU caught up (on lavapipe
// a 1 GiB restore slowed from 0.4 to 1.6 s a layer as staging piled up). Three ways, `LONGCTX_UPLOAD` picks one
// (scripts/upload-sweep.ts measures them on a device):
//   write   (default) writeBuffer in 64 MiB pieces, waiting for the queue after every 512 MiB;
//   small   writeBuffer in 4 MiB pieces (Dawn's own upload ring takes writes up to its ring size), same waits;
//   staging two 64 MiB mapped staging buffers of our own, filled in turn while the GPU copies the other one
//           (mapAsync waits for the copy; no staging memory is allocated per write).
import { InputError } from '../errors.js';
import { environment } from '../io/limits.js';
import type { GpuContext } from './webgpu.js';

export const UPLOAD_MODES = ['write', 'small', 'staging'] as const;
export type UploadMode = (typeof UPLOAD_MODES)[number];

const MiB = 1 << 20;
const DRAIN = 512 * MiB;

/** Element views the uploads take (the caches' f16 bits and f32 values). */
export type UploadData = Uint16Array<ArrayBuffer> | Float32Array<ArrayBuffer> | Uint8Array<ArrayBuffer>;

/** LONGCTX_UPLOAD's mode (Node; the default in a browser, which has no environment). */
export function uploadModeFromEnv(value = environment().LONGCTX_UPLOAD): UploadMode {
  if (value === undefined || value === '') return 'write';
  if (!(UPLOAD_MODES as readonly string[]).includes(value))
    throw new InputError(`LONGCTX_UPLOAD takes ${UPLOAD_MODES.join(', ')}; got '${value}'`);
  return value as UploadMode;
}

/** Queues uploads of `data` into buffers, in pieces, and waits for the queue now and then (see above). One per
 * batch of uploads (a layer's restore), ended by settle(): its staging buffers are its own. */
export class GpuUploader {
  private since = 0;
  private readonly piece: number;
  private staging: GPUBuffer[] = [];
  private turn = 0;

  constructor(
    private readonly gpu: GpuContext,
    readonly mode: UploadMode = 'write',
    piece?: number,
    private readonly drain = DRAIN,
  ) {
    this.piece = piece ?? (mode === 'small' ? 4 * MiB : 64 * MiB);
  }

  /** Writes `count` elements of `data` from element `from` at byte `offset` of `buffer` (sizes multiples of 4 bytes). */
  async write(
    buffer: GPUBuffer,
    offset: number,
    data: UploadData,
    from = 0,
    count = data.length - from,
  ): Promise<void> {
    const size = data.BYTES_PER_ELEMENT;
    const step = Math.max(4, Math.floor(this.piece / size / 4) * 4);
    for (let done = 0; done < count; done += step) {
      const n = Math.min(step, count - done);
      if (this.mode === 'staging') await this.stage(buffer, offset + done * size, data, from + done, n);
      else {
        this.gpu.write(buffer, offset + done * size, data, from + done, n);
        this.since += n * size;
        if (this.since >= this.drain) await this.settle();
      }
    }
  }

  private async stage(buffer: GPUBuffer, at: number, data: UploadData, from: number, n: number): Promise<void> {
    const bytes = n * data.BYTES_PER_ELEMENT;
    const device = this.gpu.device;
    if (this.staging.length < 2)
      this.staging.push(
        device.createBuffer({
          size: this.piece,
          usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC,
          mappedAtCreation: true,
          label: 'upload staging',
        }),
      );
    const s = this.staging[this.turn % this.staging.length];
    this.turn++;
    // A buffer made mapped is ready; one that went to a copy is mapped again once that copy is done.
    if (s.mapState === 'unmapped') await s.mapAsync(GPUMapMode.WRITE);
    new Uint8Array(s.getMappedRange(0, bytes)).set(
      new Uint8Array(data.buffer, data.byteOffset + from * data.BYTES_PER_ELEMENT, bytes),
    );
    s.unmap();
    await this.gpu.encode('upload', (enc) => enc.copyBufferToBuffer(s, 0, buffer, at, bytes));
  }

  /** Waits until the queued writes have reached the GPU; frees the staging buffers. */
  async settle(): Promise<void> {
    this.since = 0;
    await this.gpu.idle();
    for (const s of this.staging) s.destroy();
    this.staging = [];
  }
}
