// The WebGPU decoder with each matmul and GEMV version of src/kernels/versions.ts forced by name (and with
// the planner's choice) against the f32 CPU decoder's logits, on a small random model whose sizes fill no
// tile evenly and whose inputs are whole blocks of 32 (what the 16-byte loads and Q8_0/Q4_0 need): a chunked prompt (chunks of 16, 16 and 13
// rows) and decode steps; warm decode steps create nothing and read the logits once. Versions the device
// lacks are skipped by name, loudly (the tensor-core ones on lavapipe; their kernels are checked through
// their CPU twin in kernel-versions.test.ts); on the GPU machine scripts/bench-kernels-h200.sh runs this file.
// Q8_0 weights stay Q8_0 tiles on the GPU, dequantised by the kernels (their versions are checked against
// float64 in kernel-versions.test.ts); Q4_0 is decoded on upload and runs through the f16 kernels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { webgpuDevice, assertNoNaN } from './support.js';
import { GEMV_VERSIONS, MATMUL_VERSIONS, type MatmulVersion } from '../src/kernels/versions.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { GpuDecoder } from '../src/model/forward/decoder-gpu.js';
import { LLAMA_3_2_1B_SHAPE, randomModel } from '../src/model/load/random-model.js';
import { uniformSchedule } from '../src/attention/sparse.js';
import { planMatmul } from '../src/attention/planner.js';
import { formatPlan, planModel } from '../src/model/plan.js';
import { UnsupportedError } from '../src/errors.js';
import type { LoadedModel, ModelConfig, WeightTensor } from '../src/model/types.js';
import { encodeTensor } from './gguf-builder.js';

const device = await webgpuDevice();
const gpu = device?.gpu;

const SHAPE: ModelConfig = {
  ...LLAMA_3_2_1B_SHAPE,
  vocabSize: 517,
  hiddenSize: 160,
  intermediateSize: 288,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 40,
  ropeTheta: 10000,
  tiedEmbeddings: false,
};
const model = randomModel(SHAPE, 7);
const PROMPT = Array.from({ length: 45 }, (_, i) => (i * 37 + 11) % SHAPE.vocabSize);
const STEPS = [5, 300, 42, 516, 9];
const INPUTS = [SHAPE.hiddenSize, SHAPE.heads * SHAPE.headDim, SHAPE.intermediateSize];

const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
};

/** The CPU decoder's logits after the prompt and after each decode step. */
async function cpuLogits(m: LoadedModel): Promise<Float32Array[]> {
  const cpu = new CpuDecoder(m, uniformSchedule('flash'), { maxTokens: 64, chunk: 16 });
  const out = [await cpu.forward(PROMPT)];
  for (const id of STEPS) out.push(await cpu.forward([id]));
  return out;
}
const reference = await cpuLogits(model);
const scale = Math.max(...Array.from(reference[0], Math.abs));

/** Runs the GPU decoder; returns the error against the CPU's logits and its matmul lines. */
async function runGpu(m: LoadedModel, ref: Float32Array[], asked: { rows?: string; row?: string }) {
  const g = await GpuDecoder.create(gpu!, m, uniformSchedule('flash'), {
    maxTokens: 64,
    chunk: 16,
    storage: 'f16',
    matmul: asked,
  });
  try {
    const got = [await g.forward(PROMPT)];
    got.push(await g.forward([STEPS[0]]));
    const before = { ...gpu!.counters };
    for (const id of STEPS.slice(1)) got.push(await g.forward([id]));
    const after = gpu!.counters;
    const steps = STEPS.length - 1;
    assert.equal(after.hostReads - before.hostReads, steps, 'one host read per decoded token');
    // The logits and, after them, one non-finite flag word per layer (docs/HARDENING.md).
    assert.equal(after.hostReadBytes - before.hostReadBytes, steps * (SHAPE.vocabSize + SHAPE.layers) * 4);
    assert.equal(after.buffersCreated - before.buffersCreated, 0, 'buffers per token');
    assert.equal(after.uniformsCreated - before.uniformsCreated, 0, 'uniforms per token');
    assert.equal(after.bindGroupsCreated - before.bindGroupsCreated, 0, 'bind groups per token');
    got.forEach((l, i) => assertNoNaN(`logits ${i}`, l));
    return { err: Math.max(...got.map((l, i) => maxErr(l, ref[i]))), plans: g.matmulPlans };
  } finally {
    g.destroy();
  }
}

