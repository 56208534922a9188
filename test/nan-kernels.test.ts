// The NaN policy (docs/HARDENING.md) in the kernels beyond the portable flash: split-KV decoding (and its
// merge), CCA (pooling and pass 2), DSA's gathered attention (tiles and lanes kernels, split and merged) and
// its top-k selection. NaN or Inf is planted at a chosen position; exactly the rows that see it must be NaN
// (output and LSE), the others must still match the float64 reference. The subgroup-matrix kernels (flash
// v1, tc2, CCA pass 2) run in test/nan-tc.test.ts (natively, or emulated on lavapipe in the geometries that fit
// its workgroup memory); here their generated WGSL is checked in every geometry for the same handling.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { attention } from '../src/attention/attention.js';
import { attendSelected, dsaSelect } from '../src/attention/dsa.js';
import { DECODE_VERSIONS, flashDecodeGpu } from '../src/attention/flash-decode.js';
import { flashDecodeGqaPartialWgsl } from '../src/kernels/flash-decode-gqa-wgsl.js';
import { flashDecodeV3PartialWgsl } from '../src/kernels/flash-decode-v3-wgsl.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { ccaSubgroupMatrixWgsl } from '../src/kernels/cca-sgmat-wgsl.js';
import { ccaAttendWgsl, ccaPoolWgsl } from '../src/kernels/cca-wgsl.js';
import { decodeSplits, flashDecodeMergeWgsl, flashDecodePartialWgsl } from '../src/kernels/flash-decode-wgsl.js';
import { flashSubgroupMatrixWgsl } from '../src/kernels/flash-sgmat-wgsl.js';
import { FLASH_TC_CONFIGS, flashTcWgsl } from '../src/kernels/flash-tc-wgsl.js';
import { V_FINITE_GROUPS } from '../src/kernels/v-finite-wgsl.js';
import { flashPortableWgsl } from '../src/kernels/flash-wgsl.js';
import { mergeStatesWgsl } from '../src/kernels/merge-wgsl.js';
import type { GatheredKeys } from '../src/kernels/sparse-gather-cpu.js';
import { sparseGatherWgsl } from '../src/kernels/sparse-gather-wgsl.js';
import { sparseLanesAttentionCpu } from '../src/kernels/sparse-lanes-cpu.js';
import { lanesLayout, sparseLanesWgsl } from '../src/kernels/sparse-lanes-wgsl.js';
import { orderedKey } from '../src/kernels/topk-cpu.js';
import { referenceAttention } from '../src/reference/attention.js';
import { ccaCoresSeen, referenceCca } from '../src/reference/cca-reference.js';
import { referenceSparseAttention } from '../src/reference/dsa-reference.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { attentionShape } from '../src/spine/problem.js';
import { randomNormal, type Tensor } from '../src/tensor.js';
import { backends, webgpuDevice } from './support.js';

const [H, HKV, D] = [4, 2, 64];
const G = H / HKV;

/** Rows (head * n + i) whose output or LSE is NaN; every value of such a row must be NaN. */
function nanRows(o: Float32Array, lse: Float32Array, n: number): number[] {
  const rows: number[] = [];
  for (let r = 0; r < H * n; r++) {
    const row = o.subarray(r * D, (r + 1) * D);
    const nans = row.filter((x) => Number.isNaN(x)).length;
    if (nans > 0 || Number.isNaN(lse[r])) {
      assert.equal(nans, D, `row ${r}: ${nans} of ${D} outputs NaN (the whole row must be)`);
      assert.ok(Number.isNaN(lse[r]), `row ${r}: output NaN but LSE ${lse[r]}`);
      rows.push(r);
    }
  }
  return rows;
}

function rowsWhere(n: number, f: (h: number, i: number) => boolean): number[] {
  const rows: number[] = [];
  for (let h = 0; h < H; h++) for (let i = 0; i < n; i++) if (f(h, i)) rows.push(h * n + i);
  return rows;
}

