// The NaN policy on the WebGPU decoder (docs/HARDENING.md): the next layer's attention RMSNorm
// (kernels/rmsnorm-wgsl.ts, checked) or, after the last layer, a tiny kernel (kernels/finite-flag-wgsl.ts)
// raises a layer's flag word when the residual stream it left holds a NaN or an infinity. The words sit in
// the logits buffer after the vocabulary, are zeroed at the start of each forward and come back with the
// logits, so decoding keeps its one host read per token; the read throws a NonFiniteError naming the first
// layer (in execution order) that went non-finite, as the CPU decoder does.
import { NonFiniteError } from '../../errors.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { finiteFlagMark } from '../../kernels/finite-flag-wgsl.js';

export class FiniteFlags {
  private readonly zeros: Uint32Array<ArrayBuffer>;

  /** `logits` holds vocab f32 logits, then one u32 flag word per layer. */
  constructor(
    readonly logits: GPUBuffer,
    readonly vocab: number,
    readonly layers: number,
  ) {
    this.zeros = new Uint32Array(layers);
  }

  /** Words of the logits buffer a decoder allocates for `vocab` logits and `layers` flags. */
  static words(vocab: number, layers: number): number {
    return vocab + layers;
  }

  /** Flag word of layer `layer` (an index into the logits buffer as u32). */
  word(layer: number): number {
    return this.vocab + layer;
  }

  /** Clears the flags before a forward (queue order puts it before the forward's dispatches). */
  reset(gpu: GpuContext): void {
    gpu.write(this.logits, this.vocab * 4, this.zeros);
  }

  /** Throws a NonFiniteError for the first layer flagged in `flags` (the words read after the logits). */
  check(flags: Uint32Array): void {
    let first = -1;
    for (let l = 0; l < this.layers; l++) if (flags[l] > (first < 0 ? 0 : flags[first])) first = l;
    if (first < 0) return;
    const position = finiteFlagMark(0) - flags[first];
    throw new NonFiniteError(
      `the output of layer ${first} turned non-finite at positions from ${position} (WebGPU); the weights ` +
        'overflow in f32 or are broken',
      `layer ${first}`,
    );
  }
}
