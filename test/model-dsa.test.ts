// DSA layers in the model runner: the training-free indexer against float64 on a random GQA model (half and
// interleaved RoPE), the key lists (sinks + local window + the indexer's top-k of the keys between, no
// duplicates), and stories260K end to end on CPU and WebGPU: topk >= context gives the golden greedy output,
// a small topk runs, stays finite, equals dense while the local window covers the text, and chunked
// prefill equals one token at a time.
import { describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { randomNormal } from '../src/tensor.js';
import { cpuDevice } from '../src/runtime/device.js';
import { loadGguf, ggufModel } from '../src/model/load/gguf.js';
import { withTrainedIndexer } from './trained-indexer-support.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { GpuDecoder } from '../src/model/forward/decoder-gpu.js';
import { generate } from '../src/model/generation/generate.js';
import { randomModel } from '../src/model/load/random-model.js';
import {
  indexKeysInto,
  indexQueries,
  indexScoresRow,
  layerIndexer,
  pairChannels,
  trainedIndexKeysInto,
  trainedIndexQueries,
  trainingFreeIndexer,
} from '../src/model/caches/dsa-indexer.js';
import { DsaLayer, dsaLayerParams } from '../src/model/caches/dsa-layer.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { uniformSchedule } from '../src/attention/sparse.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import type { ModelConfig } from '../src/model/types.js';
import { assertNoNaN, webgpuDevice } from './support.js';
import { FIXTURE_GGUF, expectedIds, expectedText } from './model-support.js';

const model = loadGguf(FIXTURE_GGUF);
const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
};
const shape = (layout: ModelConfig['ropeLayout']): ModelConfig => ({
  architecture: 'llama',
  vocabSize: 64,
  hiddenSize: 48,
  intermediateSize: 64,
  layers: 1,
  heads: 6,
  kvHeads: 2,
  headDim: 16,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  rope: { kind: 'none' },
  ropeLayout: layout,
  contextLength: 512,
  tiedEmbeddings: true,
  attentionBias: false,
});

