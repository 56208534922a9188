// Every kernel version, side by side and selectable by name (as llm.c keeps attention_forward 1-11):
// ordered lists per family, oldest first, each with what it needs (unsupported() says why not, or
// null), its WGSL generator and its dispatch geometry. The planner (attention/planner.ts) chooses from
// these; test/kernel-versions.test.ts checks every one against the float64 reference and
// `longctx bench kernels` times them.
import type { DType } from '../tensor.js';
import type { GpuFeatures } from '../runtime/webgpu.js';
import type { FlashCpuOptions } from './flash-cpu.js';
import { subgroupMatrixTwin } from './flash-cpu.js';
import { FLASH_PORTABLE_ROWS, flashPortableTile, flashPortableWgsl, type WgslMask } from './flash-wgsl.js';
import { flashSubgroupMatrixWgsl, SGMAT_HEAD_DIMS, SGMAT_ROWS } from './flash-sgmat-wgsl.js';
import {
  FLASH_TC_CONFIGS,
  type FlashTcPart,
  flashTcRows,
  flashTcTwin,
  flashTcUnsupported,
  flashTcWgsl,
} from './flash-tc-wgsl.js';
import { MATMUL_TILE, MATVEC_ROWS_PER_DIM, matmulTiledWgsl, matvecWgsl, type WeightStorage } from './matmul-wgsl.js';
import {
  type ActivationStorage,
  MATMUL_TC_CONFIGS,
  matmulTcGrid,
  matmulTcUnsupported,
  matmulTcWgsl,
} from './matmul-tc-wgsl.js';
import { type GemvEpilogue, gemvGrid, gemvRowsPerWorkgroup, gemvUnsupported, gemvWgsl } from './gemv-wgsl.js';
import { gemvQuantWgsl } from './gemv-quant-wgsl.js';
import { isGpuQuant, quantColsUnsupported } from '../weights/quant-gpu.js';

/** What a version needs to know about the device. GpuContext satisfies it. */
export interface KernelDevice {
  features: GpuFeatures;
  maxWorkgroupStorageBytes: number;
}

export interface FlashVersion {
  family: 'flash';
  name: string;
  /** Null when it runs here, else the reason (tests print it when they skip). */
  unsupported(dev: KernelDevice, dtype: DType, headDim: number): string | null;
  /** Query rows per workgroup and keys per tile: the block mask must be built with these. */
  tiles(headDim: number): { rows: number; keyTile: number };
  /** part: which of a hoistedVCheck version's kernels (flash-tc-wgsl.ts; default tile); others ignore it. */
  wgsl(headDim: number, dtype: DType, mask?: WgslMask, part?: FlashTcPart): string;
  /** Workgroups for `queries` rows and `heads` query heads. */
  grid(queries: number, heads: number, headDim: number): [number, number];
  /** CPU twin (same tiles and rounding of P), for devices without the features (CI). */
  twin?: FlashCpuOptions;
  /** Whether NaN in q or k makes its rows NaN (docs/HARDENING.md's policy; every flash version does now). */
  propagatesNaN: boolean;
  /** Whether it takes kv_stride in word 7 of the uniform (0 means the key count). */
  kvStride: boolean;
  /** Whether its V NaN check can be hoisted: the pre-pass of v-finite-wgsl.ts, then parts finite and flagged
   * (FLASH_TC_PARTS), which read its per-KV-head flags bound after their other bindings (flashTcFlagsBinding). */
  hoistedVCheck?: boolean;
}

export interface MatmulVersion {
  family: 'matmul' | 'gemv';
  name: string;
  unsupported(dev: KernelDevice, weights: WeightStorage, k: number): string | null;
  /** Activations' storage the generated kernel reads. */
  wgsl(weights: WeightStorage, x?: ActivationStorage): string;
  grid(m: number, n: number): [number, number];
  /** Output rows (tokens) and columns (features) one workgroup computes (plan output). */
  tile: { rows: number; cols: number };
  /** Rounds x to f16 before the products (tensor-core versions). */
  halfActivations: boolean;
  propagatesNaN: boolean;
  /** One-row kernels that can fuse what follows a product (gemv-wgsl.ts GemvEpilogue): the residual add, or
   * gate and up with SwiGLU; same bindings, uniform and grid as wgsl(). */
  fused?(weights: WeightStorage, epilogue: Exclude<GemvEpilogue, 'store'>): string;
}

