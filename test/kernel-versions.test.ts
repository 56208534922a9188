// Every version of every kernel family (src/kernels/versions.ts) against the float64 reference, on odd
// shapes, with outputs poisoned with NaN before each run: versions the device runs are run on it;
// versions it lacks run through their CPU twins (the subgroup-matrix kernels in CI, on lavapipe) or
// are skipped by name, loudly. The same file runs on the GPU machine (scripts/bench-kernels-h200.sh).
// Error rule (FlashAttention's): within 2x a naive f16 implementation's error against float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { webgpuDevice } from './support.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import {
  FLASH_VERSIONS,
  GEMV_VERSIONS,
  MATMUL_VERSIONS,
  preferredFlash,
  preferredGemv,
  preferredMatmul,
  type FlashVersion,
} from '../src/kernels/versions.js';
import { flashDispatcher, matmulDispatcher } from '../src/bench/kernel-run.js';
import { flashAttentionCpu } from '../src/kernels/flash-cpu.js';
import { matmulTcTwin } from '../src/kernels/matmul-tc-cpu.js';
import { naiveHalfAttention, referenceAttention, maxAbsDiff, type ReferenceState } from '../src/reference/attention.js';
import { referenceVisible } from '../src/reference/mask-reference.js';
import { matmulRef } from '../src/reference/decoder.js';
import { roundHalf } from '../src/f16.js';
import { asFloat32, randomNormal, tensor, type Tensor } from '../src/tensor.js';
import { attentionShape } from '../src/spine/problem.js';
import { buildBlockMask } from '../src/spine/block-mask.js';
import {
  and,
  causal,
  documents,
  maskDocuments,
  maskKey,
  or,
  sinkTokens,
  slidingWindow,
  type MaskNode,
} from '../src/spine/mask.js';
import type { AttentionState } from '../src/spine/state.js';
import { flashAttention } from '../src/attention/flash.js';
import { UnsupportedError } from '../src/errors.js';
import { benchFlash, benchGemv, benchMatmul } from '../src/bench/kernel-bench.js';
import { q8TilesFromBlocks, q8TileValues } from '../src/weights/q8-tiles.js';
import { encodeTensor } from './gguf-builder.js';

const device = await webgpuDevice();
const gpu = device?.gpu;
const skipped: string[] = [];

function skip(what: string, why: string): void {
  const line = `SKIPPED ${what}: ${why}`;
  skipped.push(line);
  process.stderr.write(`!!! ${line}\n`);
}

/** A device with every feature: what a version needs beyond the device decides whether its twin applies. */
const FULL_FEATURED = {
  features: { f16: true, subgroups: true, subgroupMatrixF16: true, timestamps: true },
  maxWorkgroupStorageBytes: 49152,
};

/** Where each version runs: 'gpu', 'twin' or null (skipped, said loudly). */
function placeFlash(v: FlashVersion, D: number, what: string): 'gpu' | 'twin' | null {
  const why = gpu ? v.unsupported(gpu, 'f16', D) : 'no WebGPU device';
  if (!why) return 'gpu';
  if (v.twin && v.unsupported(FULL_FEATURED, 'f16', D) === null) return 'twin';
  skip(`${v.name} ${what}`, why);
  return null;
}

function checkState(got: AttentionState, ref: ReferenceState, naive: ReferenceState, label: string): string {
  for (let i = 0; i < got.o.length; i++) if (Number.isNaN(got.o[i])) assert.fail(`${label}: o[${i}] is NaN`);
  for (let i = 0; i < got.lse.length; i++) if (Number.isNaN(got.lse[i])) assert.fail(`${label}: lse[${i}] is NaN`);
  const err = maxAbsDiff(got.o, ref.o);
  const budget = 2 * Math.max(maxAbsDiff(naive.o, ref.o), 1e-6);
  const errL = maxAbsDiff(got.lse, ref.lse);
  assert.ok(err <= budget, `${label}: output error ${err} exceeds 2x the naive f16 error (${budget})`);
  // LSE: f32 sums over up to 4K keys with the hardware's exp2/log2.
  assert.ok(errL <= 1e-3, `${label}: LSE error ${errL}`);
  return `err ${err.toExponential(2)} (budget ${budget.toExponential(2)}), lse ${errL.toExponential(2)}`;
}