describe('training-free indexer', () => {
  for (const layout of ['half', 'interleaved'] as const) {
    it(`picks whole rotary pairs by |W_Q||W_K| and scores the group-mean partial logit (${layout} RoPE, GQA 3)`, () => {
      const c = shape(layout);
      const m = randomModel(c, 7);
      const l = m.weights.layers[0];
      // Make pair 5 of KV head 1 dominant in both projections: it must be chosen first.
      const [a, b] = pairChannels(5, c.headDim, layout);
      const wk = new Float32Array(l.wk.bytes.buffer.slice(0), l.wk.bytes.byteOffset, l.wk.shape[0] * l.wk.shape[1]);
      for (const ch of [a, b]) for (let x = 0; x < c.hiddenSize; x++) wk[(c.headDim + ch) * c.hiddenSize + x] *= 20;
      const ix = trainingFreeIndexer({ ...l, wk: { ...l.wk, bytes: new Uint8Array(wk.buffer) } }, c, {
        pairsPerHead: 3,
      });
      assert.equal(ix.dim, 2 * 2 * 3);
      assert.ok(Array.from(ix.channels[1]).includes(a) && Array.from(ix.channels[1]).includes(b));
      for (const ch of ix.channels) {
        const set = new Set(ch);
        for (let i = 0; i < c.headDim / 2; i++) {
          const [u, v] = pairChannels(i, c.headDim, layout);
          assert.equal(set.has(u), set.has(v), 'pairs stay whole');
        }
      }
      // Index scores against float64 from the definition, on random post-RoPE q, k.
      const [T, D] = [9, c.headDim];
      const q = randomNormal([c.heads * T * D], 1).data as Float32Array;
      const k = randomNormal([c.kvHeads * T * D], 2).data as Float32Array;
      const keys = new Float32Array(T * ix.dim);
      indexKeysInto(ix, k, T, D, keys, 0);
      const iq = indexQueries(ix, q, c.heads, T, D);
      const got = new Float32Array(T);
      for (let t = 0; t < T; t++) {
        indexScoresRow(ix, iq.q, T, t, keys, T, got);
        for (let s = 0; s < T; s++) {
          let want = 0;
          for (let j = 0; j < c.kvHeads; j++) {
            let dot = 0;
            for (const ch of ix.channels[j]) {
              let mean = 0;
              for (let h = j * 3; h < j * 3 + 3; h++) mean += q[(h * T + t) * D + ch] / 3;
              dot += mean * k[(j * T + s) * D + ch];
            }
            want += Math.max(0, dot) / Math.sqrt(D);
          }
          assert.ok(Math.abs(got[s] - want) < 1e-5, `t ${t} s ${s}: ${got[s]} vs ${want}`);
        }
      }
    });
  }

  it('key lists: sinks, the local window and the float indexer top-k of the keys between, no duplicates', async () => {
    const c = shape('half');
    const m = randomModel(c, 3);
    const params = dsaLayerParams(parseMethodSpec('dsa:topk=5,sinks=3,local=4,indexer=float,pairs=2'));
    const layer = new DsaLayer(m.weights.layers[0], c, params, 97);
    const D = c.headDim;
    const N = 97;
    const k = randomNormal([c.kvHeads * N * D], 4).data as Float32Array;
    layer.append(k, N);
    const T = 41; // the last 41 queries of 97 keys
    const q = randomNormal([c.heads * T * D], 5).data as Float32Array;
    const lists = await layer.select(cpuDevice, q, T);
    const keys = new Float32Array(N * layer.indexer.dim);
    indexKeysInto(layer.indexer, k, N, D, keys, 0);
    const iq = indexQueries(layer.indexer, q, c.heads, T, D);
    const scores = new Float32Array(N);
    for (let t = 0; t < T; t++) {
      const p = N - T + t;
      const row = Array.from(lists.indices.subarray(t * lists.width, t * lists.width + lists.count(t)));
      assert.equal(row.length, Math.min(p + 1, 5 + 3 + 4));
      assert.equal(new Set(row).size, row.length, 'no duplicates');
      for (const s of [0, 1, 2, p - 3, p - 2, p - 1, p]) assert.ok(row.includes(s), `query ${p} keeps ${s}`);
      indexScoresRow(layer.indexer, iq.q, T, t, keys, N, scores);
      const middle = row.filter((s) => s >= 3 && s <= p - 4).map((s) => scores[s]);
      const others = Array.from({ length: p - 6 }, (_, i) => i + 3)
        .filter((s) => !row.includes(s))
        .map((s) => scores[s]);
      assert.equal(middle.length, 5);
      assert.ok(Math.min(...middle) >= Math.max(...others) - 1e-6, 'the middle keys are the indexer top-k');
    }
  });
});