const sgmatNeed = (dev: KernelDevice, dtype: DType) =>
  !dev.features.subgroupMatrixF16
    ? 'the device has no f16 subgroup matrices with 32-lane subgroups'
    : dtype !== 'f16'
      ? `needs f16 inputs (got ${dtype})`
      : null;

export const FLASH_VERSIONS: FlashVersion[] = [
  {
    family: 'flash',
    name: 'portable',
    unsupported: (dev, dtype) => (dtype === 'f16' && !dev.features.f16 ? 'the device has no shader-f16' : null),
    tiles: (d) => ({ rows: FLASH_PORTABLE_ROWS, keyTile: flashPortableTile(d) }),
    wgsl: (d, dtype, mask) => flashPortableWgsl(d, dtype, mask),
    grid: (n, h) => [Math.ceil(n / FLASH_PORTABLE_ROWS), h],
    propagatesNaN: true,
    kvStride: false,
  },
  {
    family: 'flash',
    name: 'sgmat-v1',
    unsupported: (dev, dtype, d) =>
      sgmatNeed(dev, dtype) ?? (SGMAT_HEAD_DIMS.includes(d) ? null : `head dim ${d} is not 64 or 128`),
    tiles: () => ({ rows: SGMAT_ROWS, keyTile: 32 }),
    wgsl: (d, _dtype, mask) => flashSubgroupMatrixWgsl(d, mask),
    grid: (n, h) => [Math.ceil(n / SGMAT_ROWS), h],
    twin: subgroupMatrixTwin,
    propagatesNaN: true,
    kvStride: false,
  },
  ...Object.entries(FLASH_TC_CONFIGS).map(
    ([name, c]): FlashVersion => ({
      family: 'flash',
      name,
      unsupported: (dev, dtype, d) => sgmatNeed(dev, dtype) ?? flashTcUnsupported(d, c, dev.maxWorkgroupStorageBytes),
      tiles: () => ({ rows: flashTcRows(c), keyTile: c.keyTile }),
      wgsl: (d, _dtype, mask, part) => flashTcWgsl(d, c, mask, part),
      grid: (n, h) => [Math.ceil(n / flashTcRows(c)), h],
      twin: flashTcTwin(c),
      propagatesNaN: true,
      kvStride: true,
      hoistedVCheck: true,
    }),
  ),
];

/** The portable matmul and matrix-vector kernels: any weight storage (quantised ones need whole blocks). */
const portableUnsupported = (dev: KernelDevice, weights: WeightStorage, k: number): string | null =>
  weights === 'f16' && !dev.features.f16
    ? 'the device has no shader-f16'
    : weights === 'q8_0' && k % 32 !== 0
      ? `K = ${k} is not whole Q8_0 blocks of 32`
      : isGpuQuant(weights)
        ? quantColsUnsupported(weights, k)
        : null;

/** The one-row kernels by weight storage: gemv-wgsl.ts for f16 and Q8_0, gemv-quant-wgsl.ts for the 4-6 bit ones. */
function gemvFor(weights: WeightStorage, rows: number, tpr: number, epilogue: GemvEpilogue = 'store'): string {
  if (isGpuQuant(weights)) return gemvQuantWgsl(weights, rows, tpr, epilogue);
  return gemvWgsl(rows, tpr, weights === 'q8_0' ? 'q8_0' : 'f16', epilogue);
}

export const MATMUL_VERSIONS: MatmulVersion[] = [
  {
    family: 'matmul',
    name: 'tiled-v1',
    unsupported: portableUnsupported,
    wgsl: (weights) => matmulTiledWgsl(weights),
    grid: (m, n) => [Math.ceil(n / MATMUL_TILE), Math.ceil(m / MATMUL_TILE)],
    tile: { rows: MATMUL_TILE, cols: MATMUL_TILE },
    halfActivations: false,
    propagatesNaN: true,
  },
  ...Object.entries(MATMUL_TC_CONFIGS).map(
    ([name, c]): MatmulVersion => ({
      family: 'matmul',
      name,
      unsupported: (dev, weights, k) =>
        sgmatNeed(dev, 'f16') ??
        (weights === 'f32'
          ? 'needs f16 or quantised weights'
          : matmulTcUnsupported(k, c, dev.maxWorkgroupStorageBytes, weights)),
      wgsl: (weights, x = 'f32') => matmulTcWgsl(c, x, weights === 'f32' ? 'f16' : weights),
      grid: (m, n) => matmulTcGrid(m, n, c),
      tile: { rows: c.bm, cols: c.bn },
      halfActivations: true,
      propagatesNaN: true,
    }),
  ),
];