/** The policy's check: NaN exactly on `want`, the reference elsewhere. */
function assertPolicy(
  got: { o: Float32Array; lse: Float32Array },
  ref: { o: ArrayLike<number>; lse: ArrayLike<number> },
  n: number,
  want: number[],
): void {
  assert.ok(want.length > 0 && want.length < H * n, 'the case must poison some rows and spare others');
  assert.deepEqual(nanRows(got.o, got.lse, n), want);
  const bad = new Set(want);
  for (let r = 0; r < H * n; r++) {
    if (bad.has(r)) continue;
    assert.ok(Math.abs(got.lse[r] - ref.lse[r]) < 2e-3, `row ${r}: LSE ${got.lse[r]} vs ${ref.lse[r]}`);
    for (let d = 0; d < D; d++) assert.ok(Math.abs(got.o[r * D + d] - ref.o[r * D + d]) < 5e-3, `row ${r} dim ${d}`);
  }
}

const plant = (t: Tensor, at: number, x: number): Tensor => {
  (t.data as Float32Array)[at] = x;
  return t;
};

const devices = await backends();
const gpuDevice = await webgpuDevice();
after(async () => gpuDevice?.destroy());

describe('split-KV decoding (flash-decode-wgsl.ts): partial states and their merge', () => {
  const KEYS = 700; // 6 splits of 128 keys (v1, v3), 3 of 256 (gqa-v2): key 300 lies in a middle split
  const cases = [
    { name: 'NaN in a key of a middle split (KV head 1)', kvAt: [1, 300], qHead: -1, want: (h: number) => h >= G },
    { name: 'Inf in the query of head 0', kvAt: [-1, 0], qHead: 0, want: (h: number) => h === 0 },
  ];
  for (const version of DECODE_VERSIONS)
    for (const c of cases) {
      test(`webgpu ${version}: ${c.name}`, { skip: gpuDevice ? false : 'no WebGPU adapter' }, async () => {
        assert.ok(decodeSplits(KEYS).splits >= 3);
        const gpu = gpuDevice!.gpu as GpuContext;
        const q = randomNormal([H, 1, D], 71);
        const k = randomNormal([HKV, KEYS, D], 72);
        const v = randomNormal([HKV, KEYS, D], 73);
        if (c.kvAt[0] >= 0) plant(k, (c.kvAt[0] * KEYS + c.kvAt[1]) * D + 7, Number.NaN);
        if (c.qHead >= 0) plant(q, c.qHead * D + 3, Number.POSITIVE_INFINITY);
        const ref = referenceAttention(q, k, v, { causal: false });
        const bufs = [
          await gpu.upload(q.data as Float32Array, 'q'),
          await gpu.upload(k.data as Float32Array, 'k'),
          await gpu.upload(v.data as Float32Array, 'v'),
          await gpu.upload(new Float32Array(H * D).fill(7), 'o'),
          await gpu.upload(new Float32Array(H).fill(7), 'lse'),
        ];
        const [qb, kb, vb, ob, lb] = bufs;
        const shape = { heads: H, kvHeads: HKV, queries: 1, keys: KEYS, headDim: D, causal: false, scale: 1 / 8 };
        try {
          await flashDecodeGpu(gpu, { q: qb, k: kb, v: vb, o: ob, lse: lb, shape, dtype: 'f32' }, KEYS, version);
          const o = new Float32Array(await gpu.read(ob, H * D * 4));
          const lse = new Float32Array(await gpu.read(lb, H * 4));
          assertPolicy(
            { o, lse },
            ref,
            1,
            rowsWhere(1, (h) => c.want(h)),
          );
        } finally {
          bufs.forEach((b) => gpu.release(b));
        }
      });
    }
});