describe('DSA layers in the decoder (stories260K)', () => {
  it('longctx generate --attention dsa:topk=K prints the greedy text', () => {
    const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
    const run = (spec: string) =>
      spawnSync(
        process.execPath,
        [cli, 'generate', '--model', FIXTURE_GGUF, '--prompt', '', '--max-tokens', '40', '--attention', spec],
        { encoding: 'utf8', timeout: 60_000 },
      );
    const big = run('dsa:topk=4096');
    assert.equal(big.status, 0, big.stderr);
    assert.ok(big.stdout.length > 100 && expectedText().startsWith(big.stdout.trimEnd()), big.stdout);
    const small = run('dsa:topk=4,local=4,sinks=1');
    assert.equal(small.status, 0, small.stderr);
    assert.ok(small.stdout.length > 20 && small.stdout !== big.stdout, small.stdout);
  });

  it('CPU: topk >= context gives the golden greedy output (chunked prefill)', async () => {
    const d = new CpuDecoder(model, uniformSchedule('dsa:topk=256'), { maxTokens: 201, chunk: 37 });
    const r = await generate(d, model.tokenizer, [1], { maxTokens: 200, temperature: 0 });
    assert.deepEqual([1, ...r.ids.slice(0, 199)], expectedIds());
    assert.equal(r.text + '\n', expectedText());
  });

  it('CPU: small topk runs and stays finite; equals dense while the window covers the text; chunked == one by one', async () => {
    const prompt = expectedIds().slice(0, 150);
    const flash = async (n: number) =>
      new CpuDecoder(model, uniformSchedule('flash'), { maxTokens: n }).forward(prompt.slice(0, n));
    const covered = await new CpuDecoder(model, uniformSchedule('dsa:topk=16'), { maxTokens: 60 }).forward(
      prompt.slice(0, 60),
    );
    assert.ok(maxErr(covered, await flash(60)) < 1e-5);
    const chunked = await new CpuDecoder(model, uniformSchedule('dsa:topk=16,local=16'), {
      maxTokens: 150,
      chunk: 23,
    }).forward(prompt);
    const single = new CpuDecoder(model, uniformSchedule('dsa:topk=16,local=16'), { maxTokens: 150, chunk: 1 });
    let last: Float32Array = new Float32Array();
    for (const id of prompt) last = await single.forward([id]);
    assertNoNaN('logits', chunked);
    assert.ok(maxErr(chunked, last) < 1e-4, `${maxErr(chunked, last)}`);
    const dense = await flash(150);
    const err = maxErr(chunked, dense);
    assert.ok(err > 1e-4 && err < 5, `sparse differs from dense, but not wildly: ${err}`);
  });
});

const device = await webgpuDevice();
describe('DSA layers on WebGPU (stories260K)', { skip: device ? false : 'no WebGPU adapter' }, () => {
  const gpu = device?.gpu as GpuContext;

  it('topk >= context gives the golden greedy output', async () => {
    const d = await GpuDecoder.create(gpu, model, uniformSchedule('dsa:topk=256'), { maxTokens: 201, chunk: 64 });
    try {
      const r = await generate(d, model.tokenizer, [1], { maxTokens: 200, temperature: 0 });
      assert.deepEqual([1, ...r.ids.slice(0, 199)], expectedIds());
      assert.equal(r.text + '\n', expectedText());
    } finally {
      d.destroy();
    }
  });

  it('small topk: logits equal the CPU decoder (float indexer) and stay finite', async () => {
    const spec = 'dsa:topk=8,local=8,sinks=2,indexer=float';
    const prompt = expectedIds().slice(0, 90);
    const d = await GpuDecoder.create(gpu, model, uniformSchedule(spec), { maxTokens: 91, chunk: 32 });
    try {
      assert.match(d.plans[0], /^dsa resident/);
      const got = await d.forward(prompt);
      assertNoNaN('logits', got);
      const want = await new CpuDecoder(model, uniformSchedule(spec), { maxTokens: 91, chunk: 32 }).forward(prompt);
      assert.ok(maxErr(got, want) < 1e-3, `${maxErr(got, want)}`);
      const step = await d.forward([prompt[5]]); // decode: one query through the same path
      assertNoNaN('decode logits', step);
    } finally {
      d.destroy();
    }
  });
});

