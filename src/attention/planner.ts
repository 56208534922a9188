// The kernel planner: the one place that maps (device features, dtype, shape, method) to a kernel version
// and its tile geometry, with the reason. Each operation keeps an ordered list of candidate versions, best
// first; a version says whether it `supports` a target (true, or why not) and which geometry it runs with.
// `auto` takes the first that supports the target; a version asked by name must support it or the request
// fails with its reason. New versions (the kernels issue's tensor-core flash and matmul) slot into the lists.
import {
  flashVersion,
  matmulVersion,
  preferredGemv,
  preferredMatmul,
  type KernelDevice,
  type MatmulVersion,
} from '../kernels/versions.js';
import { UnsupportedError } from '../errors.js';
import type { WeightStorage } from '../kernels/matmul-wgsl.js';
import type { DType } from '../tensor.js';
import type { GpuFeatures } from '../runtime/webgpu.js';
import { FLASH_PORTABLE_ROWS, flashPortableTile } from '../kernels/flash-wgsl.js';
import { SGMAT_HEAD_DIMS, SGMAT_ROWS } from '../kernels/flash-sgmat-wgsl.js';
import { DECODE_TILE, decodeSplits } from '../kernels/flash-decode-wgsl.js';
import { DECODE_DEFAULT, decodeSplitting } from './flash-decode.js';

/** What a kernel is chosen for. `features` undefined: the CPU backend. */
export interface KernelTarget {
  features?: GpuFeatures;
  dtype: DType;
  headDim: number;
  queries: number;
  keys: number;
  /** Every query sees every key it is given (a decode step over a cache that holds only visible keys). */
  allKeysVisible?: boolean;
  /** A block mask applies (window, sinks, star). */
  masked?: boolean;
  /** Workgroup memory the device gives one workgroup (the tc2 tiles need it). */
  maxWorkgroupStorageBytes?: number;
  /** A matmul's output columns (features): y [queries, columns] = x [queries, keys] W [columns, keys]^T. */
  columns?: number;
  /** A matmul's weight storage when it is not the storage dtype (Q8_0 tiles). */
  weights?: WeightStorage;
}

export interface KernelGeometry {
  /** Query rows per workgroup and keys per tile (what block masks are built for). */
  rows: number;
  keyTile: number;
  /** Split-KV decoding: workgroups per head and keys per split. */
  splits?: number;
  keysPerSplit?: number;
  /** The kernels/versions.ts version that runs, where the planner's name stands for a family (matmul). */
  kernel?: string;
}

export interface KernelVersion {
  name: string;
  /** true, or why this version cannot run the target. */
  supports(t: KernelTarget): true | string;
  geometry(t: KernelTarget): KernelGeometry;
  /** Why it is preferred when it applies (plan output). */
  why: string;
}

export interface KernelChoice extends KernelGeometry {
  op: string;
  version: string;
  reason: string;
}

/** Split-KV decoding pays off once a cache holds this many keys (below, one workgroup per head is enough). */
export const DECODE_SPLIT_MIN_KEYS = 256;

/** The tensor-core flash version the planner offers as 'tc2' (kernels/versions.ts): the strip version of the
 * 128 x 32 tile, as fast or faster than the flat one at every head dim measured (2026-12-04, H200). */
export const TC2_VERSION = 'tc2-128x32-c';
const TC2 = () => flashVersion(TC2_VERSION)!;

/** Flash attention versions, best first. */
export const FLASH_VERSIONS: KernelVersion[] = [
  {
    name: 'split-kv-decode',
    why: 'one query over a long cache: keys split over workgroups, partial states merged (FlashDecoding)',
    supports: (t) =>
      !t.features
        ? 'WebGPU only'
        : t.queries !== 1
          ? `${t.queries} queries (decoding has one)`
          : t.masked || !t.allKeysVisible
            ? 'a mask applies to the cached keys'
            : t.keys < DECODE_SPLIT_MIN_KEYS
              ? `${t.keys} keys (< ${DECODE_SPLIT_MIN_KEYS}: one workgroup per head suffices)`
              : true,
    geometry: (t) => {
      const { splits, keysPerSplit } = decodeSplits(t.keys, decodeSplitting(DECODE_DEFAULT));
      return { rows: 1, keyTile: DECODE_TILE, splits, keysPerSplit, kernel: DECODE_DEFAULT };
    },
  },
  {
    name: 'tc2',
    why:
      'f16 tensor cores, 128 queries x 32 keys per workgroup, Q in registers, next K/V tile prefetched, S and P in ' +
      'per-subgroup strips (97.5-105 TFLOP/s on an H200 at D 128 with the NaN policy, 5x subgroup-matrix)',
    supports: (t) =>
      !t.features
        ? 'WebGPU only'
        : (TC2().unsupported(
            { features: t.features, maxWorkgroupStorageBytes: t.maxWorkgroupStorageBytes ?? 0 },
            t.dtype,
            t.headDim,
          ) ?? true),
    geometry: (t) => TC2().tiles(t.headDim),
  },
  {
    name: 'subgroup-matrix',
    why: 'f16 tensor cores (subgroup matrices)',
    supports: (t) =>
      !t.features?.subgroupMatrixF16
        ? 'no f16 subgroup matrices on this device'
        : t.dtype !== 'f16'
          ? `${t.dtype} storage (needs f16)`
          : !SGMAT_HEAD_DIMS.includes(t.headDim)
            ? `head dim ${t.headDim} (supported: ${SGMAT_HEAD_DIMS.join(', ')})`
            : true,
    geometry: () => ({ rows: SGMAT_ROWS, keyTile: 32 }),
  },
  {
    name: 'portable',
    why: 'any WebGPU device, any head dim',
    supports: (t) => (t.features ? true : 'WebGPU only'),
    geometry: (t) => ({ rows: FLASH_PORTABLE_ROWS, keyTile: flashPortableTile(t.headDim) }),
  },
  {
    name: 'cpu-tiled',
    why: 'the CPU twin (64 x 64 tiles)',
    supports: (t) => (t.features ? 'CPU only' : true),
    geometry: () => ({ rows: 64, keyTile: 64 }),
  },
];

