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
//   With the check hoisted (issue 12: the per-tile test cost 5-12% on the H200), v-finite-wgsl.ts's pre-pass
//   flags each KV head whose V is not finite and two pipelines follow it over the same grid: part 'finite' (no
//   V test, no scalar P V) and part 'flagged' (the checked loop); a workgroup reads its head's flag first and
//   leaves at once when the head is the other part's. Two small kernels rather than one with both loops: each
//   gets its own registers, and lavapipe compiled the pair (under test/sgmat-stub.ts) in half the one's time.
//   Part 'tile' is the kernel without the pre-pass, byte for byte as before.
// - Keys of KV head h sit at rows h * kv_stride + j (kv_stride 0: the key count), so a cache with room
//   for more keys than are filled can be read in place.
// Alignment rules of flash-sgmat-wgsl.ts hold: every workgroup variable is a multiple of 16 bytes.
// The tile code (fetch, stash, Q, S, softmax, P V) is tc2-tiles-wgsl.ts's, shared with CCA's tc2 (cca-tc-wgsl.ts);
// the softmax, rescale and O store under it are sgmat-tiles-wgsl.ts's, shared with v1 too.
// CPU twin: flash-cpu.ts with flashTcTwin(config) (same tiles, f16 P, lazy rescale).
import type { WgslMask } from './flash-wgsl.js';
import { blockMaskBindingsWgsl } from './flash-wgsl.js';
import type { FlashCpuOptions } from './flash-cpu.js';
import {
  accumulatorsWgsl,
  HALVES_NON_FINITE_WGSL,
  storeOutputWgsl,
  SUBGROUP_MATRIX_ENABLES,
} from './sgmat-tiles-wgsl.js';
import {
  type Tc2Config,
  tc2DeclarationsWgsl,
  tc2FetchWgsl,
  tc2Geometry,
  tc2QueryWgsl,
  tc2RegistersWgsl,
  tc2ScoresWgsl,
  tc2SoftmaxPvWgsl,
  tc2StashWgsl,
  tc2StoresWgsl,
  tc2Unsupported,
  tc2WorkgroupBytes,
} from './tc2-tiles-wgsl.js';
import { NON_FINITE_WGSL } from './wgsl-common.js';
import { V_FINITE_GROUPS } from './v-finite-wgsl.js';

export interface FlashTcConfig extends Tc2Config {
  /** Query blocks in reverse order (the last, causal's heaviest, first), so the light ones fill the dispatch's tail
   * (FlashAttention-2's causal schedule, after longest-processing-time-first). Order only: results are identical. */
  heavyFirst?: boolean;
}

/** Where V's NaN check sits: once per KV head before the kernel (v-finite-wgsl.ts), or in every staged tile. */
export const FLASH_VCHECKS = ['hoisted', 'tile'] as const;
export type FlashVCheck = (typeof FLASH_VCHECKS)[number];
/** The methods' default: on the H200 (2026-12-03, 32 heads, 8 KV heads, f16) the per-tile check ran 86.5 / 95.0
 * TFLOP/s at D 128 16K / 64K and 67.1 / 73.9 at D 64, the hoisted pre-pass + two kernels 89.8 / 89.0 and 65.7 /
 * 70.6: the check itself was not what cost the 5-12% (docs/BENCHMARKS.md), so the simpler kernel stays the default. */
export const FLASH_VCHECK_DEFAULT: FlashVCheck = 'tile';
/** Which kernel: the per-tile check alone (tile), or one of the hoisted check's two (see the header). */
export type FlashTcPart = 'tile' | 'finite' | 'flagged';
/** The kernels a call runs for each placement of the check, in dispatch order (after the pre-pass, if any). */
export const FLASH_TC_PARTS: Record<FlashVCheck, readonly FlashTcPart[]> = {
  hoisted: ['finite', 'flagged'],
  tile: ['tile'],
};

export const FLASH_TC_CONFIGS: Record<string, FlashTcConfig> = {
  'tc2-64x32': { subgroups: 4, keyTile: 32 },
  'tc2-128x32': { subgroups: 8, keyTile: 32 },
  'tc2-64x64': { subgroups: 4, keyTile: 64 },
  // st and pt as per-subgroup strips: constant-offset S stores and P loads (sgmat-tiles-wgsl.ts).
  'tc2-128x32-c': { subgroups: 8, keyTile: 32, strips: true },
  'tc2-64x32-c': { subgroups: 4, keyTile: 32, strips: true },
  'tc2-128x32-cr': { subgroups: 8, keyTile: 32, strips: true, heavyFirst: true },
};

export function flashTcRows(c: FlashTcConfig): number {
  return 16 * c.subgroups;
}

/** Workgroup memory the kernel declares, in bytes. */
export const flashTcWorkgroupBytes = tc2WorkgroupBytes;

/** Null when the kernel can run this head dim, else why not. */
export const flashTcUnsupported = tc2Unsupported;

/** The CPU twin's options for this configuration (flash-cpu.ts). */
export function flashTcTwin(c: FlashTcConfig): FlashCpuOptions {
  return { tile: c.keyTile, halfProbabilities: true, lazyRescaleLog2: 8 };
}

