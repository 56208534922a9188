// The tile code that the subgroup-matrix attention kernels share (flash-sgmat-wgsl.ts v1, flash-tc-wgsl.ts
// tc2, cca-sgmat-wgsl.ts), and the enables and workgroup stores of every subgroup-matrix kernel (the matmul
// too). FlashAttention-2's forward tile (Dao 2023, Alg. 1) with FlashAttention-4's lazy rescale: each
// subgroup owns 16 query rows, lane serves row r = lane / 2 and half `side` of its columns; S goes to
// workgroup memory `st` (f32), the softmax runs in scalar code, P goes back to `pt` as f16, O lives in
// D / 16 accumulators o0.. and is rescaled through this subgroup's 16 x 16 corner of st only when a row's
// tile max passes the running max m by more than 2^8 (log2 domain). The kernels keep their own loads,
// loops over sources and epilogues (what differs between them: where keys come from, NaN handling).
// A V tile holding a NaN or an infinity (flagged in need[1] while it is staged) does its P V in scalar code
// that skips the keys each row masks out: a whole-tile product would give a masked key's 0 * NaN = NaN
// (docs/HARDENING.md's NaN policy: a masked key's v never reaches the output; an attended one does).

export const SUBGROUP_MATRIX_ENABLES = `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
requires subgroup_id;`;

/**
 * Strips: with Dawn's robustness on, Tint predicates every subgroupMatrixLoad / Store whose array length, offset
 * and stride are not all constants (an if around the call, the matrix through a function-scope variable; Tint's
 * core IR robustness transform, PredicateSubgroupMatrixCall). A tile declared as 16-row strips,
 * array<array<T, 16 * LD>, S>, and read as subgroupMatrixLoad(&tile[strip], CONSTANT, major, LD) has all three
 * constant and in bounds, so the call runs bare; only the strip index is clamped (one min). Kernels with
 * `strips` in their config (matmul-tc-wgsl.ts, tc2-tiles-wgsl.ts) lay their workgroup tiles out this way.
 */
export const seq = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** `var name0 = subgroup_matrix_result<f32, 16, 16>();` for count accumulators. */
export function accumulatorsWgsl(name: string, count: number, indent = '  '): string {
  return seq(count)
    .map((b) => `${indent}var ${name}${b} = subgroup_matrix_result<f32, 16, 16>();`)
    .join('\n');
}

/** fn name(at, x): stores the 4 (vec4<f16>) or 8 (vec4<u32> of packed halves) f16 of x into target[at..]; with
 * strip, fn name(s, at, x) into target[s][at..] (an array of arrays: constantOffsetStrips below). */
export function putHalvesWgsl(name: string, base: string, packed: boolean, strip = false): string {
  // The parameter is v: the matmul's module scope has an x.
  const target = strip ? `${base}[s]` : base;
  const s = strip ? 's: u32, ' : '';
  if (!packed)
    return `fn ${name}(${s}at: u32, v: vec4<f16>) {
  ${target}[at] = v.x; ${target}[at + 1u] = v.y; ${target}[at + 2u] = v.z; ${target}[at + 3u] = v.w;
}`;
  return `fn ${name}(${s}at: u32, v: vec4<u32>) {
  let a = bitcast<vec2<f16>>(v.x); let b = bitcast<vec2<f16>>(v.y);
  let c = bitcast<vec2<f16>>(v.z); let d = bitcast<vec2<f16>>(v.w);
  ${target}[at] = a.x; ${target}[at + 1u] = a.y; ${target}[at + 2u] = b.x; ${target}[at + 3u] = b.y;
  ${target}[at + 4u] = c.x; ${target}[at + 5u] = c.y; ${target}[at + 6u] = d.x; ${target}[at + 7u] = d.y;
}`;
}

/** s0.. (keyBlocks of 16 keys) += Q K^T with this subgroup's Q rows staged in `qs` and the K tile at the
 * start of `kv`, both with row stride D (v1 and CCA). */