async function flashOnGpu(
  g: GpuContext,
  v: FlashVersion,
  q: Tensor,
  k: Tensor,
  vv: Tensor,
  isCausal: boolean,
  mask?: MaskNode,
  kvStride?: number,
): Promise<AttentionState> {
  const [H, Nq, D] = q.shape;
  const [Hkv, Nk] = k.shape;
  const owned: GPUBuffer[] = [];
  const up = async (data: ArrayBufferView, label: string) => {
    const b = await g.upload(data, label);
    owned.push(b);
    return b;
  };
  try {
    let kData = k.data;
    let vData = vv.data;
    if (kvStride) {
      // Rows past each head's keys hold NaN: a kernel that reads them is caught.
      const pad = (t: Tensor) => {
        const out = new Uint16Array(Hkv * kvStride * D).fill(0x7e00);
        for (let h = 0; h < Hkv; h++) out.set(t.data.subarray(h * Nk * D, (h + 1) * Nk * D), h * kvStride * D);
        return out;
      };
      [kData, vData] = [pad(k), pad(vv)];
    }
    const bufs = {
      q: await up(q.data, 'q'),
      k: await up(kData, 'k'),
      v: await up(vData, 'v'),
      o: await up(new Float32Array(H * Nq * D).fill(Number.NaN), 'o'),
      lse: await up(new Float32Array(H * Nq).fill(Number.NaN), 'lse'),
      mask: undefined as undefined | Parameters<typeof flashDispatcher>[4]['mask'],
    };
    if (mask) {
      const t = v.tiles(D);
      const blocks = buildBlockMask(mask, Nq, Nk, t.rows, t.keyTile);
      const ids = maskDocuments(mask);
      bufs.mask = {
        wgsl: { predicate: maskKey(mask), documents: ids !== undefined },
        offsets: await up(blocks.offsets, 'offsets'),
        tiles: await up(blocks.tiles, 'tiles'),
        documents: ids ? await up(ids, 'documents') : undefined,
      };
    }
    const run = await flashDispatcher(
      g,
      v,
      { heads: H, kvHeads: Hkv, queries: Nq, keys: Nk, headDim: D, causal: isCausal, kvStride },
      'f16',
      bufs,
    );
    await g.run(`version ${v.name}`, (pass) => run.record(pass));
    run.release();
    const o = new Float32Array(await g.read(bufs.o, H * Nq * D * 4));
    const lse = new Float32Array(await g.read(bufs.lse, H * Nq * 4));
    return { o, lse } as AttentionState;
  } finally {
    for (const b of owned) g.release(b);
  }
}

function flashOnTwin(v: FlashVersion, q: Tensor, k: Tensor, vv: Tensor, isCausal: boolean, mask?: MaskNode) {
  const s = attentionShape(q, k, vv, { causal: !mask && isCausal });
  const t = v.tiles(q.shape[2]);
  const blockMask = mask ? buildBlockMask(mask, s.queries, s.keys, t.rows, t.keyTile) : undefined;
  return flashAttentionCpu(q, k, vv, s, { ...v.twin, ...(blockMask ? { blockMask } : {}) });
}

interface FlashCase {
  label: string;
  shape: [number, number, number, number, number]; // H, Hkv, Nq, Nk, D
  causal: boolean;
  mask?: MaskNode;
}

const docIds = (n: number) => Int32Array.from({ length: n }, (_, i) => (i < 40 ? 0 : i < 41 ? 1 : i < 200 ? 2 : 3));
const FLASH_CASES: FlashCase[] = [
  { label: 'GQA 4:1 N 97 D 64 causal', shape: [4, 1, 97, 97, 64], causal: true },
  { label: 'N 1023 D 128 causal', shape: [2, 2, 1023, 1023, 128], causal: true },
  { label: 'GQA 4:1 N 97x300 D 80 full', shape: [4, 1, 97, 300, 80], causal: false },
  { label: 'GQA 4:1 N 300x700 D 128 full', shape: [8, 2, 300, 700, 128], causal: false },
  { label: 'N 130x70 D 32 causal (early rows see nothing)', shape: [2, 1, 130, 70, 32], causal: true },
  { label: 'one query N 1023 D 128', shape: [2, 2, 1, 1023, 128], causal: true },
  {
    label: 'N 4097 D 64 sinks 4 + window 200',
    shape: [2, 1, 4097, 4097, 64],
    causal: false,
    mask: and(causal(), or(sinkTokens(4), slidingWindow(200))),
  },
  {
    label: 'GQA 2:1 N 1023 D 128 window 37',
    shape: [4, 2, 1023, 1023, 128],
    causal: false,
    mask: and(causal(), slidingWindow(37)),
  },
  {
    label: 'N 333 D 80 documents',
    shape: [2, 2, 333, 333, 80],
    causal: false,
    mask: and(causal(), documents(docIds(333))),
  },
];

