// Training the DSA indexer end to end on the CPU: a short run on stories260K (context 256, its trained length is
// 512) ends with more exact attention mass in its top-64 on held-back text than the training-free indexer keeps,
// measured by eval/dsa-mass.ts; the GGUF copy and the HF indexer.safetensors reload to identical scores and the
// DSA layer uses them; a resumed run equals an uninterrupted one; malformed indexer tensors get a typed error
// naming the tensor. The text is sampled from the model itself (seeded), train and held-back from different seeds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/errors.js';
import { dsaAttentionMass } from '../src/eval/dsa-mass.js';
import { layerIndexer, trainedIndexKeysInto, trainedIndexQueries } from '../src/model/caches/dsa-indexer.js';
import { DsaLayer, dsaLayerParams } from '../src/model/caches/dsa-layer.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { Sampler } from '../src/model/generation/sampler.js';
import { loadGguf } from '../src/model/load/gguf.js';
import { loadHfModel } from '../src/model/load/load.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { uniformSchedule } from '../src/attention/sparse.js';
import { cpuDevice } from '../src/runtime/device.js';
import { loadCheckpoint, saveCheckpoint } from '../src/train/checkpoint.js';
import { rawF32, writeGgufWithTensors, writeSafetensors } from '../src/train/indexer-files.js';
import { indexerTensors, seededNormal } from '../src/train/indexer-params.js';
import { saveTrainedIndexers } from '../src/train/save-indexers.js';
import { freshTrainingState, trainIndexers, type TrainIndexerOptions } from '../src/train/trainer.js';
import type { LoadedModel } from '../src/model/types.js';
import { writeTinyModel } from './hf-fixture.js';
import { FIXTURE_GGUF } from './model-support.js';

const model = loadGguf(FIXTURE_GGUF);
const tmp = mkdtempSync(join(tmpdir(), 'longctx-train-'));

/** `n` tokens sampled from the model at temperature 1 (a new story after each EOS). */
async function sampledTokens(m: LoadedModel, n: number, seed: number): Promise<number[]> {
  const bos = m.config.bosTokenId ?? 1;
  const decoder = new CpuDecoder(m, uniformSchedule('dense'), { maxTokens: 512 });
  const sampler = new Sampler(m.config.vocabSize, { temperature: 1, seed });
  const out: number[] = [];
  let logits = await decoder.forward([bos]);
  while (out.length < n) {
    const id = sampler.next(logits);
    if (id === m.config.eosTokenId || decoder.position >= 511) {
      decoder.reset();
      logits = await decoder.forward([bos]);
      continue;
    }
    out.push(id);
    logits = await decoder.forward([id]);
  }
  decoder.destroy();
  return out;
}

const options = (o: Partial<TrainIndexerOptions>): TrainIndexerOptions => ({
  steps: 32,
  context: 256,
  topk: 64,
  heads: 4,
  dim: 32,
  seed: 3,
  batch: 1,
  warmup: 3,
  adamw: { lr: 3e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, clip: 1 },
  ...o,
});

const meanOver = (rows: Array<Record<string, number>>, key: string) =>
  rows.reduce((a, r) => a + r[key], 0) / rows.length;

describe('train-indexer on stories260K', () => {
  it('a short run keeps more held-back attention mass at top-64 than the training-free indexer; reloads identically', async () => {
    const train = await sampledTokens(model, 3000, 1);
    const heldBack = await sampledTokens(model, 300, 2);
    const o = options({});
    const state = freshTrainingState(model, o);
    const losses: number[] = [];
    await trainIndexers(model, train, o, state, (r) => {
      losses.push(r.loss);
    });
    assert.ok(losses.at(-1)! < losses[0] / 2, `loss ${losses[0]} -> ${losses.at(-1)}`);
    const out = join(tmp, 'trained.gguf');
    saveTrainedIndexers(FIXTURE_GGUF, state, out);
    const trained = loadGguf(out);
    const ids = [model.config.bosTokenId ?? 1, ...heldBack];
    const m = await dsaAttentionMass(cpuDevice, trained, ids, {
      contexts: [256],
      samples: 32,
      budgets: [64],
      pairs: [4],
      chunk: 128,
    });
    const [t, free, oracle] = ['trained', 'indexer:4', 'oracle'].map((k) => meanOver(m.rows, k));
    assert.ok(t > free, `trained ${t.toFixed(3)} vs training-free ${free.toFixed(3)} (oracle ${oracle.toFixed(3)})`);
    assert.ok(t <= oracle + 1e-9, `trained ${t} above the oracle ${oracle}`);

    // The reloaded file scores exactly as the in-memory weights, and a DSA layer picks the trained indexer up.
    const { normal } = seededNormal(4);
    const T = 20;
    const h = Float32Array.from({ length: T * model.config.hiddenSize }, () => normal());
    for (let layer = 0; layer < model.config.layers; layer++) {
      const mem = layerIndexer(
        { ...model.weights.layers[layer], indexer: indexerTensors(state.geometry, state.params[layer], 'gguf', layer) },
        model.config,
      );
      const file = layerIndexer(trained.weights.layers[layer], model.config);
      const [a, b] = [new Float32Array(T * mem.dim), new Float32Array(T * file.dim)];
      trainedIndexKeysInto(mem, h, T, 5, a, 0);
      trainedIndexKeysInto(file, h, T, 5, b, 0);
      assert.deepEqual(b, a);
      assert.deepEqual(trainedIndexQueries(file, h, T, 5), trainedIndexQueries(mem, h, T, 5));
    }
    const dsa = new DsaLayer(
      trained.weights.layers[0],
      trained.config,
      dsaLayerParams(parseMethodSpec('dsa:topk=16')),
      64,
    );
    assert.ok(dsa.needsInput && dsa.indexer.description.startsWith('trained'));
  });

  it('a run resumed from a checkpoint ends with the same weights as an uninterrupted one', async () => {
    const train = await sampledTokens(model, 400, 5);
    const o = options({ steps: 4, context: 48, heads: 2, dim: 8, warmup: 1 });
    const straight = await trainIndexers(model, train, o, freshTrainingState(model, o), () => {});
    const path = join(tmp, 'run.ckpt.safetensors');
    const first = freshTrainingState(model, o);
    await trainIndexers(model, train, { ...o }, first, (r, s) => {
      if (r.step === 2) saveCheckpoint(path, s, o, FIXTURE_GGUF);
    });
    const resumed = loadCheckpoint(path, model, o);
    assert.equal(resumed.step, 2);
    await trainIndexers(model, train, o, resumed, () => {});
    for (let l = 0; l < model.config.layers; l++) assert.deepEqual(resumed.params[l], straight.params[l]);
    assert.throws(() => loadCheckpoint(path, model, { ...o, seed: 9 }), /--seed/);
  });
});