export function stagedScoresWgsl(blocks: number, keyBlocks: number): string {
  return seq(keyBlocks)
    .map((n) =>
      seq(blocks)
        .map(
          (b) =>
            `    { let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&qs, sg * 16u * D + ${b * 16}u, false, D);
      let bt = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, ${n * 16}u * D + ${b * 16}u, true, D);
      s${n} = subgroupMatrixMultiplyAccumulate(a, bt, s${n}); }`,
        )
        .join('\n'),
    )
    .join('\n');
}

/** o0.. += P V with P at this subgroup's rows of `pt` (stride BC) and the V tile after the K tile in `kv`
 * (stride D) (v1 and CCA). */
export function stagedPvWgsl(blocks: number, keyBlocks: number): string {
  return seq(blocks)
    .map((b) =>
      seq(keyBlocks)
        .map(
          (kb) =>
            `    { let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&pt, sbase + ${kb * 16}u, false, BC);
      let bv = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kv, ${(keyBlocks + kb) * 16}u * D + ${b * 16}u, false, D);
      o${b} = subgroupMatrixMultiplyAccumulate(a, bv, o${b}); }`,
        )
        .join('\n'),
    )
    .join('\n');
}

/** Where this subgroup's rows of st (scores, f32) and pt (probabilities, f16) are: the arrays as WGSL expressions
 * and the index of the subgroup's first element in each. Flat: one array for all subgroups, sbase / pbase WGSL
 * lets of the kernel; strips: st[sg] and pt[sg] of an array of per-subgroup arrays, from index 0 (see strips
 * above: their subgroup-matrix calls take constant offsets). */
export interface SubgroupRows {
  st: string;
  pt: string;
  sbase: string;
  pbase: string;
}
export const FLAT_ROWS: SubgroupRows = { st: 'st', pt: 'pt', sbase: 'sbase', pbase: 'pbase' };
export const STRIP_ROWS: SubgroupRows = { st: 'st[sg]', pt: 'pt[sg]', sbase: '0u', pbase: '0u' };

/** base + k as WGSL, a bare literal when base is 0u (so a strip's offset stays a constant Tint can check). */
export function plusWgsl(base: string, k: number | string): string {
  const lit = typeof k === 'number' ? `${k}u` : k;
  return base === '0u' ? lit : `${base} + ${lit}`;
}

/** Each O block through this subgroup's 16 x 16 corner of st (at sbase), each lane's 8 values of it
 * handed to `body` (an element of st, over cc), then back into registers when `reload`. */
function throughCorner(
  blocks: number,
  body: (b: number, elem: string) => string,
  reload: boolean,
  indent: string,
  rows: SubgroupRows = FLAT_ROWS,
) {
  const elem = `${rows.st}[${plusWgsl(rows.sbase, 'r * 16u + side * 8u + cc')}]`;
  return seq(blocks)
    .map((b) =>
      [
        `subgroupMatrixStore(&${rows.st}, ${rows.sbase}, o${b}, false, 16u);`,
        'workgroupBarrier();',
        body(b, elem),
        'workgroupBarrier();',
        ...(reload
          ? [
              `o${b} = subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>>(&${rows.st}, ${rows.sbase}, false, 16u);`,
              'workgroupBarrier();',
            ]
          : []),
      ]
        .map((line) => indent + line)
        .join('\n'),
    )
    .join('\n');
}

/** Where one tile's scores and probabilities sit for this lane, and which keys its row may see. */
export interface SoftmaxTile {
  /** Columns per lane (half the key tile), a WGSL u32 expression. */
  half: string;
  /** Index in st of this lane's row's first score, and in pt of its first probability. */
  scores: string;
  probs: string;
  /** WGSL bool over key position `j: i32` (and whatever the kernel has in scope). */
  visible: string;
  /** Output blocks (D / 16), rescaled when the max moves. */
  blocks: number;
  /** Whether V tiles are tested as they are staged (default): false where the kernel checked V before its
   * loop and found it finite (flash-tc-wgsl.ts's hoisted check), so v_bad is not defined. */
  checkV?: boolean;
  /** Where st and pt are (default flat). */
  rows?: SubgroupRows;
}

