// The NaN policy (docs/HARDENING.md) in the tensor-core attention kernels (flash subgroup-matrix v1, tc2, CCA
// pass 2 on subgroup matrices), run natively where the device has f16 subgroup matrices and through
// test/sgmat-stub.ts's emulation everywhere (lavapipe has none). These kernels multiply whole 16 x 16 tiles
// P V, so a NaN or infinity in v at a key that a row masks out (a later key of the causal diagonal tile, a key
// outside a window, a core or raw position a CCA row does not see) would reach the row as 0 * NaN: it must
// not; an attended one must (NaN, or the same infinity, where the float64 reference has it). NaN in q or k
// makes exactly the rows that see it NaN (output and LSE). The stub is first checked on finite inputs against
// the float64 reference, the CPU twins, and (on the GPU machine) the real subgroup matrices.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { flashAttentionCpu } from '../src/kernels/flash-cpu.js';
import { maxAbsDiff, naiveHalfAttention, referenceAttention } from '../src/reference/attention.js';
import { ccaCoresSeen, naiveHalfCca, referenceCca } from '../src/reference/cca-reference.js';
import { referenceVisible } from '../src/reference/mask-reference.js';
import { buildBlockMask } from '../src/spine/block-mask.js';
import { and, causal, slidingWindow, type MaskNode } from '../src/spine/mask.js';
import { attentionShape } from '../src/spine/problem.js';
import { randomNormal, tensor, type Tensor } from '../src/tensor.js';
import { webgpuDevice } from './support.js';
import {
  type Result,
  runTcCca,
  runTcFlash,
  TC_CCA_KERNELS,
  TC_FLASH_KERNELS,
  type TcMode,
  tcSource,
} from './tc-runners.js';
import type { FlashVCheck } from '../src/kernels/flash-tc-wgsl.js';

const device = await webgpuDevice();
const gpu = device?.gpu;
after(async () => device?.destroy());
const MODES: TcMode[] = gpu?.features.subgroupMatrixF16 ? ['native', 'stub'] : ['stub'];
const noDevice = gpu ? false : 'no WebGPU adapter';

const [H, HKV, N] = [4, 2, 203];
const G = H / HKV;
const HALF = { nan: 0x7e00, inf: 0x7c00, negInf: 0xfc00 };

/** A copy of f16 tensor t with element [h, row, d] replaced by the f16 bits given. */
function plant(t: Tensor, at: [number, number, number], bits: number): Tensor {
  const [, rows, D] = t.shape;
  const data = new Uint16Array(t.data as Uint16Array);
  data[(at[0] * rows + at[1]) * D + at[2]] = bits;
  return tensor(t.shape, 'f16', data);
}

interface Ref {
  o: ArrayLike<number>;
  lse: ArrayLike<number>;
}

/** Every element of o non-finite exactly where the float64 reference is (NaN as NaN, the same infinity), the
 * rest within 2x the naive f16 error; LSE finite and close. Rows in `nanRows` must be NaN throughout instead. */
function assertPolicy(got: Result, ref: Ref, naive: Ref, D: number, label: string, nanRows = new Set<number>()) {
  const rows = got.lse.length;
  let budget = 1e-6;
  for (let r = 0; r < rows; r++)
    for (let d = 0; d < D && !nanRows.has(r); d++) {
      const x = r * D + d;
      if (Number.isFinite(ref.o[x])) budget = Math.max(budget, 2 * Math.abs(naive.o[x] - ref.o[x]));
    }
  let err = 0;
  for (let r = 0; r < rows; r++) {
    if (nanRows.has(r)) {
      assert.ok(Number.isNaN(got.lse[r]), `${label}: row ${r} must be NaN, LSE ${got.lse[r]}`);
      for (let d = 0; d < D; d++) assert.ok(Number.isNaN(got.o[r * D + d]), `${label}: row ${r} dim ${d} not NaN`);
      continue;
    }
    assert.ok(Math.abs(got.lse[r] - ref.lse[r]) <= 1e-3, `${label}: row ${r} LSE ${got.lse[r]} vs ${ref.lse[r]}`);
    for (let d = 0; d < D; d++) {
      const [g, w] = [got.o[r * D + d], ref.o[r * D + d]];
      if (Number.isFinite(w)) {
        assert.ok(Number.isFinite(g), `${label}: row ${r} dim ${d} is ${g}, the reference ${w} (a masked key leaked)`);
        err = Math.max(err, Math.abs(g - w));
      } else assert.ok(Object.is(g, w), `${label}: row ${r} dim ${d} is ${g}, the reference ${w}`);
    }
  }
  assert.ok(err <= budget, `${label}: error ${err} exceeds 2x the naive f16 error (${budget})`);
  return `err ${err.toExponential(2)} (budget ${budget.toExponential(2)})`;
}

