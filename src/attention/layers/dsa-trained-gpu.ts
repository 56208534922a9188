// A trained DSA indexer's projection on the GPU for the resident DSA layer (dsa-gpu.ts): its weights uploaded
// once, and per chunk the RoPE table of the chunk's positions (float64 on the host, as the model's own RoPE
// table) and one dispatch of kernels/dsa-trained-project-wgsl.ts from the layer's attention input h into the
// index keys, queries and weights that the resident selection reads (a shared key: IndexerSlots.shared).
import { ShapeError } from '../../errors.js';
import type { IndexerSlots } from '../../kernels/dsa-indexer-project-wgsl.js';
import { trainedProjectParams, trainedProjectWgsl } from '../../kernels/dsa-trained-project-wgsl.js';
import { ropeCosSinTable } from '../../kernels/rope-cpu.js';
import type { GpuContext } from '../../runtime/webgpu.js';
import { BindGroupCache, persistentUniform, writeUniform } from './gpu-binds.js';

/** What the layer needs of a trained indexer (model/caches/dsa-indexer.ts makes it from the weights file). */
export interface ResidentTrainedIndexer {
  hidden: number;
  /** [W_q (H_I D_I rows); W_k (D_I); W_proj (H_I)] x hidden, then k_norm's weight [D_I] and bias [D_I]. */
  weights: Float32Array;
  /** The key's LayerNorm applies (the file has k_norm). */
  norm: boolean;
  /** w's constant factor, 1 / sqrt(H_I D_I). */
  weight: number;
  /** The model's RoPE inverse frequencies over its head dim's pairs (RoPE scaling included). */
  invFreq: ArrayLike<number>;
  ropeLayout: 'interleaved' | 'half';
}

export interface TrainedIndexBuffers {
  ik: GPUBuffer;
  iq: GPUBuffer;
  iw: GPUBuffer;
  kscale?: GPUBuffer;
}

export class TrainedIndexProjection {
  private readonly binds = new BindGroupCache();

  private constructor(
    private readonly gpu: GpuContext,
    private readonly ix: ResidentTrainedIndexer,
    private readonly pipeline: GPUComputePipeline,
    private readonly weights: GPUBuffer,
    private readonly table: GPUBuffer,
    private readonly uniform: GPUBuffer,
    private readonly out: TrainedIndexBuffers,
    private readonly maxChunk: number,
  ) {}

  static async create(
    gpu: GpuContext,
    ix: ResidentTrainedIndexer,
    slots: IndexerSlots,
    out: TrainedIndexBuffers,
    maxChunk: number,
  ): Promise<TrainedIndexProjection> {
    const { heads: HI, per: DI } = slots;
    const rows = HI * DI + DI + HI;
    if (ix.weights.length !== rows * ix.hidden + 2 * DI)
      throw new ShapeError(
        `trained indexer weights of ${ix.weights.length} values, not ${rows} x ${ix.hidden} + 2 x ${DI}`,
      );
    const pairs = ix.invFreq.length;
    if (maxChunk > gpu.maxWorkgroupsPerDim)
      throw new ShapeError(`trained indexer projection: chunks of ${maxChunk} tokens exceed one dispatch's workgroups`);
    if (2 * pairs > DI) throw new ShapeError(`trained indexer dim ${DI} is below the rotary dim ${2 * pairs}`);
    const shape = { slots, pairs, ropeLayout: ix.ropeLayout };
    const key = `dsa-trained-project-${slots.precision}-${HI}-${DI}-${pairs}-${ix.ropeLayout}`;
    const pipeline = await gpu.pipeline(key, () => trainedProjectWgsl(shape));
    const weights = await gpu.createBuffer(ix.weights.byteLength, 'dsa trained indexer weights');
    let table: GPUBuffer | undefined;
    try {
      table = await gpu.createBuffer(maxChunk * pairs * 2 * 4, 'dsa trained indexer rope table');
    } catch (e) {
      gpu.release(weights);
      throw e;
    }
    gpu.write(weights, 0, ix.weights as Float32Array<ArrayBuffer>);
    const uniform = persistentUniform(gpu, 32);
    return new TrainedIndexProjection(gpu, ix, pipeline, weights, table, uniform, out, maxChunk);
  }

  /** Writes the chunk's RoPE table and uniforms; returns the recorder of the one dispatch (h [T, hidden] f32). */
  prepare(h: GPUBuffer | undefined, start: number, T: number): (pass: GPUComputePassEncoder) => void {
    if (!h) throw new ShapeError('a trained dsa indexer needs the attention input h (LayerChunk.input)');
    if (T > this.maxChunk) throw new ShapeError(`trained indexer projection takes ${this.maxChunk} tokens, got ${T}`);
    this.gpu.write(this.table, 0, ropeTable(this.ix.invFreq, start, T));
    const p = { tokens: T, start, hidden: this.ix.hidden, norm: this.ix.norm, weight: this.ix.weight };
    writeUniform(this.gpu, this.uniform, trainedProjectParams(p));
    const o = this.out;
    const group = this.binds.get([h], () => [
      this.gpu.bind(this.pipeline, [
        h,
        this.weights,
        this.table,
        o.ik,
        o.iq,
        o.iw,
        ...(o.kscale ? [o.kscale] : []),
        this.uniform,
      ]),
    ])[0];
    return (pass) => {
      pass.setPipeline(this.pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(T);
    };
  }

  destroy(): void {
    this.gpu.release(this.weights);
    this.gpu.release(this.table);
    this.uniform.destroy();
    this.binds.clear();
  }
}

/** The last table made: every layer of a chunk rotates the same positions with the same frequencies, so the
 * float64 trigonometry (2 T x pairs calls, ~1 s over a 128K prefill of 6 layers) runs once a chunk, not per layer. */
let lastTable: { key: string; cs: Float32Array<ArrayBuffer> } | undefined;

function ropeTable(invFreq: ArrayLike<number>, start: number, T: number): Float32Array<ArrayBuffer> {
  const key = `${start},${T},${Array.prototype.join.call(invFreq, ',')}`;
  if (lastTable?.key !== key) lastTable = { key, cs: ropeCosSinTable(invFreq, start, T) };
  return lastTable.cs;
}