// f16 weights (11 significant bits) over 2 layers: a few 2^-11 of the largest logit; the tensor-core
// versions also round their activations to f16 as they stage them (about sqrt(2) times that).
const BUDGET = 4e-3 * scale;
const skipped: string[] = [];
const skip = (what: string, why: string) => {
  skipped.push(`${what}: ${why}`);
  process.stderr.write(`!!! SKIPPED decoder with ${what}: ${why}\n`);
};

const cases: Array<[string, { rows?: string; row?: string }, MatmulVersion | undefined]> = [
  ['auto', {}, undefined],
  ...MATMUL_VERSIONS.map((v): [string, { rows: string }, MatmulVersion] => [`rows ${v.name}`, { rows: v.name }, v]),
  ...[...MATMUL_VERSIONS, ...GEMV_VERSIONS].map((v): [string, { row: string }, MatmulVersion] => [
    `one row ${v.name}`,
    { row: v.name },
    v,
  ]),
];

for (const [label, asked, version] of cases)
  test(`decoder with matmul ${label} gives the CPU decoder's logits`, async (t) => {
    if (!gpu) return skip(label, 'no WebGPU device');
    const why = version && INPUTS.map((k) => version.unsupported(gpu, 'f16', k)).find((w) => w !== null);
    if (why) return skip(label, why);
    const { err, plans } = await runGpu(model, reference, asked);
    t.diagnostic(`error ${err.toExponential(2)} of max logit ${scale.toFixed(2)}; ${plans.join(' | ')}`);
    assert.ok(err < BUDGET, `error ${err} (budget ${BUDGET})`);
    assert.ok(err > 1e-6, `error ${err}: f16 weights did not run`);
    const named = version?.name ?? (gpu.features.subgroupMatrixF16 ? 'tensor-cores tc-' : 'tiled');
    assert.ok(
      plans.some((p) => p.includes(named)),
      `the matmul lines name ${named}: ${plans.join('\n')}`,
    );
    if (!version && gpu.features.subgroups)
      assert.ok(
        plans.some((p) => /^matmul, 1 row: gemv gemv-/.test(p)),
        plans.join('\n'),
      );
  });

test('a GEMV asked for prefill rows, or a kernel the device lacks, is refused with a typed error', async () => {
  const t = { features: gpu?.features ?? FULL, dtype: 'f16' as const, headDim: 0, queries: 16, keys: 160, columns: 8 };
  assert.throws(() => planMatmul(t, 'gemv-r2'), UnsupportedError);
  assert.throws(() => planMatmul(t, 'nope'), UnsupportedError);
  assert.throws(() => planMatmul({ ...t, queries: 1, keys: 172 }, 'gemv-r2'), /multiple of 8/);
  assert.throws(() => planMatmul({ ...t, features: undefined }, 'tiled-v1'), UnsupportedError);
  assert.equal(planMatmul({ ...t, dtype: 'f32' }, 'auto').kernel, 'tiled-v1');
  assert.equal(planMatmul({ ...t, dtype: 'f32', queries: 1 }, 'auto').kernel, 'matvec-v1');
  if (gpu && !gpu.features.subgroupMatrixF16)
    await assert.rejects(
      GpuDecoder.create(gpu, model, uniformSchedule('flash'), {
        maxTokens: 8,
        storage: 'f16',
        matmul: { rows: 'tc-128x64x32' },
      }),
      UnsupportedError,
    );
});
const FULL = { f16: true, subgroups: true, subgroupMatrixF16: true, timestamps: true };