/** Per KV head: whether the V pre-pass flagged it (some word set); undefined for kernels without the pre-pass. */
function headsFlagged(got: Result): boolean[] | undefined {
  const w = got.vFlags;
  if (!w) return undefined;
  const per = w.length / HKV;
  return Array.from({ length: HKV }, (_, h) => w.subarray(h * per, (h + 1) * per).some((x) => x !== 0));
}

/** Rows that mask key j while their workgroup visits j's key tile: where a whole-tile P V would leak. */
function leakRows(rows: number, keyTile: number, sees: (i: number, j: number) => boolean, j: number): number {
  const t0 = j - (j % keyTile);
  let count = 0;
  for (let w = 0; w * rows < N; w++) {
    const rs = Array.from({ length: Math.min(N, (w + 1) * rows) - w * rows }, (_, x) => w * rows + x);
    const visits = rs.some((i) => Array.from({ length: keyTile }, (_, x) => t0 + x).some((jj) => sees(i, jj)));
    if (visits) count += rs.filter((i) => !sees(i, j)).length;
  }
  return count;
}

const FLASH_MASKS: Array<{ label: string; mask?: MaskNode }> = [
  { label: 'causal' },
  { label: 'window 37', mask: and(causal(), slidingWindow(37)) },
];
// v: NaN and both infinities, each at a key that some rows of a visiting workgroup mask out (every geometry).
const V_POISON: Array<[[number, number, number], number]> = [
  [[0, 100, 5], HALF.nan],
  [[1, 150, 9], HALF.inf],
  [[0, 40, 17], HALF.negInf],
];

