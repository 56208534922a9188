// The tile code of the second-generation tensor-core attention kernels (flash-tc-wgsl.ts's tc2 and
// cca-tc-wgsl.ts), FlashAttention-2's forward tile (Dao 2023, Alg. 1) written for throughput: Q staged once into
// registers (D / 16 left fragments per subgroup), the next K/V tile fetched into registers with 16-byte loads
// while the current one is multiplied, every workgroup row skewed by 16 bytes, S to padded workgroup memory, the
// online softmax of sgmat-tiles-wgsl.ts, P as f16 and P V on the matrix units. The kernels keep their own tile
// walk and key addressing (where a key of tile t lives) and their epilogues; everything a tile does is here.
// In scope of every snippet: lid, sg, lane-derived r and side, sbase/pbase (this subgroup's rows of st/pt),
// row_ok, and the tile's first key position t0 (i32).
import {
  FLAT_ROWS,
  onlineSoftmaxWgsl,
  plusWgsl,
  putHalvesWgsl,
  seq,
  STRIP_ROWS,
  type SubgroupRows,
  tilePvWgsl,
} from './sgmat-tiles-wgsl.js';

export interface Tc2Config {
  /** Subgroups of 32 lanes per workgroup; each owns 16 query rows. */
  subgroups: number;
  /** Keys per tile (a multiple of 16). */
  keyTile: number;
  /** st and pt as per-subgroup strips (sgmat-tiles-wgsl.ts): S stores and P loads unpredicated under robustness. */
  strips?: boolean;
}

/** The numbers a tc2 kernel is generated from. */
export interface Tc2Geometry {
  D: number;
  subgroups: number;
  /** Keys per tile, query rows per workgroup, threads per workgroup. */
  BC: number;
  BR: number;
  THREADS: number;
  /** 16-column blocks of a row, 16-key blocks of a tile, 16-byte chunks of a row. */
  blocks: number;
  keyBlocks: number;
  CH: number;
  /** 16-byte K (and V) chunks each thread fetches per tile. */
  perThread: number;
  /** Where this subgroup's rows of st and pt are. */
  rows: SubgroupRows;
}

export function tc2Geometry(headDim: number, c: Tc2Config): Tc2Geometry {
  const THREADS = 32 * c.subgroups;
  const CH = headDim / 8;
  return {
    D: headDim,
    subgroups: c.subgroups,
    BC: c.keyTile,
    BR: 16 * c.subgroups,
    THREADS,
    blocks: headDim / 16,
    keyBlocks: c.keyTile / 16,
    CH,
    perThread: Math.ceil((c.keyTile * CH) / THREADS),
    rows: c.strips ? STRIP_ROWS : FLAT_ROWS,
  };
}

/** Workgroup memory a tc2 kernel declares, in bytes: K and V tiles, S (f32) and P (f16) per subgroup, flags. */
export function tc2WorkgroupBytes(headDim: number, c: Tc2Config): number {
  const kv = 2 * c.keyTile * (headDim + 8) * 2;
  const st = c.subgroups * 16 * (c.keyTile + 4) * 4;
  const pt = c.subgroups * 16 * (c.keyTile + 8) * 2;
  return kv + st + pt + 16;
}

/** Null when a tc2 kernel can run this head dim, else why not. */
export function tc2Unsupported(headDim: number, c: Tc2Config, maxWorkgroupBytes: number): string | null {
  if (headDim % 16 !== 0 || headDim < 16) return `head dim ${headDim} is not a multiple of 16`;
  const bytes = tc2WorkgroupBytes(headDim, c);
  if (bytes > maxWorkgroupBytes) return `needs ${bytes} bytes of workgroup memory, the device has ${maxWorkgroupBytes}`;
  return null;
}

/** Module-scope constants and workgroup variables (every one a multiple of 16 bytes: flash-sgmat-wgsl.ts). */
export function tc2DeclarationsWgsl(g: Tc2Geometry): string {
  const { D, BR, BC, CH, subgroups } = g;
  return `const D: u32 = ${D}u;
const BR: u32 = ${BR}u;
const BC: u32 = ${BC}u;
const CH: u32 = ${CH}u;
const LDK: u32 = ${D + 8}u;  // K/V rows, 16 bytes of skew
const LDS: u32 = ${BC + 4}u; // score rows (f32), 16 bytes of skew
const LDP: u32 = ${BC + 8}u; // probability rows (f16), 16 bytes of skew
const KV_CHUNKS: u32 = ${BC * CH}u;
const HALF: u32 = ${BC / 2}u;
const NEG: f32 = -3.0e38;
${
  g.rows === STRIP_ROWS
    ? `var<workgroup> st: array<array<f32, ${16 * (BC + 4)}>, ${subgroups}>;`
    : `var<workgroup> st: array<f32, ${subgroups * 16 * (BC + 4)}>;`
}
var<workgroup> kv: array<f16, ${2 * BC * (D + 8)}>;
${
  g.rows === STRIP_ROWS
    ? `var<workgroup> pt: array<array<f16, ${16 * (BC + 8)}>, ${subgroups}>;`
    : `var<workgroup> pt: array<f16, ${subgroups * 16 * (BC + 8)}>;`
}
var<workgroup> need: array<u32, 4>; // [0]: some row needs a rescale, [1]: the V tile is not finite`;
}

