// The tensor-core attention kernels (flash subgroup-matrix v1, tc2, CCA pass 2 on subgroup matrices) as
// test/nan-tc.test.ts runs them: natively where the device has f16 subgroup matrices, or through
// test/sgmat-stub.ts's emulation (any device with shader-f16), in geometries that fit the device.
import { flashDispatcher } from '../src/bench/kernel-run.js';
import { ccaPlanParams, ccaPrefillPlan } from '../src/attention/cca.js';
import { ccaSubgroupMatrixWgsl } from '../src/kernels/cca-sgmat-wgsl.js';
import { CCA_TC_CONFIGS, ccaTcWgsl } from '../src/kernels/cca-tc-wgsl.js';
import { CCA_ROWS, ccaPoolWgsl } from '../src/kernels/cca-wgsl.js';
import { subgroupMatrixTwin, type FlashCpuOptions } from '../src/kernels/flash-cpu.js';
import { flashSubgroupMatrixWgsl } from '../src/kernels/flash-sgmat-wgsl.js';
import {
  FLASH_TC_CONFIGS,
  flashTcTwin,
  flashTcWgsl,
  type FlashTcConfig,
  type FlashTcPart,
  type FlashVCheck,
} from '../src/kernels/flash-tc-wgsl.js';
import type { FlashVersion } from '../src/kernels/versions.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { buildBlockMask } from '../src/spine/block-mask.js';
import { maskDocuments, maskKey, type MaskNode } from '../src/spine/mask.js';
import { attentionShape } from '../src/spine/problem.js';
import type { Tensor } from '../src/tensor.js';
import { V_FINITE_GROUPS } from '../src/kernels/v-finite-wgsl.js';
import { emulateSubgroupMatrices, workgroupBytes } from './sgmat-stub.js';

export type TcMode = 'native' | 'stub';

export interface TcFlashKernel {
  name: string;
  headDim: number;
  rows: number;
  keyTile: number;
  kvStride: boolean;
  /** tc2: with vcheck 'hoisted' (the default) it reads V flags from the pre-pass (kernels/v-finite-wgsl.ts). */
  hoisted: boolean;
  wgsl(mask?: { predicate: string; documents: boolean }, part?: FlashTcPart): string;
  /** The CPU twin's options (same key tiles and f16 P). */
  twin: FlashCpuOptions;
}

const v1 = (headDim: number, subgroups: number): TcFlashKernel => ({
  name: `sgmat-v1-${16 * subgroups}rows`,
  headDim,
  rows: 16 * subgroups,
  keyTile: 32,
  kvStride: false,
  hoisted: false,
  wgsl: (mask) => flashSubgroupMatrixWgsl(headDim, mask, subgroups),
  twin: subgroupMatrixTwin,
});

const tc2 = (headDim: number, name: string, c: FlashTcConfig): TcFlashKernel => ({
  name,
  headDim,
  rows: 16 * c.subgroups,
  keyTile: c.keyTile,
  kvStride: true,
  hoisted: true,
  wgsl: (mask, part) => flashTcWgsl(headDim, c, mask, part),
  twin: flashTcTwin(c),
});

/** The shipped geometries, plus smaller ones of the same generators that fit lavapipe's 32 KB of workgroup
 * memory under the stub (v1 at D 128 with 2 subgroups; tc2 with 64-key tiles on 2 subgroups). */
export const TC_FLASH_KERNELS: TcFlashKernel[] = [
  ...[64, 128].flatMap((d) => [v1(d, 4), ...Object.entries(FLASH_TC_CONFIGS).map(([n, c]) => tc2(d, n, c))]),
  v1(128, 2),
  tc2(64, 'tc2-32x64', { subgroups: 2, keyTile: 64 }),
];

/** The WGSL a mode runs, or why this device cannot run it there. */
export function tcSource(gpu: GpuContext, mode: TcMode, wgsl: string): { wgsl: string } | { why: string } {
  if (mode === 'native' && !gpu.features.subgroupMatrixF16) return { why: 'no f16 subgroup matrices' };
  if (!gpu.features.f16) return { why: 'no shader-f16' };
  const code = mode === 'stub' ? emulateSubgroupMatrices(wgsl) : wgsl;
  const bytes = workgroupBytes(code);
  if (bytes > gpu.maxWorkgroupStorageBytes)
    return { why: `${bytes} bytes of workgroup memory, the device has ${gpu.maxWorkgroupStorageBytes}` };
  return { wgsl: code };
}

export interface Result {
  o: Float32Array;
  lse: Float32Array;
  /** tc2 with the hoisted check: the V flag words the pre-pass wrote (kernels/v-finite-wgsl.ts), per KV head. */
  vFlags?: Uint32Array;
}

async function withBuffers<T>(gpu: GpuContext, f: (up: (d: ArrayBufferView) => Promise<GPUBuffer>) => Promise<T>) {
  const owned: GPUBuffer[] = [];
  try {
    return await f(async (d) => {
      const b = await gpu.upload(d, 'tc test');
      owned.push(b);
      return b;
    });
  } finally {
    for (const b of owned) gpu.release(b);
  }
}

/** One flash kernel over f16 q [H, Nq, D], k, v [Hkv, Nk, D], outputs poisoned with NaN before the run; tc2 with
 * `vcheck` (default hoisted: the V pre-pass runs first, as in attention/flash.ts). */