for (const kern of TC_FLASH_KERNELS) {
  const D = kern.headDim;
  describe(`${kern.name} D ${D}`, { skip: noDevice }, () => {
    const seed = kern.rows * 3 + kern.keyTile + D;
    const q = randomNormal([H, N, D], seed, 'f16', 1.5);
    const k = randomNormal([HKV, N, D], seed + 1, 'f16', 1.5);
    const v = randomNormal([HKV, N, D], seed + 2, 'f16');
    for (const { label, mask } of FLASH_MASKS) {
      const filter = mask ? (i: number, j: number) => referenceVisible(mask, i, j) : undefined;
      const sees = (i: number, j: number) => j <= i && (!filter || filter(i, j));
      const opts = { causal: !mask };
      const run = (mode: TcMode, t: { q: Tensor; k: Tensor; v: Tensor; vcheck?: FlashVCheck }) =>
        runTcFlash(gpu!, kern, mode, { ...t, causal: !mask, mask });
      for (const mode of MODES) {
        const src = gpu ? tcSource(gpu, mode, kern.wgsl()) : { why: 'no device' };
        const skip = 'why' in src ? src.why : false;
        if (skip) process.stderr.write(`!!! SKIPPED ${kern.name} D ${D} ${mode}: ${skip}\n`);
        test(`${mode} ${label}: finite inputs, against float64 and the CPU twin`, { skip }, async () => {
          const got = await run(mode, { q, k, v });
          if (kern.hoisted) assert.deepEqual(headsFlagged(got), [false, false], 'finite V flags no head');
          const line = assertPolicy(
            got,
            referenceAttention(q, k, v, opts, filter),
            naiveHalfAttention(q, k, v, opts, filter),
            D,
            mode,
          );
          const s = attentionShape(q, k, v, { causal: !mask });
          const blockMask = mask ? buildBlockMask(mask, N, N, kern.rows, kern.keyTile) : undefined;
          const twin = flashAttentionCpu(q, k, v, s, { ...kern.twin, ...(blockMask ? { blockMask } : {}) });
          const dTwin = maxAbsDiff(got.o, twin.o);
          assert.ok(dTwin <= 2e-3, `${mode}: ${dTwin} from the CPU twin`);
          if (mode === 'native' && MODES.includes('stub') && !('why' in tcSource(gpu!, 'stub', kern.wgsl(undefined)))) {
            const dStub = maxAbsDiff(got.o, (await run('stub', { q, k, v })).o);
            assert.ok(dStub <= 2e-3, `the stub is ${dStub} from the subgroup matrices`);
          }
          console.log(`${kern.name} D ${D} ${mode} ${label}: ${line}, twin ${dTwin.toExponential(2)}`);
        });
        test(
          `${mode} ${label}: NaN and infinities in v reach the rows that attend them, no others`,
          { skip },
          async () => {
            let vp = v;
            for (const [at, bits] of V_POISON) {
              assert.ok(leakRows(kern.rows, kern.keyTile, sees, at[1]) > 0, `key ${at[1]} is masked in a visited tile`);
              vp = plant(vp, at, bits);
            }
            const got = await run(mode, { q, k, v: vp });
            const ref = referenceAttention(q, k, vp, opts, filter);
            assert.ok(Array.from(ref.o).some((x) => Number.isNaN(x)) && Array.from(ref.o).some((x) => x === -Infinity));
            console.log(
              `${kern.name} D ${D} ${mode} ${label} v poisoned: ${assertPolicy(got, ref, naiveHalfAttention(q, k, vp, opts, filter), D, mode)}`,
            );
            if (kern.hoisted) assert.deepEqual(headsFlagged(got), [true, true]);
            // The per-tile check (bench attention's flash:vcheck=tile) is shipped too: it must hold as well (under
            // the stub at D 64 only: at D 128 it is another minute-long lavapipe compile per mask).
            if (!kern.hoisted || (mode === 'stub' && D !== 64)) return;
            const tile = await run(mode, { q, k, v: vp, vcheck: 'tile' });
            assert.equal(tile.vFlags, undefined);
            assertPolicy(tile, ref, naiveHalfAttention(q, k, vp, opts, filter), D, `${mode} vcheck=tile`);
          },
        );
        // The flag is per KV head: with only head 1's v poisoned (at the same masked keys), head 0's query heads
        // run the unchecked loop and must still be right; head 1's stay protected. NaN only, +Inf where the test
        // above has it: an infinity at a key whose probability rounds to 0 in f16 gives 0 * Inf = NaN in the
        // checked kernel where float64 has the infinity (tc2-32x64's row 107 and key 40 here; the same kernel as
        // before issue 12, and not what this test is about).
        if (kern.hoisted)
          test(
            `${mode} ${label}: v poisoned in KV head 1 only: head 0 unflagged, both heads right`,
            { skip },
            async () => {
              let vp = v;
              for (const [at, bits] of V_POISON) vp = plant(vp, [1, at[1], at[2]], at[0] === 1 ? bits : HALF.nan);
              const got = await run(mode, { q, k, v: vp });
              const ref = referenceAttention(q, k, vp, opts, filter);
              assert.ok(Array.from(ref.o.subarray(0, G * N * D)).every(Number.isFinite), 'head 0 is finite');
              assert.ok(Array.from(ref.o.subarray(G * N * D)).some(Number.isNaN), 'head 1 attends a NaN');
              assertPolicy(got, ref, naiveHalfAttention(q, k, vp, opts, filter), D, `${mode} head 1 only`);
              assert.deepEqual(headsFlagged(got), [false, true]);
            },
          );
        test(`${mode} ${label}: NaN in q and k makes exactly the rows that see it NaN`, { skip }, async () => {
          // q: head 1 row 150; k: KV head 0 key 100 (NaN), KV head 1 key 60 (+Inf, scores of either sign).
          const qp = plant(q, [1, 150, 3], HALF.nan);
          const kp = plant(plant(k, [0, 100, 7], HALF.nan), [1, 60, 0], HALF.inf);
          assert.ok(leakRows(kern.rows, kern.keyTile, sees, 100) > 0);
          const bad = new Set<number>();
          for (let h = 0; h < H; h++)
            for (let i = 0; i < N; i++) if ((h === 1 && i === 150) || sees(i, h < G ? 100 : 60)) bad.add(h * N + i);
          const got = await run(mode, { q: qp, k: kp, v });
          assertPolicy(
            got,
            referenceAttention(q, k, v, opts, filter),
            naiveHalfAttention(q, k, v, opts, filter),
            D,
            mode,
            bad,
          );
        });
      }
    }
  });
}