for (const c of FLASH_CASES) {
  const [H, Hkv, Nq, Nk, D] = c.shape;
  test(`flash versions: ${c.label}`, async () => {
    const seed = 1000 + H * 7 + Nq + D;
    const q = randomNormal([H, Nq, D], seed, 'f16', 1.5);
    const k = randomNormal([Hkv, Nk, D], seed + 1, 'f16', 1.5);
    const v = randomNormal([Hkv, Nk, D], seed + 2, 'f16');
    const filter = c.mask ? (i: number, j: number) => referenceVisible(c.mask!, Nk - Nq + i, j) : undefined;
    const opts = { causal: c.mask ? false : c.causal };
    const ref = referenceAttention(q, k, v, opts, filter);
    const naive = naiveHalfAttention(q, k, v, opts, filter);
    const twins = new Map<string, AttentionState>(); // versions with the same twin share one run
    const failures: string[] = [];
    for (const ver of FLASH_VERSIONS) {
      const where = placeFlash(ver, D, c.label);
      if (!where) continue;
      if (where === 'twin' && ver.name === 'portable') continue;
      if (where === 'twin' && Nq * Nk * H > 4e6 && !c.mask) {
        skip(`${ver.name} twin ${c.label}`, 'too slow for the CPU twin');
        continue;
      }
      const twinKey = `${JSON.stringify(ver.twin)} ${c.mask ? JSON.stringify(ver.tiles(D)) : ''}`;
      try {
        if (where === 'twin' && !twins.has(twinKey)) twins.set(twinKey, flashOnTwin(ver, q, k, v, c.causal, c.mask));
        const got = where === 'gpu' ? await flashOnGpu(gpu!, ver, q, k, v, c.causal, c.mask) : twins.get(twinKey)!;
        const line = checkState(got, ref, naive, `${ver.name} (${where}) ${c.label}`);
        console.log(`flash ${ver.name} on ${where}, ${c.label}: ${line}`);
      } catch (e) {
        // Every version is tried before the case fails, so one run reports them all.
        failures.push((e as Error).message.slice(0, 1500));
        console.log(`FAILED flash ${ver.name} on ${where}, ${c.label}: ${failures.at(-1)}`);
      }
    }
    assert.deepEqual(failures, []);
  });
}

test('flash versions: NaN in one query row reaches that row only', async () => {
  const [H, Hkv, N, D] = [2, 1, 97, 64];
  const q = randomNormal([H, N, D], 5, 'f16');
  const k = randomNormal([Hkv, N, D], 6, 'f16');
  const v = randomNormal([Hkv, N, D], 7, 'f16');
  const poisoned = 1 * N + 40; // head 1, row 40
  const qd = new Uint16Array(q.data);
  qd[poisoned * D + 3] = 0x7e00;
  const qn = tensor(q.shape, 'f16', qd);
  for (const ver of FLASH_VERSIONS) {
    if (!ver.propagatesNaN) {
      skip(`${ver.name} NaN propagation`, 'this older kernel gives 0 / -inf for a NaN query (documented)');
      continue;
    }
    const where = placeFlash(ver, D, 'NaN propagation');
    if (!where) continue;
    const got = where === 'gpu' ? await flashOnGpu(gpu!, ver, qn, k, v, true) : flashOnTwin(ver, qn, k, v, true);
    for (let r = 0; r < H * N; r++) {
      const nan = Number.isNaN(got.lse[r]) && got.o.subarray(r * D, (r + 1) * D).every(Number.isNaN);
      const clean = !Number.isNaN(got.lse[r]) && !got.o.subarray(r * D, (r + 1) * D).some(Number.isNaN);
      assert.ok(
        r === poisoned ? nan : clean,
        `${ver.name} (${where}): row ${r} ${r === poisoned ? 'lost' : 'got'} the NaN`,
      );
    }
  }
});