describe('trained indexer files', () => {
  const o = options({ heads: 2, dim: 8 });
  const state = freshTrainingState(model, o);

  it('a Hugging Face directory picks up an added indexer.safetensors (with and without a shard index)', () => {
    for (const shards of [1, 2]) {
      const { dir } = writeTinyModel({ shards });
      const base = loadHfModel(dir);
      const s = freshTrainingState(base, options({ heads: 3, dim: 6 }));
      saveTrainedIndexers(dir, s, join(dir, 'indexer.safetensors'));
      const m = loadHfModel(dir);
      for (let l = 0; l < m.config.layers; l++) {
        const want = indexerTensors(s.geometry, s.params[l], 'hf', l);
        const got = m.weights.layers[l].indexer!;
        assert.deepEqual(Buffer.from(got.wq.bytes), Buffer.from(want.wq.bytes));
        assert.deepEqual(got.proj.shape, [3, m.config.hiddenSize]);
        assert.deepEqual(Buffer.from(got.kNormBias!.bytes), Buffer.from(want.kNormBias.bytes));
      }
    }
  });

  it('malformed or mismatched indexer tensors get an InputError naming the tensor', () => {
    const gguf = join(tmp, 'bad.gguf');
    const t = indexerTensors(state.geometry, state.params[1], 'gguf', 1);
    // attn_q with the wrong row count for H_I x D_I.
    const short = {
      ...t.wq,
      shape: [t.wq.shape[0] - 1, t.wq.shape[1]],
      bytes: t.wq.bytes.subarray(0, (t.wq.shape[0] - 1) * t.wq.shape[1] * 4),
    };
    writeGgufWithTensors(FIXTURE_GGUF, gguf, [short, t.wk, t.proj]);
    assert.throws(
      () => loadGguf(gguf),
      (e: Error) => e instanceof InputError && /blk\.1\.indexer\.attn_q\.weight/.test(e.message),
    );
    // attn_k without attn_q.
    writeGgufWithTensors(FIXTURE_GGUF, gguf, [t.wk, t.proj]);
    assert.throws(
      () => loadGguf(gguf),
      (e: Error) => e instanceof InputError && /blk\.1\.indexer\.attn_q\.weight/.test(e.message),
    );
    // An index dim below the head dim (RoPE needs the first head-dim channels).
    const g2 = freshTrainingState(model, options({ heads: 2, dim: 8 })).geometry;
    const narrow = indexerTensors({ ...g2, dim: 4 }, new Float64Array(10_000), 'gguf', 0);
    writeGgufWithTensors(FIXTURE_GGUF, gguf, [narrow.wq, narrow.wk, narrow.proj]);
    assert.throws(
      () => layerIndexer(loadGguf(gguf).weights.layers[0], model.config),
      (e: Error) => e instanceof InputError && /blk\.0\.indexer\.attn_k\.weight/.test(e.message),
    );
    // HF: a k_norm of the wrong length.
    const { dir } = writeTinyModel({});
    const s = freshTrainingState(loadHfModel(dir), options({ heads: 2, dim: 4 }));
    saveTrainedIndexers(dir, s, join(dir, 'indexer.safetensors'));
    const ok = loadHfModel(dir);
    assert.ok(ok.weights.layers[1].indexer);
    const hf = indexerTensors(s.geometry, s.params[0], 'hf', 0);
    const bad = { ...hf.kNormWeight, shape: [3], bytes: hf.kNormWeight.bytes.subarray(0, 12) };
    writeSafetensors(join(dir, 'indexer.safetensors'), [hf.wq, hf.wk, hf.proj, bad].map(rawF32));
    assert.throws(
      () => loadHfModel(dir),
      (e: Error) => e instanceof InputError && /model\.layers\.0\.indexer\.k_norm\.weight/.test(e.message),
    );
    writeSafetensors(join(dir, 'indexer.safetensors'), [hf.wq, hf.proj].map(rawF32));
    assert.throws(
      () => loadHfModel(dir),
      (e: Error) => e instanceof InputError && /model\.layers\.0\.indexer\.wk\.weight/.test(e.message),
    );
  });
});