// Matrix products of the decoder: activations [queries, keys] (f32) times weights [columns, keys]^T in the
// storage dtype. Each planner name stands for a family of kernels/versions.ts; the measured default of the
// family for the shape (preferredMatmul / preferredGemv) is the kernel that runs.
const kernelDevice = (t: KernelTarget): KernelDevice => ({
  features: t.features!,
  maxWorkgroupStorageBytes: t.maxWorkgroupStorageBytes ?? 0,
});
const weightStorage = (t: KernelTarget): WeightStorage => t.weights ?? (t.dtype === 'f16' ? 'f16' : 'f32');
const matmulGeometry = (v: MatmulVersion): KernelGeometry => ({
  rows: v.tile.rows,
  keyTile: v.tile.cols,
  kernel: v.name,
});
const tensorCoreKernel = (t: KernelTarget) =>
  preferredMatmul(kernelDevice(t), t.queries, t.columns ?? 0, t.keys, weightStorage(t));
const gemvKernel = (t: KernelTarget) => preferredGemv(kernelDevice(t), t.keys, weightStorage(t));
const needsRows = (t: KernelTarget, one: boolean) =>
  one === (t.queries === 1) ? null : one ? 'more than one row' : 'one row';

/** Matmul versions, best first: one row (decode steps, the logits) takes a GEMV, more rows the tile kernels. */
export const MATMUL_VERSIONS: KernelVersion[] = [
  {
    name: 'gemv',
    why: 'one row over f16 or quantised weights: 16-byte loads, sums across subgroups (f16: 73% of copy bandwidth on an H200)',
    supports: (t) =>
      !t.features
        ? 'WebGPU only'
        : (needsRows(t, true) ??
          (gemvKernel(t).name !== 'matvec-v1'
            ? true
            : (matmulVersion('gemv-r2')!.unsupported(kernelDevice(t), weightStorage(t), t.keys) ?? 'no GEMV fits'))),
    geometry: (t) => matmulGeometry(gemvKernel(t)),
  },
  {
    name: 'matvec',
    why: 'one row: a workgroup per output, the weights streamed once',
    supports: (t) => (!t.features ? 'WebGPU only' : (needsRows(t, true) ?? true)),
    geometry: () => matmulGeometry(matmulVersion('matvec-v1')!),
  },
  {
    name: 'tensor-cores',
    why: 'f16 tensor cores (subgroup matrices), the tile measured best for the shape (69-111 TFLOP/s on an H200)',
    supports: (t) =>
      !t.features
        ? 'WebGPU only'
        : (needsRows(t, false) ??
          (t.dtype !== 'f16' ? `${t.dtype} storage (exact; tensor cores round activations to f16)` : null) ??
          (tensorCoreKernel(t).name !== 'tiled-v1'
            ? true
            : (matmulVersion('tc-64x64x32')!.unsupported(kernelDevice(t), weightStorage(t), t.keys) ??
              'no tile fits'))),
    geometry: (t) => matmulGeometry(tensorCoreKernel(t)),
  },
  {
    name: 'tiled',
    why: '64 x 64 tiles through workgroup memory, any WebGPU device',
    supports: (t) => (t.features ? true : 'WebGPU only'),
    geometry: () => matmulGeometry(matmulVersion('tiled-v1')!),
  },
  {
    name: 'cpu-rows',
    why: 'the CPU twin',
    supports: (t) => (t.features ? 'CPU only' : true),
    geometry: () => ({ rows: 1, keyTile: 0 }),
  },
];

