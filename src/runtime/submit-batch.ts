// One command encoder for the passes of a forward pass, submitted once instead of once per pass. A decoded
// token used to submit two command buffers per layer (the ops' pass, the layer's attention), and on the H200 a
// CPU profile put ~1.3 ms of a 4.5 ms window-decoding token in creating, finishing and submitting them
// (docs/BENCHMARKS.md, run 3). Passes join the batch only where the caller says they may (GpuContext.encode's
// `batch`); anything else first submits what is pending, so it sees exactly what it saw before.
//
// Queue writes land before the whole submission, not between its passes, so a write is held to two rules:
// a buffer written once in a batch may be written early (every pass that reads it was recorded after the
// write, in a forward pass: uniforms and tables are written before the passes that read them); a buffer
// written again in the same batch first submits what is pending (a pass recorded since may read the earlier
// value: per-chunk uniforms, a scratch zeroed by each layer), whether or not a submission came between.
// Buffers released while a batch is pending are destroyed after it is submitted.
//
// One submission per token would leave the GPU idle while the host records the whole token, so a batch is
// submitted every BATCH_MAX_PASSES passes (the GPU starts on the first layers while the host records the
// rest). 12 (six layers of two passes) is a guess to be measured on the device, not a measured optimum.
export const BATCH_MAX_PASSES = 12;

export class SubmitBatch {
  private depth = 0;
  private encoder?: GPUCommandEncoder;
  private passes = 0;
  /** Passes recorded into one submission at most (BATCH_MAX_PASSES). */
  maxPasses = BATCH_MAX_PASSES;
  private written = new Set<GPUBuffer>();
  private doomed: GPUBuffer[] = [];
  /** Command buffers submitted through the batch (GpuCounters.submits counts all of them). */
  onSubmit: () => void = () => {};

  constructor(private readonly device: GPUDevice) {}

  /** Within `begin`/`end`: encodes with batch = true join one encoder. */
  get open(): boolean {
    return this.depth > 0;
  }

  get pending(): boolean {
    return this.encoder !== undefined;
  }

  begin(): void {
    this.depth++;
  }

  end(): void {
    this.depth = Math.max(0, this.depth - 1);
    if (this.depth > 0) return;
    this.flush();
    this.written.clear();
  }

  /** The batch's encoder (made on first use). */
  encoderFor(label: string): GPUCommandEncoder {
    if (this.passes >= this.maxPasses) this.flush();
    this.passes++;
    this.encoder ??= this.device.createCommandEncoder({ label: `batch from ${label}` });
    return this.encoder;
  }

  /** Submits what is pending, then destroys what was released meanwhile. */
  flush(): void {
    const enc = this.encoder;
    this.encoder = undefined;
    this.passes = 0;
    // `written` outlives a flush: passes recorded after it may read what was written before it.
    if (enc) {
      this.device.queue.submit([enc.finish()]);
      this.onSubmit();
    }
    for (const b of this.doomed) b.destroy();
    this.doomed = [];
  }

  write(buffer: GPUBuffer, offset: number, data: BufferSource, dataOffset?: number, size?: number): void {
    if (this.open) {
      if (this.encoder && this.written.has(buffer)) this.flush();
      this.written.add(buffer);
    }
    this.device.queue.writeBuffer(buffer, offset, data, dataOffset, size);
  }

  /** A write of the bytes the buffer already holds, skipped: later writes of it in this batch order as after one. */
  touch(buffer: GPUBuffer): void {
    if (this.open) this.written.add(buffer);
  }

  /** Zeroes a range in the command stream, ordered with the passes around it; a later write of the buffer in
   * this batch submits first (it would land before the whole submission, under the clear). */
  clear(buffer: GPUBuffer, offset: number, size: number): void {
    this.encoderFor('clear').clearBuffer(buffer, offset, size);
    this.written.add(buffer);
  }

  /** Destroys now, or after the pending submission that may still use the buffer. */
  destroy(buffer: GPUBuffer): void {
    if (this.encoder) this.doomed.push(buffer);
    else buffer.destroy();
  }
}
