// FlashAttention-2 forward on subgroup matrices, second version ("tc2"), written for throughput
// (Dao 2023, "FlashAttention-2", Alg. 1; FlashAttention-4's lazy rescale; tile structure after
// llama.cpp's flash_attn_cm1 and NVIDIA's vk_cooperative_matrix_perf shared-memory sample, no code
// copied). Against flash-sgmat-wgsl.ts (v1):
// - Q is staged once: each subgroup loads its 16 query rows as D/16 left fragments held in registers
//   for the whole key loop (v1 reloaded them from workgroup memory for every key tile).
// - More queries per workgroup (8 subgroups x 16 rows = 128, or 4 x 16 with 64-key tiles), so each
//   K/V tile brought into workgroup memory feeds twice the tensor-core work.
// - K/V arrive as 16-byte loads into registers for the NEXT tile while the current one is computed,
//   and every workgroup row is skewed by 16 bytes (bank conflicts on the column-major K load).
// - S goes to padded workgroup memory, the softmax runs in scalar code (2 lanes per row), P is written
//   back as f16 and P V runs on the matrix units; fully masked tiles are never visited (block-mask CSR
//   walk of flash-wgsl.ts or the causal bound).
// - NaN policy (docs/HARDENING.md): a row with a visible NaN or infinite score is NaN (a per-lane flag, tested
//   on the bits and joined by the row's two lanes); an empty row is recognised by l == +0 exactly. A V tile
//   holding a NaN or an infinity (flagged as it is stashed) does P V in scalar code that skips masked keys.
// - Keys of KV head h sit at rows h * kv_stride + j (kv_stride 0: the key count), so a cache with room
//   for more keys than are filled can be read in place.
// Alignment rules of flash-sgmat-wgsl.ts hold: every workgroup variable is a multiple of 16 bytes.
// The softmax, rescale and O store are sgmat-tiles-wgsl.ts's, shared with v1 and CCA.
// CPU twin: flash-cpu.ts with flashTcTwin(config) (same tiles, f16 P, lazy rescale).
import type { WgslMask } from './flash-wgsl.js';
import { blockMaskBindingsWgsl } from './flash-wgsl.js';
import type { FlashCpuOptions } from './flash-cpu.js';
import {
  accumulatorsWgsl,
  HALVES_NON_FINITE_WGSL,
  onlineSoftmaxWgsl,
  putHalvesWgsl,
  seq,
  storeOutputWgsl,
  SUBGROUP_MATRIX_ENABLES,
  tilePvWgsl,
} from './sgmat-tiles-wgsl.js';
import { NON_FINITE_WGSL } from './wgsl-common.js';

export interface FlashTcConfig {
  /** Subgroups of 32 lanes per workgroup; each owns 16 query rows. */
  subgroups: number;
  /** Keys per tile (a multiple of 16). */
  keyTile: number;
}

export const FLASH_TC_CONFIGS: Record<string, FlashTcConfig> = {
  'tc2-64x32': { subgroups: 4, keyTile: 32 },
  'tc2-128x32': { subgroups: 8, keyTile: 32 },
  'tc2-64x64': { subgroups: 4, keyTile: 64 },
};

export function flashTcRows(c: FlashTcConfig): number {
  return 16 * c.subgroups;
}

/** Workgroup memory the kernel declares, in bytes. */
export function flashTcWorkgroupBytes(headDim: number, c: FlashTcConfig): number {
  const kv = 2 * c.keyTile * (headDim + 8) * 2;
  const st = c.subgroups * 16 * (c.keyTile + 4) * 4;
  const pt = c.subgroups * 16 * (c.keyTile + 8) * 2;
  return kv + st + pt + 16;
}

/** Null when the kernel can run this head dim, else why not. */
export function flashTcUnsupported(headDim: number, c: FlashTcConfig, maxWorkgroupBytes: number): string | null {
  if (headDim % 16 !== 0 || headDim < 16) return `head dim ${headDim} is not a multiple of 16`;
  const bytes = flashTcWorkgroupBytes(headDim, c);
  if (bytes > maxWorkgroupBytes) return `needs ${bytes} bytes of workgroup memory, the device has ${maxWorkgroupBytes}`;
  return null;
}

/** The CPU twin's options for this configuration (flash-cpu.ts). */
export function flashTcTwin(c: FlashTcConfig): FlashCpuOptions {
  return { tile: c.keyTile, halfProbabilities: true, lazyRescaleLog2: 8 };
}