describe('a trained indexer in the weights file', () => {
  const trained = ggufModel(withTrainedIndexer(), 'stories260K+indexer');

  it('is loaded instead of the training-free one; q_I, k_I, w follow the definition; RoPE keeps scores relative', () => {
    const layer = trained.weights.layers[2];
    assert.ok(layer.indexer && !model.weights.layers[2].indexer);
    const ix = layerIndexer(layer, trained.config);
    assert.ok(ix.trained && ix.heads === 2 && ix.dim === 16, ix.description);
    assert.match(ix.description, /trained/);
    const T = 5;
    const h = randomNormal([T * 64], 9).data as Float32Array;
    const keysAt = (first: number) => {
      const out = new Float32Array(T * 16);
      trainedIndexKeysInto(ix, h, T, first, out, 0);
      return out;
    };
    const dots = (first: number) => {
      const k = keysAt(first);
      const { q, w } = trainedIndexQueries(ix, h, T, first);
      const out: number[] = [];
      for (let j = 0; j < 2; j++)
        for (let t = 0; t < T; t++)
          for (let s = 0; s < T; s++) {
            let d = 0;
            for (let c = 0; c < 16; c++) d += q[(j * T + t) * 16 + c] * k[s * 16 + c];
            out.push(d * w[t * 2 + j]);
          }
      return out;
    };
    // float64 at position 0 for token 0: no rotation, so q_I = W_q h, k_I = LayerNorm(W_k h) * g + b, w = W_proj h / 4 sqrt 2.
    const f = (name: string) =>
      new Float64Array(
        new Float32Array(
          layer.indexer![name as 'wq'].bytes.buffer.slice(
            layer.indexer![name as 'wq'].bytes.byteOffset,
            layer.indexer![name as 'wq'].bytes.byteOffset + layer.indexer![name as 'wq'].bytes.byteLength,
          ),
        ),
      );
    const [wk, g, b] = [f('wk'), f('kNormWeight'), f('kNormBias')];
    const raw = Array.from({ length: 16 }, (_, d) =>
      h.subarray(0, 64).reduce((acc, x, i) => acc + x * wk[d * 64 + i], 0),
    );
    const mean = raw.reduce((x, y) => x + y) / 16;
    const sd = Math.sqrt(raw.reduce((x, y) => x + (y - mean) ** 2, 0) / 16 + 1e-6);
    const k0 = keysAt(0);
    for (let d = 0; d < 16; d++)
      assert.ok(Math.abs(k0[d] - (((raw[d] - mean) / sd) * g[d] + b[d])) < 1e-4, `k_I[${d}]`);
    const [a, c] = [dots(0), dots(1000)];
    assert.ok(
      maxErr(a, c) < 1e-3 * Math.max(...a.map(Math.abs)),
      'shifting every position leaves the scores unchanged',
    );
    assert.ok(maxErr(keysAt(0), keysAt(1000)) > 1e-2, 'RoPE does rotate');
  });

  it('CPU: topk >= context keeps the golden output; a small topk gives finite logits, equal on WebGPU', async () => {
    const d = new CpuDecoder(trained, uniformSchedule('dsa:topk=256'), { maxTokens: 60, chunk: 17 });
    const r = await generate(d, trained.tokenizer, [1], { maxTokens: 59, temperature: 0 });
    assert.deepEqual([1, ...r.ids], expectedIds().slice(0, 60));
    const spec = 'dsa:topk=8,local=8,sinks=2,indexer=float';
    const prompt = expectedIds().slice(0, 90);
    const cpu = await new CpuDecoder(trained, uniformSchedule(spec), { maxTokens: 90, chunk: 32 }).forward(prompt);
    assertNoNaN('logits', cpu);
    const plain = await new CpuDecoder(model, uniformSchedule(spec), { maxTokens: 90, chunk: 32 }).forward(prompt);
    assert.ok(maxErr(cpu, plain) > 1e-4, 'the trained indexer picks other keys than the training-free one');
    const gpuDevice = await webgpuDevice();
    if (!gpuDevice) return;
    const g = await GpuDecoder.create(gpuDevice.gpu as GpuContext, trained, uniformSchedule(spec), {
      maxTokens: 90,
      chunk: 32,
    });
    try {
      // A trained indexer reads the attention input h: resident, its projection on the GPU.
      assert.match(g.plans[0], /dsa resident: trained indexer from h, 2 index heads x 16 channels on one shared key/);
      const got = await g.forward(prompt);
      assert.ok(maxErr(got, cpu) < 1e-3, `${maxErr(got, cpu)}`);
    } finally {
      g.destroy();
    }
  });
});
