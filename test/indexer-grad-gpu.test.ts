// The indexer's warm-up loss and gradient on WebGPU (train/indexer-grad-gpu.ts, kernels/indexer-grad-wgsl.ts
// and indexer-train-wgsl.ts: projections, LayerNorm, RoPE, the O(L^2) part, the top-k mass and, from the
// frozen layer's q and k, the target p) against the CPU's float64 backward (train/indexer-grad.ts, itself
// checked against finite differences in test/train-indexer.test.ts) and float64 target
// (train/attention-target.ts); the two share no code. Fresh random inputs of odd sizes, chunks that do not
// divide L, GQA targets, scratch and outputs poisoned with NaN before each run; then a short training run on
// stories260K whose losses follow the CPU's.
//
// Tolerance: the GPU computes scores, softmax, dI and the three reductions in f32 (unit roundoff 6e-8).
// A gradient entry sums up to L x H_I x D_I products whose terms cancel (dI = softmax - p sums to zero over
// a row), so its absolute error scales with the largest entry of its tensor, not its own size: we hold each
// tensor (W_q, W_k, W_proj, gamma, beta) to max |gpu - cpu| <= 2e-5 x max |cpu| of that tensor, and the loss
// to 1e-6 relative. Measured on lavapipe: at most 6e-7 for the gradients and 4e-8 for the loss (a few f32
// roundoffs: the sums are short and the float64 host does the long projection sums); the bounds leave
// 30x for other drivers' exp and log and for larger L, while a kernel bug gives errors of order 1. The top-k
// mass may differ where f32 breaks a near-tie differently: held to 1e-3 absolute (measured: equal).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attentionTarget } from '../src/train/attention-target.js';
import { indexerLossGrad, type IndexerSequence } from '../src/train/indexer-grad.js';
import { cpuIndexerGradient, GpuIndexerGradient } from '../src/train/indexer-grad-gpu.js';
import { indexerGeometry, initIndexerParams, paramLayout, seededNormal } from '../src/train/indexer-params.js';
import { freshTrainingState, trainIndexers, type TrainIndexerOptions } from '../src/train/trainer.js';
import { loadGguf } from '../src/model/load/gguf.js';
import { cpuDevice } from '../src/runtime/device.js';
import type { ModelConfig } from '../src/model/types.js';
import { indexerTestConfig, randomIndexerSequence } from './indexer-support.js';
import { FIXTURE_GGUF } from './model-support.js';
import { assertNoNaN, webgpuDevice } from './support.js';

const device = await webgpuDevice();
after(() => device?.destroy());

const config = (layout: ModelConfig['ropeLayout'], hidden: number, headDim: number) =>
  indexerTestConfig(layout, hidden, headDim, 512);
const randomSequence = (L: number, hidden: number, seed: number, chunk: number, topk: number) =>
  randomIndexerSequence(L, hidden, seed, chunk, { power: 3, topk });

/** The sequence with its target computed from random frozen-layer q and k (GQA), given to both backends. */
function withAttention(seq: IndexerSequence, heads: number, kvHeads: number, headDim: number, seed: number) {
  const { normal } = seededNormal(seed);
  const q = Float32Array.from({ length: heads * seq.L * headDim }, () => 1.5 * normal());
  const k = Float32Array.from({ length: kvHeads * seq.L * headDim }, () => normal());
  const target = attentionTarget({ q, k, h: seq.h }, seq.L, heads, kvHeads, headDim);
  return { ...seq, target, attention: { q, k, heads, kvHeads, headDim } };
}

const cases = [
  { layout: 'half', hidden: 24, headDim: 8, heads: 3, dim: 16, L: 97, chunk: 40, topk: 16 },
  { layout: 'interleaved', hidden: 37, headDim: 6, heads: 8, dim: 18, L: 301, chunk: 64, topk: 48 },
  { layout: 'half', hidden: 33, headDim: 10, heads: 3, dim: 34, L: 131, chunk: 131, topk: 200 },
  // The target on the GPU from q and k: GQA 3 (9 query heads over 3) at an odd head dim, and 2 at 64.
  { layout: 'half', hidden: 29, headDim: 6, heads: 4, dim: 14, L: 203, chunk: 57, topk: 20, att: [9, 3, 23] },
  { layout: 'interleaved', hidden: 40, headDim: 8, heads: 2, dim: 64, L: 150, chunk: 150, topk: 9, att: [4, 2, 64] },
] as const;