/** The packed-halves stores into kv and pt (pt's into strip s with strips). */
export function tc2StoresWgsl(g: Tc2Geometry): string {
  return `${putHalvesWgsl('put8kv', 'kv', true)}

${putHalvesWgsl('put8p', 'pt', true, g.rows === STRIP_ROWS)}`;
}

/** Per-thread registers pk0.., pv0.. holding the next tile's K and V chunks. */
export function tc2RegistersWgsl(g: Tc2Geometry): string {
  return seq(g.perThread)
    .map((p) => `  var pk${p} = vec4<u32>(0u);\n  var pv${p} = vec4<u32>(0u);`)
    .join('\n');
}

/** Where a chunk of the next tile comes from: with ch (the chunk) in scope, `j` gives its key, `ok` whether that
 * key is read, and `load(k, v)` the statements that assign its K and V chunks (vec4<u32>) to k and v. */
export interface Tc2Source {
  j: string;
  ok: string;
  load: (k: string, v: string) => string;
}

/** Fetches the next tile into the registers (zeros where a chunk is past the tile or its key is not read). */
export function tc2FetchWgsl(g: Tc2Geometry, s: Tc2Source): string {
  return seq(g.perThread)
    .map(
      (p) => `      { let ch = lid + ${p * g.THREADS}u; let j = ${s.j};
        if (ch < KV_CHUNKS && ${s.ok}) { ${s.load(`pk${p}`, `pv${p}`)} }
        else { pk${p} = vec4<u32>(0u); pv${p} = vec4<u32>(0u); } }`,
    )
    .join('\n');
}

/** Moves the registers into kv (K rows, then V rows), flagging a V chunk that holds a NaN or an infinity in
 * need[1] when checkV (the default; false where the kernel's V was checked before it and found finite). */
export function tc2StashWgsl(g: Tc2Geometry, checkV = true): string {
  const test = (p: number) => (checkV ? `\n        if (halves_non_finite(pv${p})) { need[1] = 1u; }` : '');
  return seq(g.perThread)
    .map(
      (p) => `    { let ch = lid + ${p * g.THREADS}u;
      if (ch < KV_CHUNKS) { let at = (ch / CH) * LDK + (ch % CH) * 8u; put8kv(at, pk${p}); put8kv(BC * LDK + at, pv${p});${test(p)} } }`,
    )
    .join('\n');
}

/** Q once: this lane's 8 halves of row r per 16 x 16 block from qg[qrow + ..] (zeros unless row_ok), through
 * this subgroup's rows of pt into the left fragments q0... */
export function tc2QueryWgsl(g: Tc2Geometry): string {
  const { pt, pbase } = g.rows;
  const at = g.rows === STRIP_ROWS ? 'sg, r * LDP + side * 8u' : 'pbase + r * LDP + side * 8u';
  return seq(g.blocks)
    .map(
      (b) => `  { var qx = vec4<u32>(0u);
    if (row_ok) { qx = qg[qrow + ${2 * b}u + side]; }
    put8p(${at}, qx);
    workgroupBarrier(); }
  let q${b} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&${pt}, ${pbase}, false, LDP);
  workgroupBarrier();`,
    )
    .join('\n');
}

/** S = Q K^T for the staged tile into s0.. (declared here), stored to this subgroup's rows of st. */
export function tc2ScoresWgsl(g: Tc2Geometry): string {
  const init = seq(g.keyBlocks)
    .map((n) => `    var s${n} = subgroup_matrix_result<f32, 16, 16>();`)
    .join('\n');
  const mma = seq(g.blocks)
    .map((b) =>
      seq(g.keyBlocks)
        .map(
          (n) =>
            `    s${n} = subgroupMatrixMultiplyAccumulate(q${b}, ` +
            `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, ${n * 16}u * LDK + ${b * 16}u, true, LDK), s${n});`,
        )
        .join('\n'),
    )
    .join('\n');
  const store = seq(g.keyBlocks)
    .map((n) => `    subgroupMatrixStore(&${g.rows.st}, ${plusWgsl(g.rows.sbase, n * 16)}, s${n}, false, LDS);`)
    .join('\n');
  return `${init}\n${mma}\n${store}`;
}

/** The online softmax of the tile's scores and its O += P V (sgmat-tiles-wgsl.ts), for the keys `visible`
 * (a WGSL bool over key position j: i32) lets a row see; checkV as tc2StashWgsl's (false: no scalar P V). */
export function tc2SoftmaxPvWgsl(g: Tc2Geometry, visible: string, checkV = true): { softmax: string; pv: string } {
  const { blocks, keyBlocks, rows } = g;
  const pLoad = seq(keyBlocks)
    .map(
      (kb) =>
        `    let p${kb} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&${rows.pt}, ${plusWgsl(rows.pbase, kb * 16)}, false, LDP);`,
    )
    .join('\n');
  const matrix = seq(blocks)
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
  const softmax = onlineSoftmaxWgsl({
    half: 'HALF',
    scores: plusWgsl(rows.sbase, 'r * LDS'),
    probs: plusWgsl(rows.pbase, 'r * LDP'),
    visible,
    blocks,
    checkV,
    rows,
  });
  const pv = tilePvWgsl(
    `${pLoad}\n${matrix}`,
    {
      keys: 'BC',
      probs: plusWgsl(rows.pbase, 'r * LDP'),
      value: (kk) => `BC * LDK + ${kk} * LDK`,
      visible,
      blocks,
      rows,
    },
    checkV,
  );
  return { softmax, pv };
}
