// y[M, N] = x[M, K] W[N, K]^T + b on subgroup matrices (tensor cores through Dawn's
// chromium_experimental_subgroup_matrix): f16 operands, f32 accumulation. The shared-memory GEMM of
// NVIDIA's vk_cooperative_matrix_perf sample and llama.cpp's ggml-vulkan mul_mm (structure only, no
// code copied): a BM x BN output tile per workgroup of 4-8 subgroups, each subgroup holding a grid of
// FM x FN accumulators so every fragment it loads is reused FN (or FM) times; K advances BK at a time
// through workgroup memory rows skewed by 16 bytes; the next K tile is loaded into registers (16-byte
// loads) before the math on the current one, and either double-buffered in workgroup memory (one
// barrier per K tile) or stored after it (two barriers). Weights row-major [out, in] (GGUF's layout)
// are read column-major as the right operand, so no transpose pass exists. Q8_0 tiles (q8-tiles.ts) are
// dequantised to f16 as they are fetched (8 quants and their block's scale per 16-byte chunk of the tile), and so
// are Q4_0 / Q4_K / Q5_K / Q6_K planes (quant-gpu.ts; quant-wgsl.ts qx8: 8 values from one word of 4-bit quants).
// Bindings and uniform are matmulTiledWgsl's (matmul-wgsl.ts: x, w, bias, y, params {t, n, k, has_bias}),
// so the decoder swaps one pipeline for the other. x may be f32 (the decoder's activations, rounded to
// f16 as they are staged) or f16. Needs K % 8 == 0. CPU twin: matmulTcTwin (test/kernel-versions).

import { putHalvesWgsl, seq, SUBGROUP_MATRIX_ENABLES } from './sgmat-tiles-wgsl.js';
import { Q8_UNPACK_WGSL, type WeightStorage } from './matmul-wgsl.js';
import { isGpuQuant, quantColsUnsupported } from '../weights/quant-gpu.js';
import { quantHalvesWgsl } from './quant-wgsl.js';

/** The weight storages the tensor-core tiles read (f32 weights would be rounded: not offered). */
export type TcWeights = Exclude<WeightStorage, 'f32'>;

/** Bytes an output buffer must hold at least: interior tiles store 16 x 16 f32 accumulators straight into y, and
 * Dawn derives the binding's minimum size from that store (a 3-token run's 768-byte output failed on the H200). */
export const MATMUL_TC_MIN_OUTPUT_BYTES = 16 * 16 * 4;

export interface MatmulTcConfig {
  bm: number;
  bn: number;
  bk: number;
  /** Subgroups along M and N (their product: 4 or 8). */
  sgM: number;
  sgN: number;
  /** 2: double-buffered workgroup tiles (one barrier per K tile); 1: single (two barriers). */
  buffers: 1 | 2;
  /** Tiles as 16-row strips so fragment loads take constant offsets and run unpredicated under robustness
   * (sgmat-tiles-wgsl.ts); the other versions index one flat array. */
  strips?: boolean;
}

export const MATMUL_TC_CONFIGS: Record<string, MatmulTcConfig> = {
  'tc-64x64x32': { bm: 64, bn: 64, bk: 32, sgM: 2, sgN: 2, buffers: 2 },
  'tc-128x128x32': { bm: 128, bn: 128, bk: 32, sgM: 2, sgN: 4, buffers: 2 },
  'tc-128x128x64': { bm: 128, bn: 128, bk: 64, sgM: 2, sgN: 4, buffers: 1 },
  'tc-128x64x32': { bm: 128, bn: 64, bk: 32, sgM: 4, sgN: 2, buffers: 2 },
  'tc-128x128x32-s': { bm: 128, bn: 128, bk: 32, sgM: 2, sgN: 4, buffers: 1 },
  'tc-128x256x32-s': { bm: 128, bn: 256, bk: 32, sgM: 2, sgN: 4, buffers: 1 },
  'tc-256x128x32-s': { bm: 256, bn: 128, bk: 32, sgM: 4, sgN: 2, buffers: 1 },
};
// The strip versions of the same tiles ("-c": constant-offset fragment loads).
for (const name of ['tc-128x64x32', 'tc-128x128x32', 'tc-128x128x64', 'tc-128x256x32-s', 'tc-256x128x32-s'])
  MATMUL_TC_CONFIGS[`${name}-c`] = { ...MATMUL_TC_CONFIGS[name]!, strips: true };