describe('CCA (cca-wgsl.ts pooling and pass 2, cca-cpu.ts)', () => {
  const [N, GROUP, WINDOW] = [61, 4, 8];
  const spec = `cca:group=${GROUP},window=${WINDOW}`;
  // Group 2's pooling query is position 11; the rows that see core 2 are those with more than 2 cores.
  const sees = (p: number, core: number) => ccaCoresSeen(p, GROUP, WINDOW) > core;
  const cases = [
    {
      name: 'NaN in the pooling query of group 2 (head 1): its row and every row that sees core 2',
      make: () => ({
        q: plant(randomNormal([H, N, D], 81), (1 * N + 11) * D + 5, Number.NaN),
        k: randomNormal([HKV, N, D], 82),
      }),
      want: (h: number, i: number) => (h === 1 && i === 11) || (h < G && sees(i, 2)),
    },
    {
      name: 'Inf in raw key 5 (KV head 1): every later row of its heads, raw or through core 1',
      make: () => ({
        q: randomNormal([H, N, D], 83),
        k: plant(randomNormal([HKV, N, D], 84), (1 * N + 5) * D, Number.POSITIVE_INFINITY),
      }),
      want: (h: number, i: number) => h >= G && i >= 5,
    },
  ];
  for (const [backend, device] of devices) {
    for (const c of cases) {
      test(`${backend}: ${c.name}`, { skip: device === null }, async () => {
        const { q, k } = c.make();
        const v = randomNormal([HKV, N, D], 85);
        const state = await attention(device!, q, k, v, parseMethodSpec(`${spec},variant=portable`), { causal: true });
        assertPolicy(state, referenceCca(q, k, v, { group: GROUP, window: WINDOW }), N, rowsWhere(N, c.want));
      });
    }
  }
});

describe('DSA: gathered attention over given key lists, and the top-k selection', () => {
  const [N, W, BAD] = [47, 8, 20];
  /** Token t lists min(W, t + 1) distinct visible keys: all of them, or W spread back from t. */
  const lists = (): { keys: GatheredKeys; selected: Int32Array[] } => {
    const indices = new Int32Array(N * W).fill(-1);
    const selected: Int32Array[] = [];
    for (let t = 0; t < N; t++) {
      const n = Math.min(W, t + 1);
      const step = t + 1 <= W ? 1 : Math.floor((t + 1) / W);
      for (let m = 0; m < n; m++) indices[t * W + m] = t - m * step;
      selected.push(indices.slice(t * W, t * W + n));
    }
    return { keys: { indices, width: W, count: (t) => Math.min(W, t + 1) }, selected };
  };
  const { keys, selected } = lists();
  const listsBad = (t: number) => selected[t].includes(BAD);
  const want = rowsWhere(N, (h, t) => h < G && listsBad(t));
  const make = () => {
    const q = randomNormal([H, N, D], 91);
    const k = plant(randomNormal([HKV, N, D], 92), BAD * D + 9, Number.NaN);
    const v = randomNormal([HKV, N, D], 93);
    return { q, k, v, ref: referenceSparseAttention(q, k, v, selected) };
  };
  const variants = [
    { variant: 'tiles' as const },
    { variant: 'lanes' as const },
    { variant: 'lanes' as const, splits: 3 },
  ];
  for (const [backend, device] of devices) {
    for (const sparse of backend === 'cpu' ? [undefined] : variants) {
      test(
        `${backend}${sparse ? ` ${JSON.stringify(sparse)}` : ''}: NaN in listed key ${BAD}`,
        { skip: device === null },
        async () => {
          const { q, k, v, ref } = make();
          const state = await attendSelected(device!, q, k, v, keys, { causal: true, sparse });
          assertPolicy(state, ref, N, want);
        },
      );
    }
  }
  test('the lanes kernel CPU twin (splits and sub-splits) follows the policy too', () => {
    const { q, k, v, ref } = make();
    const s = attentionShape(q, k, v, { causal: true });
    assertPolicy(sparseLanesAttentionCpu(q, k, v, s, keys, { splits: 3, subSplits: 2 }), ref, N, want);
  });

  test('orderedKey: NaN of either sign ranks above +Inf', () => {
    const negNaN = new Float32Array(new Uint32Array([0xffc00000]).buffer)[0];
    assert.ok(orderedKey(Number.NaN) > orderedKey(Number.POSITIVE_INFINITY));
    assert.equal(orderedKey(negNaN), orderedKey(Number.NaN));
  });

  for (const [backend, device] of devices) {
    test(
      `${backend}: a NaN index key is selected by every token that can see it`,
      { skip: device === null },
      async () => {
        const [HI, DI, TOPK] = [2, 32, 6];
        const index = {
          q: randomNormal([HI, N, DI], 94),
          k: plant(randomNormal([N, DI], 95), BAD * DI + 4, Number.NaN),
          w: randomNormal([N, HI], 96),
        };
        const got = await dsaSelect(device!, index, { queries: N, keys: N, causal: true, topk: TOPK }, 'float');
        for (let t = BAD; t < N; t++) {
          const row = Array.from(got.indices.subarray(t * got.width, t * got.width + got.count(t)));
          assert.ok(row.includes(BAD), `token ${t} selected ${row}, not the NaN key ${BAD}`);
        }
      },
    );
  }
});