describe('indexer loss and gradient on WebGPU', { skip: device ? false : 'no WebGPU device' }, () => {
  const gpu = device?.gpu ? new GpuIndexerGradient(device.gpu) : undefined;
  after(() => gpu?.destroy());

  for (const k of cases) {
    const target = 'att' in k ? `, target from q/k ${k.att.join('/')}` : '';
    const shape = `hidden ${k.hidden}, H_I ${k.heads}, D_I ${k.dim}, L ${k.L}, chunk ${k.chunk}${target}`;
    it(`equal the CPU float64 ones (${k.layout} RoPE, ${shape})`, async (t) => {
      const g = indexerGeometry(config(k.layout, k.hidden, k.headDim), k.heads, k.dim);
      const params = initIndexerParams(g, 7 + k.L);
      const lay = paramLayout(g);
      const { normal } = seededNormal(9 + k.hidden);
      for (let i = 0; i < lay.gamma; i++) params[i] *= 2;
      for (let i = lay.gamma; i < lay.size; i++) params[i] += 0.3 * normal();
      const plain = randomSequence(k.L, k.hidden, 13 + k.L, k.chunk, k.topk);
      const seq = 'att' in k ? withAttention(plain, k.att[0], k.att[1], k.att[2], 5 + k.L) : plain;
      const scale = 0.7;
      const want = new Float64Array(lay.size);
      const cpu = indexerLossGrad(g, params, seq, want, scale);
      gpu!.poison = true;
      const got = new Float64Array(lay.size);
      const res = await gpu!.lossGrad(g, params, seq, got, scale);
      assertNoNaN('gradient', got);
      assert.ok(Number.isFinite(res.loss), `loss ${res.loss}`);
      assert.ok(cpu.loss > 0.05, `loss ${cpu.loss}: the check would be weak`);
      t.diagnostic(`loss: relative error ${(Math.abs(res.loss - cpu.loss) / cpu.loss).toExponential(1)}`);
      if (cpu.massCount > 0)
        t.diagnostic(`mass: |gpu - cpu| ${Math.abs(res.massSum / res.massCount - cpu.massSum / cpu.massCount)}`);
      assert.ok(Math.abs(res.loss - cpu.loss) <= 1e-6 * cpu.loss, `loss ${res.loss} vs ${cpu.loss}`);
      assert.equal(res.queries, cpu.queries);
      assert.equal(res.massCount, cpu.massCount);
      if (cpu.massCount > 0)
        assert.ok(
          Math.abs(res.massSum / res.massCount - cpu.massSum / cpu.massCount) < 1e-3,
          `mass ${res.massSum / res.massCount} vs ${cpu.massSum / cpu.massCount}`,
        );
      const parts = { wq: [lay.wq, lay.wk], wk: [lay.wk, lay.proj], proj: [lay.proj, lay.gamma] } as const;
      const ranges: Record<string, readonly [number, number]> = {
        ...parts,
        gamma: [lay.gamma, lay.beta],
        beta: [lay.beta, lay.size],
      };
      for (const [name, [a, b]] of Object.entries(ranges)) {
        let [worst, big] = [0, 0];
        for (let i = a; i < b; i++) {
          worst = Math.max(worst, Math.abs(got[i] - want[i]));
          big = Math.max(big, Math.abs(want[i]));
        }
        assert.ok(big > 1e-6, `${name}: gradient scale ${big}, the check would be vacuous`);
        t.diagnostic(`${name}: max |gpu - cpu| / max |cpu| = ${(worst / big).toExponential(1)}`);
        assert.ok(worst <= 2e-5 * big, `${name}: max |gpu - cpu| ${worst} against a scale of ${big}`);
      }
      // Loss only (no gradient): the same loss, grad untouched.
      const lossOnly = await gpu!.lossGrad(g, params, seq);
      assert.ok(Math.abs(lossOnly.loss - cpu.loss) <= 1e-6 * cpu.loss, `loss-only ${lossOnly.loss} vs ${cpu.loss}`);
    });
  }

  it('takes tied scores in key order for the top-k mass, as the CPU does (every score 0: W_proj zero)', async () => {
    const g = indexerGeometry(config('half', 19, 4), 2, 8);
    const params = initIndexerParams(g, 3);
    const lay = paramLayout(g);
    params.fill(0, lay.proj, lay.gamma);
    const seq = randomSequence(77, 19, 8, 30, 11);
    const cpu = indexerLossGrad(g, params, seq);
    gpu!.poison = true;
    const res = await gpu!.lossGrad(g, params, seq);
    assert.equal(res.massCount, cpu.massCount);
    // The first 11 keys of each row: far from what a random choice of 11 tied keys would give.
    assert.ok(Math.abs(res.massSum - cpu.massSum) < 1e-5 * cpu.massCount, `mass ${res.massSum} vs ${cpu.massSum}`);
  });

  it('refuses, with one typed error and before any work, what it cannot run', async () => {
    const g = indexerGeometry(config('half', 8, 4), 128, 128);
    const params = initIndexerParams(g, 1);
    await assert.rejects(gpu!.lossGrad(g, params, randomSequence(5, 8, 1, 4, 2)), (e: Error) => {
      assert.equal(e.name, 'UnsupportedError');
      assert.match(e.message, /H_I 128 x D_I 128 needs \d+ bytes of workgroup memory.*--backend cpu/);
      return true;
    });
    const small = indexerGeometry(config('half', 8, 4), 2, 8);
    const seq = { ...randomSequence(5, 8, 1, 4, 2), L: 6 };
    await assert.rejects(gpu!.lossGrad(small, initIndexerParams(small, 1), seq), { name: 'ShapeError' });
  });

  it('a short training run on stories260K falls as the CPU run does', async () => {
    const model = loadGguf(FIXTURE_GGUF);
    const { uniform } = seededNormal(21);
    const ids = Array.from({ length: 600 }, () => 2 + Math.floor(uniform() * (model.config.vocabSize - 2)));
    const o: TrainIndexerOptions = {
      steps: 4,
      context: 64,
      topk: 16,
      heads: 2,
      dim: 16,
      seed: 4,
      batch: 1,
      warmup: 1,
      adamw: { lr: 3e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, clip: 1 },
    };
    // The GPU run also runs the frozen model on the WebGPU decoder (as train-indexer --backend webgpu does).
    const run = async (gradient: typeof cpuIndexerGradient, frozen = cpuDevice) => {
      const losses: number[] = [];
      const state = await trainIndexers(
        model,
        ids,
        o,
        freshTrainingState(model, o),
        (r) => {
          losses.push(r.loss);
        },
        gradient,
        frozen,
      );
      return { losses, params: state.params };
    };
    const cpu = await run(cpuIndexerGradient);
    const gpuRun = await run(gpu!, device!);
    assert.ok(gpuRun.losses.at(-1)! < gpuRun.losses[0] * 0.9, `GPU loss ${gpuRun.losses.join(' -> ')}`);
    for (let i = 0; i < o.steps; i++)
      assert.ok(
        Math.abs(gpuRun.losses[i] - cpu.losses[i]) <= 1e-3 * cpu.losses[i],
        `step ${i + 1}: GPU loss ${gpuRun.losses[i]} vs CPU ${cpu.losses[i]}`,
      );
    for (const [layer, p] of gpuRun.params.entries()) assertNoNaN(`layer ${layer} params`, p);
  });

  it('train-indexer --backend webgpu trains through the CLI; a bad --backend is one typed line and writes nothing', () => {
    const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
    const text = fileURLToPath(new URL('../../data/kjv-head.txt', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'longctx-train-gpu-'));
    const args = (out: string, backend: string) => [
      ...[cli, 'train-indexer', '--model', FIXTURE_GGUF, '--data', text, '--max-chars', '20000', '--steps', '2'],
      ...['--context', '48', '--topk', '16', '--heads', '2', '--eval-samples', '0', '--out', out, '--backend', backend],
    ];
    const out = join(dir, 'gpu.gguf');
    const r = spawnSync(process.execPath, args(out, 'webgpu'), { encoding: 'utf8', timeout: 240_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^indexer gradients on WebGPU \(.*, f32\)$/m);
    assert.equal([...r.stderr.matchAll(/^step \d\/2 loss [\d.]+ mass@16 [\d.]+/gm)].length, 2, r.stderr);
    assert.ok(existsSync(out));
    const bad = join(dir, 'bad.gguf');
    const b = spawnSync(process.execPath, args(bad, 'gpu'), { encoding: 'utf8', timeout: 60_000 });
    assert.notEqual(b.status, 0);
    assert.equal(b.stderr.trim(), "longctx: InputError: --backend must be cpu, webgpu or auto, got 'gpu'");
    assert.ok(!existsSync(bad) && !existsSync(`${bad}.ckpt.safetensors`));
  });
});