/** The binding of the V flags (parts finite and flagged): after the uniform (5) and the block mask's bindings. */
export function flashTcFlagsBinding(mask?: WgslMask): number {
  return 6 + (mask ? (mask.documents ? 3 : 2) : 0);
}

export function flashTcWgsl(headDim: number, c: FlashTcConfig, mask?: WgslMask, part: FlashTcPart = 'tile'): string {
  const g = tc2Geometry(headDim, c);
  const { BC, THREADS, blocks } = g;
  const qb = c.heavyFirst ? 'qb' : 'wg.x'; // this workgroup's query block
  const fetch = tc2FetchWgsl(g, {
    j: 'tn + ch / CH',
    ok: 'j < params.nk',
    load: (k, v) => `let at = (kvrow + j) * CH + ch % CH; ${k} = kg[at]; ${v} = vg[at];`,
  });
  const oInit = accumulatorsWgsl('o', blocks);
  const tiles = mask
    ? `let e0 = block_offsets[${qb}];
  let e1 = block_offsets[${qb} + 1u];`
    : `let wg_last = key_limit(min(params.nq - 1u, ${qb} * BR + BR - 1u));
  let e0 = 0u;
  let e1 = select(0u, u32(wg_last) / BC + 1u, wg_last >= 0);`;
  const tileStart = mask ? '(block_tiles[ee] >> 1u) * BC' : 'ee * BC';
  const visible = mask ? 'j <= last && (full || allowed(qp, j))' : 'j <= last';
  const checkV = part !== 'finite';
  const { softmax, pv: tilePv } = tc2SoftmaxPvWgsl(g, visible, checkV);
  const fullFlag = mask ? 'let full = (block_tiles[e] & 1u) == 1u;' : '';
  const hoisted = part !== 'tile';
  if (hoisted && THREADS < V_FINITE_GROUPS) throw new Error(`${THREADS} threads cannot read ${V_FINITE_GROUPS} flags`);
  const flagBinding = hoisted
    ? `@group(0) @binding(${flashTcFlagsBinding(mask)}) var<storage, read> vflags: array<u32>; // v-finite-wgsl.ts\n`
    : '';
  // need[2]: some word of this head's V flags is set. Uniform, so the whole workgroup leaves or none of it.
  const flagRead = hoisted
    ? `
  if (lid == 0u) { need[2] = 0u; }
  workgroupBarrier();
  if (lid < ${V_FINITE_GROUPS}u && vflags[kvh * ${V_FINITE_GROUPS}u + lid] != 0u) { need[2] = 1u; }
  if (workgroupUniformLoad(&need)[2] ${part === 'finite' ? '!=' : '=='} 0u) { return; } // the other part's head`
    : '';
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
${flagBinding}
${tc2DeclarationsWgsl(g)}

fn key_limit(i: u32) -> i32 {
  let all = i32(params.nk) - 1;
  if (params.causal == 0u) { return all; }
  return min(all, i32(params.nk) - i32(params.nq) + i32(i));
}

${tc2StoresWgsl(g)}

${NON_FINITE_WGSL}
${HALVES_NON_FINITE_WGSL}
@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, ${c.heavyFirst ? '@builtin(num_workgroups) nwg: vec3u, ' : ''}@builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let h = wg.y;${c.heavyFirst ? '\n  let qb = nwg.x - 1u - wg.x;' : ''}
  let kvh = h / params.group;
  let kvrow = kvh * select(params.nk, params.kv_stride, params.kv_stride != 0u);
  let sbase = sg * 16u * LDS;
  let pbase = sg * 16u * LDP;
  let r = lane / 2u;
  let side = lane % 2u;
  let i = ${qb} * BR + sg * 16u + r;
  let row_ok = i < params.nq;
  let qp = i32(params.nk) - i32(params.nq) + i32(i);
  let last = select(-1, ${mask ? 'i32(params.nk) - 1' : 'key_limit(i)'}, row_ok);
  let c2 = params.scale * 1.4426950408889634;${flagRead}

  // Q once: 16 x 16 blocks through this subgroup's rows of pt into registers.
  let qrow = (h * params.nq + min(i, params.nq - 1u)) * CH;
${tc2QueryWgsl(g)}
${oInit}
  var m = NEG;
  var bad = 0u; // this lane saw a NaN or infinite visible score (docs/HARDENING.md's NaN policy)
  var l = 0.0;
  var x: array<f32, ${BC / 2}>;
${tc2RegistersWgsl(g)}
${checkV ? '  if (lid == 0u) { need[1] = 0u; }' : ''}
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
${tc2StashWgsl(g, checkV)}
    if (e + 1u < e1) {
      let ee = e + 1u;
      let tn = ${tileStart};
${fetch}
    }
    workgroupBarrier();
${tc2ScoresWgsl(g)}
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
${storeOutputWgsl(blocks, 'orow', g.rows)}
  if (row_ok && side == 0u) {
    let lse_row = select((m + log2(l)) * 0.6931471805599453, bitcast<f32>(params.neg_inf_bits), empty);
    lse[h * params.nq + i] = select(lse_row, nan_value(), bad != 0u);
  }
}
`;
}
