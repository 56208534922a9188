// The kernel planner: the one place that maps (device features, dtype, shape, method) to a kernel version
// and its tile geometry, with the reason. Each operation keeps an ordered list of candidate versions, best
// first; a version says whether it `supports` a target (true, or why not) and which geometry it runs with.
// `auto` takes the first that supports the target; a version asked by name must support it or the request
// fails with its reason. New versions (the kernels issue's tensor-core flash and matmul) slot into the lists.
import { flashVersion } from '../kernels/versions.js';
import { UnsupportedError } from '../errors.js';
import type { DType } from '../tensor.js';
import type { GpuFeatures } from '../runtime/webgpu.js';
import { FLASH_PORTABLE_ROWS, flashPortableTile } from '../kernels/flash-wgsl.js';
import { SGMAT_HEAD_DIMS, SGMAT_ROWS } from '../kernels/flash-sgmat-wgsl.js';
import { DECODE_MAX_SPLITS, DECODE_TILE, decodeSplits } from '../kernels/flash-decode-wgsl.js';
import { MATMUL_TILE } from '../kernels/matmul-wgsl.js';

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
}

export interface KernelGeometry {
  /** Query rows per workgroup and keys per tile (what block masks are built for). */
  rows: number;
  keyTile: number;
  /** Split-KV decoding: workgroups per head and keys per split. */
  splits?: number;
  keysPerSplit?: number;
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

/** Flash attention versions, best first. */
/** The tensor-core flash version the planner offers as 'tc2' (kernels/versions.ts). */
export const TC2_VERSION = 'tc2-128x32';
const TC2 = () => flashVersion(TC2_VERSION)!;

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
      const { splits, keysPerSplit } = decodeSplits(t.keys, DECODE_MAX_SPLITS);
      return { rows: 1, keyTile: DECODE_TILE, splits, keysPerSplit };
    },
  },
  {
    name: 'tc2',
    why:
      'f16 tensor cores, 128 queries x 32 keys per workgroup, Q in registers, next K/V tile prefetched ' +
      '(100-107 TFLOP/s on an H200 at D 128, 5x subgroup-matrix: docs/BENCHMARKS.md)',
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

/** Matrix products of the decoder (activations [T, k] times weights [n, k]^T). */
export const MATMUL_VERSIONS: KernelVersion[] = [
  {
    name: 'matvec',
    why: 'one row: a workgroup per output block, the weights streamed once',
    supports: (t) => (!t.features ? 'WebGPU only' : t.queries === 1 ? true : `${t.queries} rows`),
    geometry: () => ({ rows: 1, keyTile: 0 }),
  },
  {
    name: 'tiled',
    why: `${MATMUL_TILE} x ${MATMUL_TILE} tiles through workgroup memory`,
    supports: (t) => (t.features ? true : 'WebGPU only'),
    geometry: () => ({ rows: MATMUL_TILE, keyTile: MATMUL_TILE }),
  },
  {
    name: 'cpu-rows',
    why: 'the CPU twin',
    supports: (t) => (t.features ? 'CPU only' : true),
    geometry: () => ({ rows: 1, keyTile: 0 }),
  },
];

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
  return `${c.op}: ${c.version} (${geometry}): ${c.reason}`;
}