export function flashTcWgsl(headDim: number, c: FlashTcConfig, mask?: WgslMask): string {
  const D = headDim;
  const { subgroups, keyTile: BC } = c;
  const BR = 16 * subgroups;
  const THREADS = 32 * subgroups;
  const blocks = D / 16;
  const keyBlocks = BC / 16;
  const CH = D / 8; // 16-byte chunks per row
  const perThread = Math.ceil((BC * CH) / THREADS);
  const regs = seq(perThread)
    .map((p) => `  var pk${p} = vec4<u32>(0u);\n  var pv${p} = vec4<u32>(0u);`)
    .join('\n');
  const fetch = seq(perThread)
    .map(
      (p) => `      { let ch = lid + ${p * THREADS}u; let j = tn + ch / CH;
        if (ch < KV_CHUNKS && j < params.nk) { let at = (kvrow + j) * CH + ch % CH; pk${p} = kg[at]; pv${p} = vg[at]; }
        else { pk${p} = vec4<u32>(0u); pv${p} = vec4<u32>(0u); } }`,
    )
    .join('\n');
  const stash = seq(perThread)
    .map(
      (p) => `    { let ch = lid + ${p * THREADS}u;
      if (ch < KV_CHUNKS) { let at = (ch / CH) * LDK + (ch % CH) * 8u; put8kv(at, pk${p}); put8kv(BC * LDK + at, pv${p});
        if (halves_non_finite(pv${p})) { need[1] = 1u; } } }`,
    )
    .join('\n');
  const qLoad = seq(blocks)
    .map(
      (b) => `  { var qx = vec4<u32>(0u);
    if (row_ok) { qx = qg[qrow + ${2 * b}u + side]; }
    put8p(pbase + r * LDP + side * 8u, qx);
    workgroupBarrier(); }
  let q${b} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&pt, pbase, false, LDP);
  workgroupBarrier();`,
    )
    .join('\n');
  const oInit = accumulatorsWgsl('o', blocks);
  const sInit = accumulatorsWgsl('s', keyBlocks, '    ');
  const sMma = seq(blocks)
    .map((b) =>
      seq(keyBlocks)
        .map(
          (n) =>
            `    s${n} = subgroupMatrixMultiplyAccumulate(q${b}, ` +
            `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, ${n * 16}u * LDK + ${b * 16}u, true, LDK), s${n});`,
        )
        .join('\n'),
    )
    .join('\n');
  const sStore = seq(keyBlocks)
    .map((n) => `    subgroupMatrixStore(&st, sbase + ${n * 16}u, s${n}, false, LDS);`)
    .join('\n');
  const pLoad = seq(keyBlocks)
    .map(
      (kb) =>
        `    let p${kb} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&pt, pbase + ${kb * 16}u, false, LDP);`,
    )
    .join('\n');
  const pv = seq(blocks)
    .map((b) =>
      seq(keyBlocks)
        .map(
          (kb) =>
            `    o${b} = subgroupMatrixMultiplyAccumulate(p${kb}, ` +
            `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, BC * LDK + ${kb * 16}u * LDK + ${b * 16}u, false, LDK), o${b});`,
        )
        .join('\n'),
    )
    .join('\n');
  const tiles = mask
    ? `let e0 = block_offsets[wg.x];
  let e1 = block_offsets[wg.x + 1u];`
    : `let wg_last = key_limit(min(params.nq - 1u, wg.x * BR + BR - 1u));
  let e0 = 0u;
  let e1 = select(0u, u32(wg_last) / BC + 1u, wg_last >= 0);`;
  const tileStart = mask ? '(block_tiles[ee] >> 1u) * BC' : 'ee * BC';
  const visible = mask ? 'j <= last && (full || allowed(qp, j))' : 'j <= last';
  const softmax = onlineSoftmaxWgsl({
    half: 'HALF',
    scores: 'sbase + r * LDS',
    probs: 'pbase + r * LDP',
    visible,
    blocks,
  });
  const tilePv = tilePvWgsl(`${pLoad}\n${pv}`, {
    keys: 'BC',
    probs: 'pbase + r * LDP',
    value: (kk) => `BC * LDK + ${kk} * LDK`,
    visible,
    blocks,
  });
  const fullFlag = mask ? 'let full = (block_tiles[e] & 1u) == 1u;' : '';
  return /* wgsl */ `${SUBGROUP_MATRIX_ENABLES}

struct Params {
  nq: u32, nk: u32, group: u32, causal: u32,
  scale: f32, neg_inf_bits: u32, head: u32, kv_stride: u32,
}
@group(0) @binding(0) var<storage, read> qg: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> kg: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> vg: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;
${blockMaskBindingsWgsl(mask)}

const D: u32 = ${D}u;
const BR: u32 = ${BR}u;
const BC: u32 = ${BC}u;
const CH: u32 = ${CH}u;
const LDK: u32 = ${D + 8}u;  // K/V rows, 16 bytes of skew
const LDS: u32 = ${BC + 4}u; // score rows (f32), 16 bytes of skew
const LDP: u32 = ${BC + 8}u; // probability rows (f16), 16 bytes of skew
const KV_CHUNKS: u32 = ${BC * CH}u;
const HALF: u32 = ${BC / 2}u;
const NEG: f32 = -3.0e38;
var<workgroup> st: array<f32, ${subgroups * 16 * (BC + 4)}>;
var<workgroup> kv: array<f16, ${2 * BC * (D + 8)}>;
var<workgroup> pt: array<f16, ${subgroups * 16 * (BC + 8)}>;
var<workgroup> need: array<u32, 4>; // [0]: some row needs a rescale, [1]: the V tile is not finite

fn key_limit(i: u32) -> i32 {
  let all = i32(params.nk) - 1;
  if (params.causal == 0u) { return all; }
  return min(all, i32(params.nk) - i32(params.nq) + i32(i));
}

${putHalvesWgsl('put8kv', 'kv', true)}

${putHalvesWgsl('put8p', 'pt', true)}

${NON_FINITE_WGSL}
${HALVES_NON_FINITE_WGSL}
@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let h = wg.y;
  let kvh = h / params.group;
  let kvrow = kvh * select(params.nk, params.kv_stride, params.kv_stride != 0u);
  let sbase = sg * 16u * LDS;
  let pbase = sg * 16u * LDP;
  let r = lane / 2u;
  let side = lane % 2u;
  let i = wg.x * BR + sg * 16u + r;
  let row_ok = i < params.nq;
  let qp = i32(params.nk) - i32(params.nq) + i32(i);
  let last = select(-1, ${mask ? 'i32(params.nk) - 1' : 'key_limit(i)'}, row_ok);
  let c2 = params.scale * 1.4426950408889634;

  // Q once: 16 x 16 blocks through this subgroup's rows of pt into registers.
  let qrow = (h * params.nq + min(i, params.nq - 1u)) * CH;
${qLoad}
${oInit}
  var m = NEG;
  var bad = 0u; // this lane saw a NaN or infinite visible score (docs/HARDENING.md's NaN policy)
  var l = 0.0;
  var x: array<f32, ${BC / 2}>;
${regs}
  if (lid == 0u) { need[1] = 0u; }
  ${tiles}
  if (e0 < e1) {
    let ee = e0;
    let tn = ${tileStart};
${fetch}
  }
  for (var e = e0; e < e1; e++) {
    let t0 = i32(${tileStart.replaceAll('ee', 'e')});
    ${fullFlag}
    workgroupBarrier(); // everyone is done with the previous tile's K, V and P
    if (lid == 0u) { need[0] = 0u; }
${stash}
    if (e + 1u < e1) {
      let ee = e + 1u;
      let tn = ${tileStart};
${fetch}
    }
    workgroupBarrier();
${sInit}
${sMma}
${sStore}
    workgroupBarrier();
${softmax}
    workgroupBarrier();
${tilePv}
  }
  // l is +0 exactly when the row saw no key; a NaN l (NaN in q, k or v) stays NaN in o and lse.
  let empty = bitcast<u32>(l) == 0u;
  let inv = select(1.0 / l, 0.0, empty);
  let orow = (h * params.nq + i) * D;
  bad = bad | subgroupShuffleXor(bad, 1u);
${storeOutputWgsl(blocks, 'orow')}
  if (row_ok && side == 0u) {
    let lse_row = select((m + log2(l)) * 0.6931471805599453, bitcast<f32>(params.neg_inf_bits), empty);
    lse[h * params.nq + i] = select(lse_row, nan_value(), bad != 0u);
  }
}
`;
}