test('flash versions: NaN and infinities in v reach the rows that attend them, never a row that masks them', async () => {
  // Key 100 lies in the causal diagonal tile of rows 64..99 (and 96..99 of 32-row tiles); under the window, rows
  // past 100 + 37 in a workgroup that visits its tile mask it too. A whole-tile P V would give them 0 * NaN.
  const [H, Hkv, N, D] = [2, 1, 203, 64];
  const q = randomNormal([H, N, D], 11, 'f16');
  const k = randomNormal([Hkv, N, D], 12, 'f16');
  const vd = new Uint16Array(randomNormal([Hkv, N, D], 13, 'f16').data);
  [vd[100 * D + 5], vd[150 * D + 9], vd[40 * D + 17]] = [0x7e00, 0x7c00, 0xfc00]; // NaN, +Inf, -Inf
  const v = tensor([Hkv, N, D], 'f16', vd);
  for (const mask of [undefined, and(causal(), slidingWindow(37))]) {
    const filter = mask ? (i: number, j: number) => referenceVisible(mask, i, j) : undefined;
    const ref = referenceAttention(q, k, v, { causal: !mask }, filter);
    assert.ok(ref.o.some(Number.isNaN) && ref.o.some((x) => x === Infinity) && ref.o.some((x) => x === -Infinity));
    for (const ver of FLASH_VERSIONS) {
      const where = placeFlash(ver, D, 'masked v');
      if (!where) continue;
      const got =
        where === 'gpu' ? await flashOnGpu(gpu!, ver, q, k, v, !mask, mask) : flashOnTwin(ver, q, k, v, !mask, mask);
      const label = `${ver.name} (${where})${mask ? ' window' : ''}`;
      for (let x = 0; x < ref.o.length; x++) {
        if (Number.isFinite(ref.o[x])) {
          assert.ok(Math.abs(got.o[x] - ref.o[x]) < 1e-2, `${label}: o[${x}] = ${got.o[x]}, reference ${ref.o[x]}`);
        } else assert.ok(Object.is(got.o[x], ref.o[x]), `${label}: o[${x}] = ${got.o[x]}, reference ${ref.o[x]}`);
      }
      for (let r = 0; r < ref.lse.length; r++)
        assert.ok(Math.abs(got.lse[r] - ref.lse[r]) < 1e-3, `${label}: lse[${r}]`);
    }
  }
});

test('flash versions with a KV row stride read keys of head h at h * stride + j', async (t) => {
  const [H, Hkv, N, D, stride] = [4, 2, 97, 128, 160];
  const q = randomNormal([H, N, D], 8, 'f16');
  const k = randomNormal([Hkv, N, D], 9, 'f16');
  const v = randomNormal([Hkv, N, D], 10, 'f16');
  const ref = referenceAttention(q, k, v, { causal: true });
  const naive = naiveHalfAttention(q, k, v, { causal: true });
  let ran = 0;
  for (const ver of FLASH_VERSIONS.filter((x) => x.kvStride)) {
    const why = gpu ? ver.unsupported(gpu, 'f16', D) : 'no WebGPU device';
    if (why) {
      skip(`${ver.name} KV stride`, `${why} (the CPU twin has no stride to check)`);
      continue;
    }
    checkState(await flashOnGpu(gpu!, ver, q, k, v, true, undefined, stride), ref, naive, `${ver.name} stride`);
    ran++;
  }
  if (!ran) t.diagnostic('no version with a KV stride runs on this device');
});

test("flash.ts's 'tc2' variant runs the tc2 kernel through the library path, or refuses with a typed error", async () => {
  const mask = and(causal(), slidingWindow(50));
  const [H, Hkv, N, D] = [4, 2, 300, 128];
  const q = randomNormal([H, N, D], 31, 'f16');
  const k = randomNormal([Hkv, N, D], 32, 'f16');
  const v = randomNormal([Hkv, N, D], 33, 'f16');
  if (!device || gpu?.features.subgroupMatrixF16 !== true) {
    if (device) await assert.rejects(flashAttention(device, q, k, v, { variant: 'tc2' }), UnsupportedError);
    skip('tc2 through flash.ts', 'the device has no f16 subgroup matrices (the refusal was checked)');
    return;
  }
  for (const m of [undefined, mask]) {
    const filter = m ? (i: number, j: number) => referenceVisible(m, i, j) : undefined;
    const opts = { causal: !m };
    const got = await flashAttention(device, q, k, v, { variant: 'tc2', ...(m ? { mask: m, causal: false } : {}) });
    checkState(
      got,
      referenceAttention(q, k, v, opts, filter),
      naiveHalfAttention(q, k, v, opts, filter),
      'tc2 via flash.ts',
    );
  }
});

