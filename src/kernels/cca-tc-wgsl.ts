// CCA-Attention pass 2 (Chen et al., ICML 2025) on the tc2 tile of flash-tc-wgsl.ts (FlashAttention-2's forward,
// Dao 2023, written for throughput): the sources of cca-sgmat-wgsl.ts (v1: core tiles, then raw window tiles, a
// raw row read from a resident ring or from the chunk) walked by tc2-tiles-wgsl.ts's tile code. Against v1:
// Q held in registers for the whole key loop, 128 query rows per workgroup (8 subgroups; 4 where workgroup
// memory is short), the next tile's K/V fetched with 16-byte loads while the current one is multiplied, and
// skewed workgroup rows. The H200 profile (docs/bench/profile-h200/) put v1 at ~6x flash tc2's time per key.
// Every tile loads cores or raw rows, never both: a row sees cores [0, c_row) and raw positions [c_row g, p].
// NaN policy and empty rows as v1 (docs/HARDENING.md). Bindings as ccaAttendWgsl's; q, k, v are read as packed
// halves (vec4<u32>: 8 per load), so the head dim is a multiple of 16. CPU twin: cca-cpu.ts.
import { CCA_ROW_TILES_WGSL, ccaSubgroupMatrixBindingsWgsl } from './cca-wgsl.js';
import {
  accumulatorsWgsl,
  HALVES_NON_FINITE_WGSL,
  finishRowWgsl,
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
} from './tc2-tiles-wgsl.js';
import { NON_FINITE_WGSL } from './wgsl-common.js';

/** The CCA tc2 geometries, largest first (the layer takes the first whose workgroup memory fits). */
export const CCA_TC_CONFIGS: Record<string, Tc2Config> = {
  'tc2-128x32': { subgroups: 8, keyTile: 32 },
  'tc2-64x32': { subgroups: 4, keyTile: 32 },
};

export function ccaTcWgsl(headDim: number, c: Tc2Config): string {
  const g = tc2Geometry(headDim, c);
  // The next tile (tn: its first key, t_end: one past its last, core_n: whether it holds cores).
  const fetch = tc2FetchWgsl(g, {
    j: 'tn + i32(ch / CH)',
    ok: 'j < t_end',
    load: (k, v) => `let c = ch % CH;
          if (core_n) { let a = u32(cbase + j) * CH + c; ${k} = ckg[a]; ${v} = cvg[a]; }
          else if (in_ring(j)) { let a = ring_row(kvh, j) * CH + c; ${k} = ckg[a]; ${v} = cvg[a]; }
          else { let a = raw_row(kvh, j) * CH + c; ${k} = kg[a]; ${v} = vg[a]; }`,
  });
  const next = (t: string) => `{ let tn = tile_first(${t}, core_tiles, raw_lo);
      let core_n = ${t} < core_tiles;
      let t_end = select(p_last + 1, c_last, core_n);
${fetch}
    }`;
  // This row's part: cores [0, c_row), raw positions [c_row * g, p].
  const { softmax, pv } = tc2SoftmaxPvWgsl(g, 'row_ok && j >= lo && j <= hi');
  return /* wgsl */ `${SUBGROUP_MATRIX_ENABLES}
${ccaSubgroupMatrixBindingsWgsl('vec4<u32>')}
${tc2DeclarationsWgsl(g)}

${tc2StoresWgsl(g)}

${NON_FINITE_WGSL}
${HALVES_NON_FINITE_WGSL}
// Tiles [0, core_tiles) hold cores from 0, the rest raw positions from raw_lo.
fn tile_first(t: i32, core_tiles: i32, raw_lo: i32) -> i32 {
  return select(raw_lo + (t - core_tiles) * i32(BC), t * i32(BC), t < core_tiles);
}

@compute @workgroup_size(${g.THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let h = wg.y;
  let kvh = h / params.heads_per_kv;
  let sbase = sg * 16u * LDS;
  let pbase = sg * 16u * LDP;
${CCA_ROW_TILES_WGSL}  let c2 = params.scale * 1.4426950408889634;
  let cbase = i32(kvh * params.core_cap);

  // Q once: 16 x 16 blocks through this subgroup's rows of pt into registers.
  let qrow = (h * params.nq + min(i, params.nq - 1u)) * CH;
${tc2QueryWgsl(g)}
${accumulatorsWgsl('o', g.blocks)}
  var m = NEG;
  var bad = 0u; // this lane saw a NaN or infinite visible score (docs/HARDENING.md's NaN policy)
  var l = 0.0;
  var x: array<f32, ${g.BC / 2}>;
${tc2RegistersWgsl(g)}
  if (lid == 0u) { need[1] = 0u; }
  if (tiles > 0) ${next('0')}
  for (var t = 0; t < tiles; t++) {
    let is_core = t < core_tiles;
    let t0 = tile_first(t, core_tiles, raw_lo);
    workgroupBarrier(); // everyone is done with the previous tile's K, V and P
    if (lid == 0u) { need[0] = 0u; }
${tc2StashWgsl(g)}
    if (t + 1 < tiles) ${next('t + 1')}
    workgroupBarrier();
${tc2ScoresWgsl(g)}
    workgroupBarrier();
    let lo = select(raw_first, 0, is_core);
    let hi = select(p, c_row - 1, is_core);
${softmax}
    workgroupBarrier();
${pv}
  }
${finishRowWgsl(g.blocks)}
}
`;
}
