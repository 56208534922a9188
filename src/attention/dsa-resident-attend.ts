// DSA's gathered attention for a resident layer (attention/layers/dsa-gpu.ts): the same kernels as
// sparseGatherGpu (register-resident lanes with split-KV and its merge where subgroups allow, else the
// workgroup-memory tiles kernel), set up once: uniforms rewritten per chunk, split scratch sized for the
// largest split count at construction, bind groups kept per caller buffer set. Records into a caller's pass.
import { mergeStatesWgsl, mergeWorkgroups } from '../kernels/merge-wgsl.js';
import { UnsupportedError } from '../errors.js';
import type { DType } from '../tensor.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { sparseLanesParams, sparseLanesWgsl, type LanesLayout } from '../kernels/sparse-lanes-wgsl.js';
import { sparseGatherParams, sparseGatherWgsl } from '../kernels/sparse-gather-wgsl.js';
import { chooseLanes, LANES_FILL_WORKGROUPS, lanesSplits } from './dsa-lanes.js';
import { persistentUniform, wrapGrid, writeUniform } from './layers/gpu-binds.js';

export interface ResidentAttendShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  dtype: DType;
  scale: number;
  /** Rows per KV head of the K/V cache. */
  keyStride: number;
  /** Row width of the key lists. */
  listWidth: number;
  maxChunk: number;
}

export class ResidentSparseAttention {
  readonly variant: string;
  private readonly params: GPUBuffer;
  private readonly mergeParams: GPUBuffer;

  private constructor(
    private readonly gpu: GpuContext,
    private readonly s: ResidentAttendShape,
    private readonly layout: LanesLayout | undefined,
    private readonly kernel: GPUComputePipeline,
    private readonly merge: GPUComputePipeline | undefined,
    /** Split states: o [rows * D] and lse [rows], rows = splits x heads x tokens at most. */
    private readonly split: { o: GPUBuffer; lse: GPUBuffer } | undefined,
    private readonly lse: GPUBuffer,
  ) {
    this.params = persistentUniform(gpu, 48);
    this.mergeParams = persistentUniform(gpu, 16);
    this.variant = layout
      ? `lanes (${layout.lanes} lanes x ${layout.subSplits} sub-splits, split-KV for short chunks)`
      : 'tiles (no subgroups wide enough for lanes)';
  }

  static async create(gpu: GpuContext, s: ResidentAttendShape): Promise<ResidentSparseAttention> {
    const group = s.heads / s.kvHeads;
    const layout = await chooseLanes(gpu, s.headDim, group);
    const kernel = layout
      ? await gpu.pipeline(`sparse-lanes-${s.headDim}-${group}-${s.dtype}-${layout.lanes}-${layout.subSplits}`, () =>
          sparseLanesWgsl(s.headDim, group, s.dtype, layout),
        )
      : await gpu.pipeline(`sparse-gather-${s.headDim}-${group}-${s.dtype}`, () =>
          sparseGatherWgsl(s.headDim, group, s.dtype),
        );
    const merge = layout
      ? await gpu.pipeline(`merge-states-${s.headDim}`, () => mergeStatesWgsl(s.headDim))
      : undefined;
    let rows = 0;
    if (layout) {
      for (let T = 1; T <= s.maxChunk; T++) {
        const n = splitsFor(T, s);
        if (n === 1) break;
        rows = Math.max(rows, n * T);
      }
    }
    const owned: GPUBuffer[] = [];
    try {
      owned.push(await gpu.createBuffer(s.heads * s.maxChunk * 4, 'dsa lse scratch'));
      if (rows > 0) {
        owned.push(await gpu.createBuffer(rows * s.heads * s.headDim * 4, 'dsa split o'));
        owned.push(await gpu.createBuffer(rows * s.heads * 4, 'dsa split lse'));
      }
    } catch (e) {
      owned.forEach((b) => gpu.release(b));
      throw e;
    }
    const split = rows > 0 ? { o: owned[1], lse: owned[2] } : undefined;
    return new ResidentSparseAttention(gpu, s, layout, kernel, merge, split, owned[0]);
  }

  /** Bind groups of one caller buffer set: [attention into out] and, with splits, [attention into scratch, merge]. */
  bindings(q: GPUBuffer, k: GPUBuffer, v: GPUBuffer, lists: GPUBuffer, out: GPUBuffer): GPUBindGroup[] {
    const g = this.gpu;
    const direct = g.bind(this.kernel, [q, k, v, out, this.lse, lists, this.params]);
    if (!this.split || !this.merge) return [direct];
    return [
      direct,
      g.bind(this.kernel, [q, k, v, this.split.o, this.split.lse, lists, this.params]),
      g.bind(this.merge, [this.split.o, this.split.lse, out, this.lse, this.mergeParams]),
    ];
  }

  /** Writes the uniforms of a chunk of T queries over `keys` cached tokens; returns its recorder. */
  prepare(T: number, keys: number, groups: GPUBindGroup[]): (pass: GPUComputePassEncoder) => void {
    const s = this.s;
    const gpu = this.gpu;
    const group = s.heads / s.kvHeads;
    const splits = this.layout ? splitsFor(T, s) : 1;
    const base = {
      queries: T,
      keys,
      group,
      causal: true,
      scale: s.scale,
      width: s.listWidth,
      headDim: s.headDim,
      keyStride: s.keyStride,
    };
    writeUniform(
      gpu,
      this.params,
      this.layout ? sparseLanesParams({ ...base, splits, heads: s.heads }) : sparseGatherParams(base),
    );
    const [cols, rows] = wrapGrid(gpu, T);
    if (s.kvHeads * splits > gpu.maxWorkgroupsPerDim || rows > gpu.maxWorkgroupsPerDim)
      throw new UnsupportedError(`${T} tokens x ${s.kvHeads} KV heads x ${splits} splits exceed the dispatch grid`);
    if (splits === 1) {
      return (pass) => {
        pass.setPipeline(this.kernel);
        pass.setBindGroup(0, groups[0]);
        pass.dispatchWorkgroups(cols, rows, s.kvHeads);
      };
    }
    const stateRows = s.heads * T;
    writeUniform(gpu, this.mergeParams, new Uint32Array([stateRows, splits, 0xff800000, 0]).buffer);
    const [mx, my] = mergeWorkgroups(stateRows, s.headDim, gpu.maxWorkgroupsPerDim);
    return (pass) => {
      pass.setPipeline(this.kernel);
      pass.setBindGroup(0, groups[1]);
      pass.dispatchWorkgroups(cols, rows, s.kvHeads * splits);
      pass.setPipeline(this.merge!);
      pass.setBindGroup(0, groups[2]);
      pass.dispatchWorkgroups(mx, my);
    };
  }

  destroy(): void {
    this.gpu.release(this.lse);
    if (this.split) {
      this.gpu.release(this.split.o);
      this.gpu.release(this.split.lse);
    }
    this.params.destroy();
    this.mergeParams.destroy();
  }
}

/** Splits per (token, KV head): as sparseLanesGpu for short chunks, none once the chunk fills the GPU. */
function splitsFor(T: number, s: ResidentAttendShape): number {
  if (T * s.kvHeads >= LANES_FILL_WORKGROUPS) return 1;
  return Math.max(1, Math.min(lanesSplits(T, s.kvHeads, s.listWidth), s.listWidth));
}