test('bench kernels times every version the device runs (small shapes)', async (t) => {
  if (!gpu) {
    skip('bench kernels smoke test', 'no WebGPU device');
    return;
  }
  const lines: string[] = [];
  const o = { lengths: [64], versions: [], targetSeconds: 0.01, small: true, log: (l: string) => lines.push(l) };
  const rows = [...(await benchMatmul(gpu, o)), ...(await benchGemv(gpu, o)), ...(await benchFlash(gpu, o))];
  for (const r of rows) {
    assert.equal(r.error, undefined, `${r.family} ${r.version}: ${r.error}`);
    assert.ok(r.ms !== null && r.ms > 0 && ((r.tflops ?? 0) > 0 || (r.gbps ?? 0) > 0), JSON.stringify(r));
  }
  for (const family of ['flash', 'matmul', 'gemv', 'copy'])
    assert.ok(
      rows.some((r) => r.family === family),
      family,
    );
  t.diagnostic(`${rows.length} rows`);
});

// Matmuls and GEMVs: y[M, N] = x[M, K] W[N, K]^T + b with f16 weights and f32 activations (the decoder's).
interface MatmulCase {
  m: number;
  n: number;
  k: number;
  bias: boolean;
  /** Weight storage (default f16); Q8_0 tiles are checked against float64 over their dequantised values. */
  weights?: 'f16' | 'q8_0';
}
const MATMUL_CASES: MatmulCase[] = [
  { m: 97, n: 96, k: 64, bias: true },
  { m: 1023, n: 129, k: 264, bias: false },
  { m: 256, n: 256, k: 256, bias: false }, // interior tiles only: the direct store
  { m: 130, n: 384, k: 1032, bias: true },
  { m: 97, n: 96, k: 64, bias: true, weights: 'q8_0' },
  { m: 257, n: 200, k: 1056, bias: false, weights: 'q8_0' },
];
const GEMV_CASES: MatmulCase[] = [
  { m: 1, n: 511, k: 2048, bias: true },
  { m: 1, n: 97, k: 4104, bias: false },
  { m: 1, n: 4097, k: 64, bias: true },
  { m: 1, n: 511, k: 2048, bias: true, weights: 'q8_0' },
  { m: 1, n: 97, k: 4128, bias: false, weights: 'q8_0' },
];

function naiveHalfMatmul(x: Float32Array, m: number, w: Float32Array, n: number, k: number, bias?: Float32Array) {
  const y = new Float64Array(m * n);
  for (let t = 0; t < m; t++)
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let i = 0; i < k; i++) s = roundHalf(s + roundHalf(roundHalf(x[t * k + i]) * w[r * k + i]));
      y[t * n + r] = roundHalf(s + (bias ? bias[r] : 0));
    }
  return y;
}

async function matmulOnGpu(
  g: GpuContext,
  ver: (typeof MATMUL_VERSIONS)[number],
  c: MatmulCase,
  x: Float32Array,
  wBits: Uint16Array | Uint32Array,
  bias?: Float32Array,
): Promise<Float32Array> {
  const owned = [
    await g.upload(x, 'x'),
    await g.upload(wBits, 'w'),
    await g.upload(new Float32Array(c.m * c.n).fill(Number.NaN), 'y'),
  ];
  if (bias) owned.push(await g.upload(bias, 'bias'));
  try {
    const run = await matmulDispatcher(g, ver, c, c.weights ?? 'f16', 'f32', {
      x: owned[0],
      w: owned[1],
      y: owned[2],
      bias: owned[3],
    });
    await g.run(`version ${ver.name}`, (pass) => run.record(pass));
    run.release();
    return new Float32Array(await g.read(owned[2], c.m * c.n * 4));
  } finally {
    for (const b of owned) g.release(b);
  }
}