describe('CCA pass 2 on subgroup matrices', { skip: noDevice }, () => {
  const [NC, GROUP, WINDOW] = [150, 4, 8];
  const p = { group: GROUP, window: WINDOW };
  for (const [D, kernel] of [64, 128].flatMap((d) => TC_CCA_KERNELS.map((kn) => [d, kn] as const))) {
    const q = randomNormal([H, NC, D], 61 + D, 'f16', 1.5);
    const k = randomNormal([HKV, NC, D], 62 + D, 'f16', 1.5);
    const vh = randomNormal([HKV, NC, D], 63 + D, 'f16');
    for (const mode of MODES) {
      const name = `CCA ${kernel.name} D ${D} ${mode}`;
      const src = gpu ? tcSource(gpu, mode, kernel.wgsl(D)) : { why: 'no device' };
      const skip = 'why' in src ? src.why : false;
      if (skip) process.stderr.write(`!!! SKIPPED ${name}: ${skip}\n`);
      const run = (t: { q: Tensor; k: Tensor; v: Tensor }) => runTcCca(gpu!, mode, kernel, { ...t, ...p });
      test(`${kernel.name} ${mode} D ${D}: finite inputs, against float64`, { skip }, async () => {
        const line = assertPolicy(
          await run({ q, k, v: vh }),
          referenceCca(q, k, vh, p),
          naiveHalfCca(q, k, vh, p),
          D,
          mode,
        );
        console.log(`${name}: ${line}`);
      });
      // With 64 rows a workgroup, rows 64..127 visit core tile 0..31 and raw tiles from 56; with 128, rows 0..127
      // visit core tile 0..31 and raw tiles from 0. Either way position 100 (core 25) is masked, as core and as
      // raw key, for rows 64..99, raw for rows 100..107, and seen by rows 100 on.
      test(
        `${kernel.name} ${mode} D ${D}: NaN and Inf in v at masked core and raw positions stay out`,
        { skip },
        async () => {
          const vp = plant(plant(vh, [0, 100, 5], HALF.nan), [1, 70, 9], HALF.inf);
          const ref = referenceCca(q, k, vp, p);
          assert.ok(Array.from(ref.o).some((x) => Number.isNaN(x)));
          console.log(
            `${name} v poisoned: ${assertPolicy(await run({ q, k, v: vp }), ref, naiveHalfCca(q, k, vp, p), D, mode)}`,
          );
        },
      );
      test(
        `${kernel.name} ${mode} D ${D}: NaN in a pooling query and Inf in a raw key make exactly their rows NaN`,
        { skip },
        async () => {
          // Group 2's pooling query is position 11 (head 1); raw key 5 of KV head 1.
          const qp = plant(q, [1, 11, 5], HALF.nan);
          const kp = plant(k, [1, 5, 0], HALF.inf);
          const bad = new Set<number>();
          for (let h = 0; h < H; h++)
            for (let i = 0; i < NC; i++)
              if ((h === 1 && i === 11) || (h < G && ccaCoresSeen(i, GROUP, WINDOW) > 2) || (h >= G && i >= 5))
                bad.add(h * NC + i);
          assertPolicy(
            await run({ q: qp, k: kp, v: vh }),
            referenceCca(q, k, vh, p),
            naiveHalfCca(q, k, vh, p),
            D,
            mode,
            bad,
          );
        },
      );
    }
  }
});