test('the planner picks tensor cores for chunks and a GEMV for one row on a device with subgroup matrices', () => {
  const t = { features: FULL, maxWorkgroupStorageBytes: 49152, dtype: 'f16' as const, headDim: 0 };
  const rows = planMatmul({ ...t, queries: 512, keys: 2048, columns: 8192 });
  assert.equal(rows.version, 'tensor-cores');
  assert.equal(rows.kernel, 'tc-256x128x32-s-c');
  assert.equal(planMatmul({ ...t, queries: 512, keys: 2048, columns: 2048 }).kernel, 'tc-128x64x32-c');
  assert.equal(planMatmul({ ...t, queries: 1, keys: 8192, columns: 2048 }).kernel, 'gemv-r1t128');
  assert.equal(planMatmul({ ...t, queries: 1, keys: 2048, columns: 8192 }).kernel, 'gemv-r2');
  // Inputs not a multiple of 8 (stories260K's MLP of 172) fall back, saying why.
  const odd = planMatmul({ ...t, queries: 512, keys: 172, columns: 64 });
  assert.equal(odd.kernel, 'tiled-v1');
  assert.match(odd.reason, /not tensor-cores \(K = 172 is not a multiple of 8/);
  assert.equal(planMatmul({ ...t, queries: 1, keys: 172, columns: 64 }).kernel, 'matvec-v1');
});

test('plan --device names the matmul kernels of a prefill chunk and of one row per device profile', () => {
  const plan = (device: string, dtype: 'f16' | 'f32' = 'f16', chunk?: number) =>
    planModel(LLAMA_3_2_1B_SHAPE, { context: 16384, attention: 'flash', dtype, device, chunk }).matmul;
  // The default chunk on tensor cores (2048) takes the tall tile for every product.
  assert.match(
    plan('tensor-cores').prefill,
    /^matmul: tensor-cores tc-256x128x32-s-c .*\[outputs x inputs: 3072x2048, 2048x2048, 512x2048, 8192x2048, 2048x8192\]$/,
  );
  const tc = plan('tensor-cores', 'f16', 512);
  // At chunks of 512: q, k and v stacked (3072 x 2048, where they share an encoding) or apart (2048 x 2048 and
  // 512 x 2048).
  assert.match(
    tc.prefill,
    /matmul: tensor-cores tc-128x64x32-c .*\[outputs x inputs: 2048x2048, 512x2048, 2048x8192\]/,
  );
  assert.match(tc.prefill, /^matmul: tensor-cores tc-256x128x32-s-c .*\[outputs x inputs: 3072x2048, 8192x2048\]/);
  assert.match(tc.decode, /^matmul: gemv gemv-r2 .*128256x2048/);
  assert.match(tc.decode, /matmul: gemv gemv-r1t128 .*\[outputs x inputs: 2048x8192\]/);
  assert.match(plan('lavapipe').prefill, /^matmul: tiled tiled-v1 .*not tensor-cores \(the device has no f16 subgroup/);
  assert.match(plan('lavapipe').decode, /^matmul: gemv gemv-r2/);
  assert.match(plan('portable').decode, /^matmul: matvec matvec-v1 .*not gemv \(needs shader-f16 and subgroups\)/);
  assert.match(plan('tensor-cores', 'f32').prefill, /^matmul: tiled .*not tensor-cores \(f32 storage \(exact/);
  assert.match(plan('cpu').prefill, /^matmul: cpu-rows/);
  assert.match(
    formatPlan(planModel(LLAMA_3_2_1B_SHAPE, { context: 4096, attention: 'flash' }), LLAMA_3_2_1B_SHAPE, 'x'),
    /projections and MLP\n    prefill  matmul: tensor-cores/,
  );
});

/** The model with its matrices in a block quantisation (file encoding, as a GGUF holds them). */
function quantised(m: LoadedModel, dtype: 'q8_0' | 'q4_0'): LoadedModel {
  const q = (w: WeightTensor): WeightTensor => {
    const values = new Float32Array(w.bytes.buffer, w.bytes.byteOffset, w.bytes.byteLength / 4);
    return { ...w, dtype, bytes: encodeTensor(values, dtype === 'q8_0' ? 8 : 2) };
  };
  const layers = m.weights.layers.map((l) => ({
    ...l,
    wq: q(l.wq),
    wk: q(l.wk),
    wv: q(l.wv),
    wo: q(l.wo),
    wGate: q(l.wGate),
    wUp: q(l.wUp),
    wDown: q(l.wDown),
  }));
  return { ...m, weights: { ...m.weights, layers, output: q(m.weights.output!) } };
}

for (const dtype of ['q8_0', 'q4_0'] as const)
  test(`${dtype} weights run through the planner's matmuls and give the CPU decoder's logits`, async (t) => {
    if (!gpu) return skip(`${dtype} weights`, 'no WebGPU device');
    const m = quantised(model, dtype);
    const ref = await cpuLogits(m);
    const { err, plans } = await runGpu(m, ref, {});
    t.diagnostic(`error ${err.toExponential(2)}; ${plans.join(' | ')}`);
    assert.ok(err < BUDGET, `error ${err} (budget ${BUDGET})`);
    // Q8_0 matrices stay Q8_0 tiles on the GPU (the kernels dequantise them); Q4_0 is decoded on upload.
    assert.equal(
      plans.some((p) => p.includes('Q8_0 weights')),
      dtype === 'q8_0',
      plans.join('\n'),
    );
  });

test('decoder matmul versions: what was skipped', () => {
  if (skipped.length) console.log(`${skipped.length} skipped:\n${skipped.join('\n')}`);
  assert.ok(cases.length >= MATMUL_VERSIONS.length + GEMV_VERSIONS.length);
});