for (const [family, versions, cases] of [
  ['matmul', MATMUL_VERSIONS, MATMUL_CASES],
  ['gemv', GEMV_VERSIONS, GEMV_CASES],
] as const) {
  for (const c of cases) {
    const q8 = c.weights === 'q8_0';
    const label = `M ${c.m} N ${c.n} K ${c.k}${c.bias ? ' + bias' : ''}${q8 ? ', Q8_0 tiles' : ''}`;
    test(`${family} versions: ${label}`, async () => {
      const x = asFloat32(randomNormal([c.m, c.k], c.m + c.n, 'f32'));
      const wf = randomNormal([c.n, c.k], c.k + 1, 'f16', 0.05);
      const tiles = q8 ? q8TilesFromBlocks(encodeTensor(asFloat32(wf), 8), c.n, c.k) : undefined;
      const w = { data: tiles ?? (wf.data as Uint16Array) };
      // What the kernels multiply by: the f16 weights, or the tiles' values (exact in f32).
      const wv = tiles ? q8TileValues(tiles, c.n, c.k) : asFloat32(wf);
      const bias = c.bias ? asFloat32(randomNormal([c.n], 3, 'f32')) : undefined;
      const ref = matmulRef(x, c.m, wv, c.n, c.k, bias);
      const budget = 2 * Math.max(maxAbsDiff(naiveHalfMatmul(x, c.m, wv, c.n, c.k, bias), ref), 1e-6);
      let twin: Float32Array | undefined; // every tensor-core version has the same twin
      const failures: string[] = [];
      for (const ver of versions) {
        try {
          await checkMatmulVersion(ver);
        } catch (e) {
          failures.push((e as Error).message.slice(0, 1500));
          console.log(`FAILED ${family} ${ver.name}, ${label}: ${failures.at(-1)}`);
        }
      }
      assert.deepEqual(failures, []);
      async function checkMatmulVersion(ver: (typeof versions)[number]) {
        const why = gpu ? ver.unsupported(gpu, c.weights ?? 'f16', c.k) : 'no WebGPU device';
        let got: Float32Array;
        let where: string;
        if (!why) {
          got = await matmulOnGpu(gpu!, ver, c, x, w.data, bias);
          where = 'gpu';
        } else if (ver.halfActivations && c.k % 8 === 0) {
          // The tensor-core kernels round dequantised Q8_0 weights to f16 as they stage them.
          twin ??= matmulTcTwin(x, c.m, q8 ? wv.map(roundHalf) : wv, c.n, c.k, bias);
          got = twin;
          where = 'twin';
        } else {
          skip(`${ver.name} ${label}`, why);
          return;
        }
        for (let i = 0; i < got.length; i++) if (Number.isNaN(got[i])) assert.fail(`${ver.name}: y[${i}] is NaN`);
        const err = maxAbsDiff(got, ref);
        assert.ok(err <= budget, `${ver.name} (${where}) ${label}: error ${err} exceeds 2x naive f16 (${budget})`);
        // Q8_0 values are exact in f32: kernels that keep x in f32 leave only the f32 sums' error.
        if (q8 && !ver.halfActivations)
          assert.ok(err < 1e-4, `${ver.name} ${label}: Q8_0 error ${err} above f32 sums'`);
        console.log(
          `${family} ${ver.name} on ${where}, ${label}: err ${err.toExponential(2)} (budget ${budget.toExponential(2)})`,
        );
        if (where === 'gpu' && ver.propagatesNaN) {
          const xn = new Float32Array(x);
          const row = c.m - 1;
          xn[row * c.k + 5] = Number.NaN;
          const y = await matmulOnGpu(gpu!, ver, c, xn, w.data, bias);
          for (let t = 0; t < c.m; t++)
            for (const r of [0, c.n - 1])
              assert.equal(
                Number.isNaN(y[t * c.n + r]),
                t === row,
                `${ver.name}: NaN in x row ${row} at y[${t}, ${r}]`,
              );
        }
      }
    });
  }
}

test('kernel versions: what was skipped', () => {
  if (skipped.length) console.log(`${skipped.length} skipped:\n${skipped.join('\n')}`);
  assert.ok(FLASH_VERSIONS.length >= 4 && MATMUL_VERSIONS.length >= 2 && GEMV_VERSIONS.length >= 2);
  // The measured defaults fall back to something this device runs (or, without one, something portable).
  for (const dev of gpu ? [gpu, FULL_FEATURED] : [FULL_FEATURED]) {
    for (const d of [32, 64, 80, 128, 96]) assert.equal(preferredFlash(dev, 'f16', d).unsupported(dev, 'f16', d), null);
    for (const [m, n, k] of [
      [512, 2048, 2048],
      [4096, 8192, 2048],
    ])
      assert.equal(preferredMatmul(dev, m, n, k).unsupported(dev, 'f16', k), null);
    for (const k of [2048, 8192]) assert.equal(preferredGemv(dev, k).unsupported(dev, 'f16', k), null);
  }
  assert.equal(preferredFlash(FULL_FEATURED, 'f16', 128).name, 'tc2-128x32-c');
  assert.equal(preferredFlash(FULL_FEATURED, 'f16', 32).name, 'tc2-64x32-c');
});