describe('generated WGSL: every kernel writes NaN rows from a flag set on non-finite scores', () => {
  const tensorCoreKernels: Array<[string, string]> = [
    ...[64, 128].map((d): [string, string] => [`flash subgroup-matrix v1 D ${d}`, flashSubgroupMatrixWgsl(d)]),
    ...[64, 128].map((d): [string, string] => [`CCA subgroup-matrix D ${d}`, ccaSubgroupMatrixWgsl(d)]),
    ...Object.entries(FLASH_TC_CONFIGS).flatMap(([name, c]) =>
      [64, 128].flatMap(
        (d): Array<[string, string]> => [
          [`flash ${name} D ${d}`, flashTcWgsl(d, c)],
          [`flash ${name} D ${d} part flagged`, flashTcWgsl(d, c, undefined, 'flagged')],
        ],
      ),
    ),
  ];
  /** Every statement storing into o[...] or lse[...] selects nan_value() on the flag. */
  function assertGuardedStores(name: string, wgsl: string, flag: RegExp): void {
    assert.match(wgsl, /fn non_finite\(|fn is_nan\(/, `${name}: the bit tests are included`);
    assert.match(wgsl, flag, `${name}: the flag is set from the scores`);
    const stores = wgsl.split('\n').filter((line) => /\b(o|lse|po|plse)\[[^\]]+\]\s*=[^=]/.test(line));
    assert.ok(stores.length >= 2, `${name}: found its o and lse stores`);
    for (const line of stores)
      assert.match(line, /nan_value\(\)/, `${name}: a store without the NaN select: ${line.trim()}`);
  }
  const lanesFlag = /bad = bad \|\| \(valid0 && non_finite\(s0\)\)/;
  const matrixFlag =
    /bad = bad \| select\(0u, 1u, non_finite\(x\[c+\]\)\)[\s\S]*bad = bad \| subgroupShuffleXor\(bad, 1u\)/;
  const cases: Array<[string, string, RegExp]> = [
    ['flash portable', flashPortableWgsl(64, 'f32'), /bad = bad \|\| non_finite\(dot\)/],
    ['CCA pass 2 portable', ccaAttendWgsl(64, 'f16'), /bad = bad \|\| non_finite\(dot\)/],
    ['split-KV partial', flashDecodePartialWgsl(64, 'f32'), /mine = mine \|\| non_finite\(score\)/],
    ['split-KV gqa-v2 partial', flashDecodeGqaPartialWgsl(64, 'f32', 4), /mine = mine \|\| non_finite\(s\)/],
    ...([1, 8] as const).flatMap((lanes) =>
      (['f32', 'f16'] as const).map(
        (dtype) =>
          [
            `split-KV v3 partial (${dtype}, ${lanes} lanes per key)`,
            flashDecodeV3PartialWgsl(64, dtype, 4, lanes),
            /if \(non_finite\(s\)\) \{ atomicOr\(&poison, 1u\); \}/,
          ] as [string, string, RegExp],
      ),
    ),
    ['split-KV merge', flashDecodeMergeWgsl(64), /bad = bad \|\| is_nan\(plse/],
    ['merge of states', mergeStatesWgsl(64), /bad = bad \|\| is_nan\(plse/],
    ['DSA tiles', sparseGatherWgsl(64, 2, 'f32'), /if \(non_finite\(ps\[g \* BC \+ j\]\)\) \{ bads\[g\] = 1u; \}/],
    ['DSA lanes', sparseLanesWgsl(64, 2, 'f32', lanesLayout(64, 2, 8)!), lanesFlag],
    // Executed in nan-tc.test.ts; checked here as source in every geometry, with the V-tile flag below.
    ...tensorCoreKernels.map(([name, wgsl]) => [name, wgsl, matrixFlag] as [string, string, RegExp]),
  ];
  for (const [name, wgsl, flag] of cases) test(name, () => assertGuardedStores(name, wgsl, flag));

  for (const [name, wgsl] of tensorCoreKernels)
    test(`${name}: every staged V chunk raises the tile's flag, which sends P V to the masked scalar loop`, () => {
      const staged = wgsl.match(/put(4|8kv)\(BC \* (D|LDK) \+ [^,]+, (\w+)\);/g) ?? [];
      assert.ok(staged.length > 0, 'found the V stores');
      for (const store of staged) {
        const reg = /, (\w+)\);$/.exec(store)![1];
        const check = reg === 'vx' ? 'half4_non_finite(vx)' : `halves_non_finite(${reg})`;
        assert.ok(wgsl.includes(`if (${check}) { need[1] = 1u; }`), `${name}: ${reg} is not tested`);
      }
      assert.match(
        wgsl,
        /let v_bad = tile_flags\[1\] != 0u;[\s\S]*if \(v_bad\) \{[\s\S]*if \((j <= last|row_ok && j >= lo)/,
      );
    });

  // The hoisted check's two kernels: each workgroup reads its KV head's flag words first and leaves when the head
  // is the other kernel's; only the flagged one tests V (above), the finite one has no test and no scalar P V.
  for (const [name, c] of Object.entries(FLASH_TC_CONFIGS))
    for (const part of ['finite', 'flagged'] as const)
      test(`flash ${name} part ${part}: runs only the heads whose V flags are ${part === 'finite' ? 'all 0' : 'set'}`, () => {
        const wgsl = flashTcWgsl(64, c, undefined, part);
        const read = /if \(lid < (\d+)u && vflags\[kvh \* (\d+)u \+ lid\] != 0u\) \{ need\[2\] = 1u; \}/.exec(wgsl);
        assert.ok(
          read && Number(read[1]) === V_FINITE_GROUPS && Number(read[2]) === V_FINITE_GROUPS,
          'reads the words',
        );
        const leave = part === 'finite' ? '!=' : '==';
        assert.ok(
          wgsl.includes(`if (workgroupUniformLoad(&need)[2] ${leave} 0u) { return; }`),
          'leaves on the other flag',
        );
        assert.ok(wgsl.indexOf('{ return; }') < wgsl.indexOf('subgroupMatrixLoad'), 'before any work');
        if (part === 'finite') assert.doesNotMatch(wgsl, /halves_non_finite\(pv|v_bad/, 'the finite part tests no V');
      });

  test('CCA pooling: a poisoned group writes NaN cores (f16 through bits, not a conversion)', () => {
    for (const dtype of ['f32', 'f16'] as const) {
      const wgsl = ccaPoolWgsl(64, dtype);
      assert.match(wgsl, /if \(non_finite\(sc\[t\]\)\) \{ atomicOr\(&poisoned, 1u\); \}/);
      assert.match(wgsl, /core_k\[cbase \+ d\] = select\([^;]+nan_elem\(\), bad\)/);
      assert.match(wgsl, /core_v\[cbase \+ d\] = select\([^;]+nan_elem\(\), bad\)/);
      if (dtype === 'f16') assert.match(wgsl, /bitcast<vec2<f16>>/);
    }
  });
});
