// Host side of the register-resident sparse attention (kernels/sparse-lanes-wgsl.ts): whether it can run
// (subgroups at least L lanes wide, probed once per device), the split count (flash-decoding: few query
// tokens are split over workgroups so the GPU fills up) and the dispatches (kernel, then merge of splits).
import { UnsupportedError } from '../errors.js';
import type { GpuContext } from '../runtime/webgpu.js';
import { lanesLayout, sparseLanesParams, sparseLanesWgsl, type LanesLayout } from '../kernels/sparse-lanes-wgsl.js';
import { mergeStatesWgsl, mergeWorkgroups } from '../kernels/merge-wgsl.js';
import type { GpuInputs } from './gpu-chunks.js';
import { scratchBuffer, type Scratch } from './dsa-scratch.js';

/** Lanes per query head by default: 8 (lavapipe's subgroups are 8 wide, NVIDIA's 32). */
export const DEFAULT_LANES = 8;
/** Workgroups the split count aims at (an H100 has 132 SMs, several workgroups each). */
export const LANES_FILL_WORKGROUPS = 1024;
/** Listed keys a split gets at least (below, the merge costs more than the parallelism gains). */
export const LANES_MIN_KEYS_PER_SPLIT = 64;

export type SparseVariant = 'auto' | 'lanes' | 'tiles';

export interface SparseOptions {
  /** tiles: the workgroup-memory kernel (sparse-gather-wgsl.ts); lanes: this one; auto: lanes where it runs. */
  variant?: SparseVariant;
  lanes?: number;
  /** Splits per (token, KV head); default from lanesSplits(). */
  splits?: number;
}

const probed = new WeakMap<GpuContext, Promise<number>>();

/** The smallest subgroup size a 64-thread compute pipeline runs with on this device (0: no subgroups). */
export function subgroupMinSize(gpu: GpuContext): Promise<number> {
  let p = probed.get(gpu);
  if (!p) {
    p = (async () => {
      if (!gpu.features.subgroups) return 0;
      const code = `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<atomic<u32>>;
@compute @workgroup_size(64) fn main(@builtin(subgroup_size) sg: u32) { atomicMin(&out[0], sg); }`;
      const pipeline = await gpu.pipeline('dsa-subgroup-probe', () => code);
      const buf = await gpu.upload(new Uint32Array([0xffffffff, 0, 0, 0]), 'subgroup probe');
      try {
        await gpu.run('subgroup probe', (pass) => {
          pass.setPipeline(pipeline);
          pass.setBindGroup(0, gpu.bind(pipeline, [buf]));
          pass.dispatchWorkgroups(4);
        });
        const size = new Uint32Array(await gpu.read(buf, 16))[0];
        return size === 0xffffffff ? 0 : size;
      } finally {
        gpu.release(buf);
      }
    })().catch(() => 0);
    probed.set(gpu, p);
  }
  return p;
}

/**
 * The lanes layout this device runs for (D, G), or undefined (then the tiles kernel runs). Without an
 * explicit lane count, fewer lanes (down to 4) are tried when D or G do not fit 8 (e.g. D = 80).
 */
export async function chooseLanes(
  gpu: GpuContext,
  headDim: number,
  group: number,
  lanes?: number,
): Promise<LanesLayout | undefined> {
  const min = await subgroupMinSize(gpu);
  for (let l = lanes ?? DEFAULT_LANES; l >= (lanes ?? 4); l /= 2) {
    const layout = min >= l ? lanesLayout(headDim, group, l) : undefined;
    if (layout) return layout;
  }
  return undefined;
}

/** Splits per (token, KV head): enough workgroups to fill the GPU, at least LANES_MIN_KEYS_PER_SPLIT keys each. */
export function lanesSplits(queries: number, kvHeads: number, width: number): number {
  return Math.max(
    1,
    Math.min(Math.ceil(LANES_FILL_WORKGROUPS / (queries * kvHeads)), Math.ceil(width / LANES_MIN_KEYS_PER_SPLIT)),
  );
}

export async function sparseLanesGpu(
  gpu: GpuContext,
  x: GpuInputs,
  indices: GPUBuffer,
  width: number,
  keyStride: number,
  layout: LanesLayout,
  splitsWanted?: number,
): Promise<void> {
  const s = x.shape;
  const group = s.heads / s.kvHeads;
  const splits = Math.max(1, Math.min(splitsWanted ?? lanesSplits(s.queries, s.kvHeads, width), width));
  if (s.kvHeads * splits > gpu.maxWorkgroupsPerDim)
    throw new UnsupportedError(`${s.kvHeads} KV heads x ${splits} splits exceed this device's dispatch grid`);
  const pipeline = await gpu.pipeline(
    `sparse-lanes-${s.headDim}-${group}-${x.dtype}-${layout.lanes}-${layout.subSplits}`,
    () => sparseLanesWgsl(s.headDim, group, x.dtype, layout),
  );
  const cols = Math.min(s.queries, gpu.maxWorkgroupsPerDim);
  const rows = Math.ceil(s.queries / cols);
  if (rows > gpu.maxWorkgroupsPerDim)
    throw new UnsupportedError(`${s.queries} query tokens exceed this device's dispatch grid`);
  const stateRows = s.heads * s.queries;
  const params = gpu.uniform(
    sparseLanesParams({
      queries: s.queries,
      keys: s.keys,
      group,
      causal: s.causal,
      scale: s.scale,
      width,
      headDim: s.headDim,
      keyStride,
      splits,
      heads: s.heads,
    }),
  );
  const temps: Scratch[] = [];
  let mparams: GPUBuffer | undefined;
  try {
    let po = x.o,
      plse = x.lse;
    if (splits > 1) {
      // Every split writes all its rows (empty ones as -inf), so reused scratch needs no clearing.
      temps.push(await scratchBuffer(gpu, splits * stateRows * s.headDim * 4, 'dsa split o'));
      temps.push(await scratchBuffer(gpu, splits * stateRows * 4, 'dsa split lse'));
      [po, plse] = [temps[0].buffer, temps[1].buffer];
    }
    const bound = gpu.bind(pipeline, [x.q, x.k, x.v, po, plse, indices, params]);
    let merge: { pipeline: GPUComputePipeline; group: GPUBindGroup; x: number; y: number } | undefined;
    if (splits > 1) {
      const mp = await gpu.pipeline(`merge-states-${s.headDim}`, () => mergeStatesWgsl(s.headDim));
      mparams = gpu.uniform(new Uint32Array([stateRows, splits, 0xff800000, 0]).buffer);
      const [mx, my] = mergeWorkgroups(stateRows, s.headDim, gpu.maxWorkgroupsPerDim);
      merge = { pipeline: mp, group: gpu.bind(mp, [po, plse, x.o, x.lse, mparams]), x: mx, y: my };
    }
    await gpu.run('dsa sparse attention (lanes)', (pass) => {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bound);
      pass.dispatchWorkgroups(cols, rows, s.kvHeads * splits);
      if (merge) {
        pass.setPipeline(merge.pipeline);
        pass.setBindGroup(0, merge.group);
        pass.dispatchWorkgroups(merge.x, merge.y);
      }
    });
  } finally {
    params.destroy();
    mparams?.destroy();
    temps.forEach((t) => t.release());
  }
}