export type ActivationStorage = 'f32' | 'f16';

export function matmulTcWorkgroupBytes(c: MatmulTcConfig): number {
  const lda = c.bk + 8;
  return c.buffers * (c.bm + c.bn) * lda * 2 + c.sgM * c.sgN * 256 * 4;
}

export function matmulTcUnsupported(
  k: number,
  c: MatmulTcConfig,
  maxWorkgroupBytes: number,
  weights: TcWeights = 'f16',
): string | null {
  if (weights === 'q8_0' && k % 32 !== 0) return `K = ${k} is not whole Q8_0 blocks of 32`;
  if (isGpuQuant(weights) && quantColsUnsupported(weights, k)) return quantColsUnsupported(weights, k);
  if (k % 8 !== 0) return `K = ${k} is not a multiple of 8 (16-byte weight loads)`;
  const bytes = matmulTcWorkgroupBytes(c);
  if (bytes > maxWorkgroupBytes) return `needs ${bytes} bytes of workgroup memory, the device has ${maxWorkgroupBytes}`;
  return null;
}

/** Workgroups (x over N, y over M). */
export function matmulTcGrid(m: number, n: number, c: MatmulTcConfig): [number, number] {
  return [Math.ceil(n / c.bn), Math.ceil(m / c.bm)];
}