/** From the scores in st to P in pt: masked scores into x (log2 domain), the tile max over the row's two
 * lanes, the lazy rescale of l and O, P = exp2(x - m) as f16, l += the row sum. Needs x, m, l, need, c2, t0,
 * and bad (u32): set when a visible score is NaN or infinite (docs/HARDENING.md's NaN policy). Defines v_bad
 * (uniform): need[1], the V tile holds a NaN or an infinity (see tilePvWgsl). */
export function onlineSoftmaxWgsl(t: SoftmaxTile): string {
  const rows = t.rows ?? FLAT_ROWS;
  return `    var tile_max = NEG;
    for (var cc = 0u; cc < ${t.half}; cc++) {
      let j = t0 + i32(side * ${t.half} + cc);
      let sc = ${rows.st}[${t.scores} + side * ${t.half} + cc] * c2;
      x[cc] = select(NEG, sc, ${t.visible});
      bad = bad | select(0u, 1u, non_finite(x[cc]));
      tile_max = max(tile_max, x[cc]);
    }
    tile_max = max(tile_max, subgroupShuffleXor(tile_max, 1u));
    if (tile_max > m + 8.0) { need[0] = 1u; }
${
  t.checkV === false
    ? '    let tile_flags = workgroupUniformLoad(&need);'
    : `    // One uniform load brings both flags: the rescale's, and the V tile's (set while it was staged).
    let tile_flags = workgroupUniformLoad(&need);
    let v_bad = tile_flags[1] != 0u;`
}
    if (tile_flags[0] != 0u) {
      let m_new = max(m, tile_max);
      let alpha = select(exp2(m - m_new), 0.0, m == NEG);
      l *= alpha;
      m = m_new;
${throughCorner(t.blocks, (_b, el) => `for (var cc = 0u; cc < 8u; cc++) { ${el} *= alpha; }`, true, '      ', rows)}
    }
    var rowsum = 0.0;
    for (var cc = 0u; cc < ${t.half}; cc++) {
      let pr = select(exp2(x[cc] - m), 0.0, x[cc] == NEG);
      ${rows.pt}[${t.probs} + side * ${t.half} + cc] = f16(pr);
      rowsum += pr;
    }
    l += rowsum + subgroupShuffleXor(rowsum, 1u);`;
}

/** o[out + column] = O * inv for this lane's row when row_ok (out: the row's first output index); NaN where the
 * row saw a non-finite score (bad, joined over the row's two lanes before this). */
export function storeOutputWgsl(blocks: number, out: string, rows: SubgroupRows = FLAT_ROWS): string {
  return throughCorner(
    blocks,
    (b, el) =>
      `if (row_ok) { for (var cc = 0u; cc < 8u; cc++) { o[${out} + ${b * 16}u + side * 8u + cc] = ` +
      `select(${el} * inv, nan_value(), bad != 0u); } }`,
    false,
    '  ',
    rows,
  );
}

/** The end of a row of the staged kernels (flash v1, CCA v1 and tc2): O * (1 / l) stored, then the row's LSE (-inf for
 * a row that saw no key, NaN where it saw a non-finite score) at [h, i]. Flash tc2 keeps its own: a NaN l stays NaN. */
export function finishRowWgsl(blocks: number): string {
  return `  let inv = select(0.0, 1.0 / l, l > 0.0);
  let obase = (h * params.nq + i) * D;
  bad = bad | subgroupShuffleXor(bad, 1u);
${storeOutputWgsl(blocks, 'obase')}
  if (row_ok && side == 0u) {
    let lse_row = select(bitcast<f32>(params.neg_inf_bits), (m + log2(l)) * 0.6931471805599453, l > 0.0);
    lse[h * params.nq + i] = select(lse_row, nan_value(), bad != 0u);
  }`;
}