export async function runTcFlash(
  gpu: GpuContext,
  kern: TcFlashKernel,
  mode: TcMode,
  t: { q: Tensor; k: Tensor; v: Tensor; causal: boolean; mask?: MaskNode; vcheck?: FlashVCheck },
): Promise<Result> {
  const [H, Nq, D] = t.q.shape;
  const [Hkv, Nk] = t.k.shape;
  const version: FlashVersion = {
    family: 'flash',
    name: `${kern.name}-${mode}`,
    unsupported: () => null,
    tiles: () => ({ rows: kern.rows, keyTile: kern.keyTile }),
    wgsl: (_d, _dtype, m, part) => {
      const src = tcSource(gpu, mode, kern.wgsl(m, part));
      if ('why' in src) throw new Error(`${kern.name} (${mode}): ${src.why}`);
      return src.wgsl;
    },
    grid: (n, h) => [Math.ceil(n / kern.rows), h],
    propagatesNaN: true,
    kvStride: kern.kvStride,
    hoistedVCheck: kern.hoisted,
  };
  return withBuffers(gpu, async (up) => {
    const o = await up(new Float32Array(H * Nq * D).fill(Number.NaN));
    const lse = await up(new Float32Array(H * Nq).fill(Number.NaN));
    let mask: Parameters<typeof flashDispatcher>[4]['mask'];
    if (t.mask) {
      const blocks = buildBlockMask(t.mask, Nq, Nk, kern.rows, kern.keyTile);
      const ids = maskDocuments(t.mask);
      mask = {
        wgsl: { predicate: maskKey(t.mask), documents: ids !== undefined },
        offsets: await up(blocks.offsets),
        tiles: await up(blocks.tiles),
        documents: ids ? await up(ids) : undefined,
      };
    }
    const bufs = { q: await up(t.q.data), k: await up(t.k.data), v: await up(t.v.data), o, lse, mask };
    const shape = { heads: H, kvHeads: Hkv, queries: Nq, keys: Nk, headDim: D, causal: t.causal };
    const run = await flashDispatcher(gpu, version, shape, 'f16', bufs, t.vcheck);
    await gpu.run(version.name, (pass) => run.record(pass));
    run.release();
    return {
      o: new Float32Array(await gpu.read(o, H * Nq * D * 4)),
      lse: new Float32Array(await gpu.read(lse, H * Nq * 4)),
      vFlags: run.flags && new Uint32Array(await gpu.read(run.flags, Hkv * V_FINITE_GROUPS * 4)),
    };
  });
}

export interface TcCcaKernel {
  name: string;
  /** Query rows per workgroup. */
  rows: number;
  wgsl(headDim: number): string;
}

const ccaTc = (name: string, c: { subgroups: number; keyTile: number }): TcCcaKernel => ({
  name,
  rows: 16 * c.subgroups,
  wgsl: (d) => ccaTcWgsl(d, c),
});

/** CCA pass 2 on subgroup matrices, every version (v1, and the tc2 geometries attention/cca.ts chooses from),
 * plus 128 rows on 16-key tiles: the 128-row walk in the 32 KB of workgroup memory lavapipe has for the stub. */
export const TC_CCA_KERNELS: TcCcaKernel[] = [
  { name: 'sgmat-v1', rows: CCA_ROWS, wgsl: (d) => ccaSubgroupMatrixWgsl(d) },
  ...Object.entries(CCA_TC_CONFIGS).map(([name, c]) => ccaTc(name, c)),
  ccaTc('tc2-128x16', { subgroups: 8, keyTile: 16 }),
];

/** CCA prefill (queries = keys, causal): the portable pooling, then pass 2 on subgroup matrices in `mode`
 * (as attention/cca.ts's ccaAttentionGpu dispatches them). */
export async function runTcCca(
  gpu: GpuContext,
  mode: TcMode,
  kernel: TcCcaKernel,
  t: { q: Tensor; k: Tensor; v: Tensor; group: number; window: number },
): Promise<Result> {
  const s = attentionShape(t.q, t.k, t.v, { causal: true });
  const plan = ccaPrefillPlan(s, { group: t.group, window: t.window });
  const D = s.headDim;
  const src = tcSource(gpu, mode, kernel.wgsl(D));
  if ('why' in src) throw new Error(`CCA ${kernel.name} (${mode}): ${src.why}`);
  const attend = await gpu.pipeline(`cca-attend-${kernel.name}-${D}-${mode}`, () => src.wgsl);
  const pool = await gpu.pipeline(`cca-pool-${D}-f16`, () => ccaPoolWgsl(D, 'f16'));
  const cap = Math.max(1, plan.cores);
  return withBuffers(gpu, async (up) => {
    const [q, k, v] = [await up(t.q.data), await up(t.k.data), await up(t.v.data)];
    const [ck, cv] = [await up(new Uint16Array(s.kvHeads * cap * D)), await up(new Uint16Array(s.kvHeads * cap * D))];
    const o = await up(new Float32Array(s.heads * s.queries * D).fill(Number.NaN));
    const lse = await up(new Float32Array(s.heads * s.queries).fill(Number.NaN));
    const params = gpu.uniform(ccaPlanParams(s, plan, cap));
    const poolGroup = gpu.bind(pool, [q, k, v, ck, cv, params]);
    const attendGroup = gpu.bind(attend, [q, ck, cv, k, v, o, lse, params]);
    await gpu.run(`cca ${kernel.name} ${mode}`, (pass) => {
      if (plan.poolCount > 0) {
        pass.setPipeline(pool);
        pass.setBindGroup(0, poolGroup);
        pass.dispatchWorkgroups(plan.poolCount, s.kvHeads);
      }
      pass.setPipeline(attend);
      pass.setBindGroup(0, attendGroup);
      pass.dispatchWorkgroups(Math.ceil(s.queries / kernel.rows), s.heads);
    });
    params.destroy();
    return {
      o: new Float32Array(await gpu.read(o, s.heads * s.queries * D * 4)),
      lse: new Float32Array(await gpu.read(lse, s.heads * s.queries * 4)),
    };
  });
}