export function matmulTcWgsl(c: MatmulTcConfig, xType: ActivationStorage = 'f32', weights: TcWeights = 'f16'): string {
  const q8 = weights === 'q8_0';
  const words = weights !== 'f16'; // weights bound as u32 words and dequantised as they are fetched
  const { bm, bn, bk, sgM, sgN, buffers } = c;
  const strips = c.strips === true;
  const subgroups = sgM * sgN;
  const THREADS = 32 * subgroups;
  const WM = bm / sgM;
  const WN = bn / sgN;
  const FM = WM / 16;
  const FN = WN / 16;
  const LD = bk + 8;
  const xPer = xType === 'f32' ? 4 : 8; // elements per 16-byte chunk of x
  const aChunks = (bm * bk) / xPer;
  const bChunks = (bn * bk) / 8;
  const aPer = Math.ceil(aChunks / THREADS);
  const bPer = Math.ceil(bChunks / THREADS);
  const aRegs = seq(aPer).map((p) => `  var ra${p} = ${xType === 'f32' ? 'vec4<f32>(0.0)' : 'vec4<u32>(0u)'};`);
  const bRegs = seq(bPer).map((p) => `  var rb${p} = vec4<u32>(0u);`);
  const bLoad = q8 ? 'q8x8(row, kk)' : words ? 'qx8(row, kk)' : 'w[(row * params.k + kk) / 8u]';
  const fetch = [
    ...seq(aPer).map(
      (
        p,
      ) => `    { let ch = lid + ${p * THREADS}u; let row = tok0 + ch / ${bk / xPer}u; let kk = k0 + (ch % ${bk / xPer}u) * ${xPer}u;
      if (ch < ${aChunks}u && row < params.t && kk < params.k) { ra${p} = x[(row * params.k + kk) / ${xPer}u]; }
      else { ra${p} = ${xType === 'f32' ? 'vec4<f32>(0.0)' : 'vec4<u32>(0u)'}; } }`,
    ),
    ...seq(bPer).map(
      (
        p,
      ) => `    { let ch = lid + ${p * THREADS}u; let row = col0 + ch / ${bk / 8}u; let kk = k0 + (ch % ${bk / 8}u) * 8u;
      if (ch < ${bChunks}u && row < params.n && kk < params.k) { rb${p} = ${bLoad}; } else { rb${p} = vec4<u32>(0u); } }`,
    ),
  ].join('\n');
  // Where chunk ch of a tile goes: (strip, offset in it) with strips, else the offset in the flat array.
  const at = (perRow: number, per: number, buf: string) =>
    strips
      ? `${buf} + ch / ${perRow * 16}u, ((ch / ${perRow}u) % 16u) * LD + (ch % ${perRow}u) * ${per}u`
      : `${buf} + (ch / ${perRow}u) * LD + (ch % ${perRow}u) * ${per}u`;
  const stash = [
    ...seq(aPer).map(
      (p) => `    { let ch = lid + ${p * THREADS}u;
      if (ch < ${aChunks}u) { put${xType === 'f32' ? '4f' : '8'}a(${at(bk / xPer, xPer, 'abuf')}, ra${p}); } }`,
    ),
    ...seq(bPer).map(
      (p) => `    { let ch = lid + ${p * THREADS}u;
      if (ch < ${bChunks}u) { put8b(${at(bk / 8, 8, 'bbuf')}, rb${p}); } }`,
    ),
  ].join('\n');
  const accInit = seq(FM)
    .flatMap((i) => seq(FN).map((j) => `  var c${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`))
    .join('\n');
  const math = seq(bk / 16)
    .map((kk) =>
      [
        ...seq(FM).map(
          (i) =>
            `      let a${i} = ` +
            `subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(${
              strips
                ? `&sa[abuf + sm * ${FM}u + ${i}u], ${kk * 16}u`
                : `&sa, abuf + (sm * ${WM}u + ${i * 16}u) * LD + ${kk * 16}u`
            }, false, LD);`,
        ),
        ...seq(FN).map(
          (j) =>
            `      let b${j} = ` +
            `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(${
              strips
                ? `&sb[bbuf + sn * ${FN}u + ${j}u], ${kk * 16}u`
                : `&sb, bbuf + (sn * ${WN}u + ${j * 16}u) * LD + ${kk * 16}u`
            }, true, LD);`,
        ),
        ...seq(FM).flatMap((i) =>
          seq(FN).map((j) => `      c${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c${i}_${j});`),
        ),
      ].join('\n'),
    )
    .map((block) => `    {\n${block}\n    }`)
    .join('\n');
  const direct = seq(FM)
    .flatMap((i) =>
      seq(FN).map(
        (j) =>
          `    subgroupMatrixStore(&y, (tok0 + sm * ${WM}u + ${i * 16}u) * params.n + col0 + sn * ${WN}u + ${j * 16}u, c${i}_${j}, false, params.n);`,
      ),
    )
    .join('\n');
  const viaScratch = seq(FM)
    .flatMap((i) =>
      seq(FN).map(
        (j) => `    subgroupMatrixStore(&ep, sg * 256u, c${i}_${j}, false, 16u);
    workgroupBarrier();
    { let row = tok0 + sm * ${WM}u + ${i * 16}u + lane / 2u;
      let col = col0 + sn * ${WN}u + ${j * 16}u + (lane % 2u) * 8u;
      for (var cc = 0u; cc < 8u; cc++) {
        if (row < params.t && col + cc < params.n) {
          var b = 0.0;
          if (params.has_bias != 0u) { b = bias[col + cc]; }
          y[row * params.n + col + cc] = ep[sg * 256u + (lane / 2u) * 16u + (lane % 2u) * 8u + cc] + b;
        }
      } }
    workgroupBarrier();`,
      ),
    )
    .join('\n');
  // A buffer's size in the unit abuf / bbuf count: strips of 16 rows, or halves.
  const sa = strips ? 'sa[s]' : 'sa';
  const A = strips ? bm / 16 : bm * LD;
  const B = strips ? bn / 16 : bn * LD;
  const bufA = buffers === 2 ? `(t % 2u) * ${A}u` : '0u';
  const bufB = buffers === 2 ? `(t % 2u) * ${B}u` : '0u';
  const nextA = buffers === 2 ? `((t + 1u) % 2u) * ${A}u` : '0u';
  const nextB = buffers === 2 ? `((t + 1u) % 2u) * ${B}u` : '0u';
  // Double-buffered: stash tile t + 1 into the other buffer after the math on t, one barrier.
  // Single: barrier, stash tile t, fetch t + 1, barrier, math on t.
  const loop =
    buffers === 2
      ? `  for (var t = 0u; t < tiles; t++) {
    let k0 = (t + 1u) * ${bk}u;
    if (t + 1u < tiles) {
${fetch}
    }
    { let abuf = ${bufA}; let bbuf = ${bufB};
${math}
    }
    if (t + 1u < tiles) {
      let abuf = ${nextA}; let bbuf = ${nextB};
${stash}
    }
    workgroupBarrier();
  }`
      : `  for (var t = 0u; t < tiles; t++) {
    workgroupBarrier();
    { let abuf = 0u; let bbuf = 0u;
${stash}
    }
    if (t + 1u < tiles) {
      let k0 = (t + 1u) * ${bk}u;
${fetch}
    }
    workgroupBarrier();
    { let abuf = 0u; let bbuf = 0u;
${math}
    }
  }`;
  const first =
    buffers === 2
      ? `  { let k0 = 0u;
${fetch}
  }
  { let abuf = 0u; let bbuf = 0u;
${stash}
  }
  workgroupBarrier();`
      : `  { let k0 = 0u;
${fetch}
  }`;
  return /* wgsl */ `${SUBGROUP_MATRIX_ENABLES}
struct Params { t: u32, n: u32, k: u32, has_bias: u32 }
@group(0) @binding(0) var<storage, read> x: array<${xType === 'f32' ? 'vec4<f32>' : 'vec4<u32>'}>;
@group(0) @binding(1) var<storage, read> w: array<${words ? 'u32' : 'vec4<u32>'}>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const LD: u32 = ${LD}u; // workgroup rows of BK halves plus 16 bytes of skew
var<workgroup> sa: ${strips ? `array<array<f16, ${16 * LD}>, ${buffers * A}>` : `array<f16, ${buffers * A}>`};
var<workgroup> sb: ${strips ? `array<array<f16, ${16 * LD}>, ${buffers * B}>` : `array<f16, ${buffers * B}>`};
var<workgroup> ep: array<f32, ${subgroups * 256}>; // one 16 x 16 accumulator per subgroup for edge tiles

${putHalvesWgsl('put8a', 'sa', true, strips)}
${
  q8
    ? `${Q8_UNPACK_WGSL}
// 8 weights of Q8_0 tiles (q8-tiles.ts) from column kk of row, dequantised and packed as f16 pairs.
fn q8x8(row: u32, kk: u32) -> vec4<u32> {
  let i = row * params.k + kk;
  let d = bitcast<f32>(w[params.n * params.k / 4u + i / 32u]);
  let lo = q8x4(w[i / 4u]) * d;
  let hi = q8x4(w[i / 4u + 1u]) * d;
  return vec4<u32>(pack2x16float(lo.xy), pack2x16float(lo.zw), pack2x16float(hi.xy), pack2x16float(hi.zw));
}`
    : isGpuQuant(weights)
      ? quantHalvesWgsl(weights)
      : ''
}
fn put4fa(${strips ? 's: u32, ' : ''}at: u32, v: vec4<f32>) {
  ${sa}[at] = f16(v.x); ${sa}[at + 1u] = f16(v.y); ${sa}[at + 2u] = f16(v.z); ${sa}[at + 3u] = f16(v.w);
}
${putHalvesWgsl('put8b', 'sb', true, strips)}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let tok0 = wg.y * ${bm}u;
  let col0 = wg.x * ${bn}u;
  let sm = sg / ${sgN}u;
  let sn = sg % ${sgN}u;
  let tiles = (params.k + ${bk - 1}u) / ${bk}u;
${aRegs.join('\n')}
${bRegs.join('\n')}
${accInit}
${first}
${loop}
  // Interior tiles without bias go straight to y; edges and bias through a 16 x 16 scratch per subgroup.
  let interior = tok0 + ${bm}u <= params.t && col0 + ${bn}u <= params.n && params.has_bias == 0u && (params.n % 4u) == 0u;
  if (interior) {
${direct}
  } else {
${viaScratch}
  }
}`;
}