/** Bit tests of staged V: 8 packed halves (vec4<u32>) or 4 (vec4<f16>) holding a NaN or an infinity (exponent all
 * ones). On the bits, since WGSL lets a compiler assume floats are finite. The packed test alone needs no f16. */
export const PACKED_HALVES_NON_FINITE_WGSL = /* wgsl */ `
fn halves_non_finite(w: vec4<u32>) -> bool {
  return any((w & vec4<u32>(0x7c00u)) == vec4<u32>(0x7c00u)) ||
    any((w & vec4<u32>(0x7c000000u)) == vec4<u32>(0x7c000000u));
}`;
export const HALVES_NON_FINITE_WGSL = /* wgsl */ `${PACKED_HALVES_NON_FINITE_WGSL}
fn half4_non_finite(v: vec4<f16>) -> bool { return halves_non_finite(vec4<u32>(bitcast<vec2<u32>>(v), 0u, 0u)); }`;

/** Where one tile's P and V sit for this lane's row, and which keys the row may see (tilePvWgsl). */
export interface PvTile {
  /** Keys in the tile (a WGSL u32 expression). */
  keys: string;
  /** Index in pt of this lane's row's first probability. */
  probs: string;
  /** Index in kv of key kk's first value (kk: a WGSL u32 name). */
  value: (kk: string) => string;
  /** WGSL bool over key position `j: i32`, as the softmax's. */
  visible: string;
  blocks: number;
  /** Where st and pt are (default flat). */
  rows?: SubgroupRows;
}

/**
 * O += P V for one tile: `matrix` (the subgroup-matrix product) unless v_bad, else in scalar code over the
 * keys the row sees, through this subgroup's corner of st. Masked keys are skipped, not multiplied by P = 0,
 * so a NaN or infinity there never enters; a visible one does (NaN or Inf out, as the float64 reference).
 * Clears need[1] for the next tile: everyone read it in the softmax, two barriers ago.
 * checkV false (V known finite, no v_bad): the matrix product alone.
 */
export function tilePvWgsl(matrix: string, t: PvTile, checkV = true): string {
  if (!checkV) return matrix;
  const rows = t.rows ?? FLAT_ROWS;
  const scalar = throughCorner(
    t.blocks,
    (b, el) => `for (var cc = 0u; cc < 8u; cc++) {
        let col = ${b * 16}u + side * 8u + cc;
        var acc = ${el};
        for (var kk = 0u; kk < ${t.keys}; kk++) {
          let j = t0 + i32(kk);
          if (${t.visible}) { acc += f32(${rows.pt}[${t.probs} + kk]) * f32(kv[${t.value('kk')} + col]); }
        }
        ${el} = acc;
      }`,
    true,
    '      ',
    rows,
  );
  return `    if (lid == 0u) { need[1] = 0u; }
    if (v_bad) {
${scalar}
    } else {
${matrix}
    }`;
}

/** The online softmax and P V of a kernel that stages each tile of BC keys (K then V) in `kv` and its scores and
 * probabilities at `sbase + r * BC` (subgroup-matrix v1 flash and CCA): only what a row sees, `visible`, differs. */
export function stagedSoftmaxPvWgsl(visible: string, blocks: number, BC: number): { softmax: string; pv: string } {
  const probs = 'sbase + r * BC';
  return {
    softmax: onlineSoftmaxWgsl({ half: '16u', scores: probs, probs, visible, blocks }),
    pv: tilePvWgsl(stagedPvWgsl(blocks, BC / 16), {
      keys: 'BC',
      probs,
      value: (kk) => `BC * D + ${kk} * D`,
      visible,
      blocks,
    }),
  };
}