export const GEMV_VERSIONS: MatmulVersion[] = [
  {
    family: 'gemv',
    name: 'matvec-v1',
    unsupported: portableUnsupported,
    wgsl: (weights) => matvecWgsl(weights),
    grid: (_m, n) => [Math.min(n, MATVEC_ROWS_PER_DIM), Math.ceil(n / MATVEC_ROWS_PER_DIM)],
    tile: { rows: 1, cols: 1 },
    halfActivations: false,
    propagatesNaN: true,
  },
  ...[
    [1, 32],
    [2, 32],
    [4, 32],
    [1, 64],
    [1, 128],
    [1, 256],
  ].map(
    ([rows, tpr]): MatmulVersion => ({
      family: 'gemv',
      name: tpr === 32 ? `gemv-r${rows}` : `gemv-r${rows}t${tpr}`,
      unsupported: (dev, weights, k) =>
        !dev.features.f16 || !dev.features.subgroups
          ? 'needs shader-f16 and subgroups'
          : weights === 'f32'
            ? 'needs f16 or quantised weights'
            : isGpuQuant(weights)
              ? quantColsUnsupported(weights, k)
              : gemvUnsupported(k, weights),
      wgsl: (weights) => gemvFor(weights, rows, tpr),
      fused: (weights, epilogue) => gemvFor(weights, rows, tpr, epilogue),
      grid: (_m, n) => gemvGrid(n, rows, tpr),
      tile: { rows: 1, cols: gemvRowsPerWorkgroup(rows, tpr) },
      halfActivations: false,
      propagatesNaN: true,
    }),
  ),
];

export function flashVersion(name: string): FlashVersion | undefined {
  return FLASH_VERSIONS.find((v) => v.name === name);
}

export function matmulVersion(name: string): MatmulVersion | undefined {
  return [...MATMUL_VERSIONS, ...GEMV_VERSIONS].find((v) => v.name === name);
}

/**
 * The version to use for a shape, from the H200 measurements of 2026-12-01 and 2026-12-04 (docs/BENCHMARKS.md,
 * docs/bench/kernels-h200.json, docs/bench/h200-kernels-c/), falling back down each list to what the device
 * supports. The strip ("-c") versions come first: with Dawn's robustness on they ran 1-12% (flash) and 6-13%
 * (matmul) faster than the same tiles flat. The planner may override these; they are the measured defaults.
 */
export function preferredFlash(dev: KernelDevice, dtype: DType, headDim: number): FlashVersion {
  const order =
    headDim <= 32
      ? ['tc2-64x32-c', 'tc2-64x32', 'tc2-128x32-c', 'tc2-128x32']
      : ['tc2-128x32-c', 'tc2-128x32', 'tc2-64x32-c', 'tc2-64x32'];
  for (const name of [...order, 'sgmat-v1', 'portable']) {
    const v = flashVersion(name)!;
    if (!v.unsupported(dev, dtype, headDim)) return v;
  }
  return flashVersion('portable')!;
}

export function preferredMatmul(
  dev: KernelDevice,
  m: number,
  n: number,
  k: number,
  weights: WeightStorage = 'f16',
): MatmulVersion {
  // Short chunks with narrow outputs have too few 256-row tiles to fill 132 SMs: 128x64 wins there.
  const order =
    m <= 512 && n <= 2048
      ? ['tc-128x64x32-c', 'tc-128x64x32', 'tc-64x64x32']
      : ['tc-256x128x32-s-c', 'tc-256x128x32-s', 'tc-128x256x32-s-c', 'tc-128x256x32-s'];
  for (const name of [...order, 'tc-128x128x32']) {
    const v = matmulVersion(name)!;
    if (!v.unsupported(dev, weights, k)) return v;
  }
  return matmulVersion('tiled-v1')!;
}

export function preferredGemv(dev: KernelDevice, k: number, weights: WeightStorage = 'f16'): MatmulVersion {
  // Long rows (K 8192 over N 2048) need 128 threads per row to keep enough loads in flight.
  const v = matmulVersion(k >= 4096 ? 'gemv-r1t128' : 'gemv-r2')!;
  return v.unsupported(dev, weights, k) ? matmulVersion('matvec-v1')! : v;
}