/**
 * The matmul kernel for a target. `asked`: auto, a planner name (gemv, matvec, tensor-cores, tiled) or a
 * kernels/versions.ts version (tiled-v1, tc-128x64x32, matvec-v1, gemv-r2, ...), which must run the target.
 */
export function planMatmul(t: KernelTarget, asked = 'auto'): KernelChoice {
  const v = matmulVersion(asked);
  if (!v) return chooseKernel('matmul', MATMUL_VERSIONS, t, asked);
  if (!t.features) throw new UnsupportedError(`matmul version '${asked}' is a WebGPU kernel; the CPU runs cpu-rows`);
  if (v.family === 'gemv' && t.queries !== 1)
    throw new UnsupportedError(
      `matmul version '${asked}' multiplies one row, not ${t.queries}; ask for it for one row`,
    );
  const why = v.unsupported(kernelDevice(t), weightStorage(t), t.keys);
  if (why) throw new UnsupportedError(`matmul version '${asked}' cannot run here: ${why}; use auto`);
  return { op: 'matmul', version: asked, reason: `asked for ${asked}`, ...matmulGeometry(v) };
}

/** Prefill rows per chunk where a run asks for none and the matmuls have no tall tiles (and on the CPU). */
export const DEFAULT_PREFILL_CHUNK = 512;
/** ... and where the model's matmuls take the tensor-core tiles, whose 256-row tiles want tall chunks. */
export const TENSOR_CORE_PREFILL_CHUNK = 2048;

/**
 * The prefill chunk a run takes when it asks for none: 2048 where a chunk's matmuls run on the tensor cores (on an
 * H200, 16K prefill of the 1B shape: 25.6K tok/s at 2048 against 17.8K at 512, for 0.2 GiB more peak memory:
 * docs/BENCHMARKS.md), else 512. `device` is the GPU's features and workgroup limit (undefined: the CPU);
 * `hiddenSize` stands for the matmuls' inputs (a shape that takes no tensor-core tile keeps 512).
 */
export function defaultPrefillChunk(
  device: Pick<KernelTarget, 'features' | 'maxWorkgroupStorageBytes'> | undefined,
  dtype: KernelTarget['dtype'],
  hiddenSize: number,
): number {
  if (!device?.features) return DEFAULT_PREFILL_CHUNK;
  const { features, maxWorkgroupStorageBytes } = device;
  const rows = { features, maxWorkgroupStorageBytes, dtype, headDim: 0, queries: TENSOR_CORE_PREFILL_CHUNK };
  return planMatmul({ ...rows, keys: hiddenSize, columns: hiddenSize }).version === 'tensor-cores'
    ? TENSOR_CORE_PREFILL_CHUNK
    : DEFAULT_PREFILL_CHUNK;
}

/** The first version of `versions` that supports `t` (or the one asked by name), and why. */
export function chooseKernel(op: string, versions: KernelVersion[], t: KernelTarget, asked = 'auto'): KernelChoice {
  const refusals: string[] = [];
  for (const v of versions) {
    if (asked !== 'auto' && v.name !== asked) continue;
    const ok = v.supports(t);
    if (ok === true) {
      const skipped = refusals.length ? `; not ${refusals.join(', not ')}` : '';
      const reason = asked === 'auto' ? `${v.why}${skipped}` : `asked for ${asked}`;
      return { op, version: v.name, reason, ...v.geometry(t) };
    }
    if (asked !== 'auto')
      throw new UnsupportedError(`${op} version '${asked}' cannot run here: ${ok}; use variant=auto`);
    refusals.push(`${v.name} (${ok})`);
  }
  if (asked !== 'auto')
    throw new UnsupportedError(`${op} has no version '${asked}'; known: ${versions.map((v) => v.name).join(', ')}`);
  throw new UnsupportedError(`no ${op} version runs here: ${refusals.join('; ')}`);
}

/** The flash kernel for a target; `asked` is a spec's variant (auto, portable, subgroup-matrix). */
export function planFlash(t: KernelTarget, asked = 'auto'): KernelChoice {
  return chooseKernel('flash', FLASH_VERSIONS, t, asked);
}

/** One line for `plan` and `--stats`: `flash: subgroup-matrix (64 x 32 tiles): f16 tensor cores ...`. */
export function formatChoice(c: KernelChoice): string {
  const geometry = c.splits ? `${c.splits} splits of ${c.keysPerSplit} keys` : `${c.rows} x ${c.keyTile} tiles`;
  const kernel = c.kernel && c.kernel !== c.version ? ` ${c.kernel}` : '';
  return `${c.op}: ${c.version}${kernel} (${geometry}): ${c.reason}`;
}
