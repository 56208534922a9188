// DSA layers in the model runner: the training-free indexer against float64 on a random GQA model (half and
// interleaved RoPE), the key lists (sinks + local window + the indexer's top-k of the keys between, no
// duplicates), and stories260K end to end on CPU and WebGPU: topk >= context gives the golden greedy output,
// a small topk runs, stays finite, equals dense while the local window covers the text, and chunked
// prefill equals one token at a time.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomNormal } from '../src/tensor.js';
import { cpuDevice } from '../src/runtime/device.js';
import { loadGguf } from '../src/model/gguf.js';
import { CpuDecoder } from '../src/model/decoder-cpu.js';
import { GpuDecoder } from '../src/model/decoder-gpu.js';
import { generate } from '../src/model/generate.js';
import { randomModel } from '../src/model/random-model.js';
import { indexKeysInto, indexQueries, indexScoresRow, pairChannels, trainingFreeIndexer } from '../src/model/dsa-indexer.js';
import { DsaLayer, dsaLayerParams } from '../src/model/dsa-layer.js';
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
  architecture: 'llama', vocabSize: 64, hiddenSize: 48, intermediateSize: 64, layers: 1, heads: 6, kvHeads: 2, headDim: 16,
  rmsNormEps: 1e-5, ropeTheta: 10000, rope: { kind: 'none' }, ropeLayout: layout, contextLength: 512, tiedEmbeddings: true, attentionBias: false,
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
      const ix = trainingFreeIndexer({ ...l, wk: { ...l.wk, bytes: new Uint8Array(wk.buffer) } }, c, { pairsPerHead: 3 });
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
      const others = Array.from({ length: p - 6 }, (_, i) => i + 3).filter((s) => !row.includes(s)).map((s) => scores[s]);
      assert.equal(middle.length, 5);
      assert.ok(Math.min(...middle) >= Math.max(...others) - 1e-6, 'the middle keys are the indexer top-k');
    }
  });
});

describe('DSA layers in the decoder (stories260K)', () => {
  it('CPU: topk >= context gives the golden greedy output (chunked prefill)', async () => {
    const d = new CpuDecoder(model, uniformSchedule('dsa:topk=256'), { maxTokens: 201, chunk: 37 });
    const r = await generate(d, model.tokenizer, [1], { maxTokens: 200, temperature: 0 });
    assert.deepEqual([1, ...r.ids.slice(0, 199)], expectedIds());
    assert.equal(r.text + '\n', expectedText());
  });

  it('CPU: small topk runs and stays finite; equals dense while the window covers the text; chunked == one by one', async () => {
    const prompt = expectedIds().slice(0, 150);
    const flash = async (n: number) => new CpuDecoder(model, uniformSchedule('flash'), { maxTokens: n }).forward(prompt.slice(0, n));
    const covered = await new CpuDecoder(model, uniformSchedule('dsa:topk=16'), { maxTokens: 60 }).forward(prompt.slice(0, 60));
    assert.ok(maxErr(covered, await flash(60)) < 1e-5);
    const chunked = await new CpuDecoder(model, uniformSchedule('dsa:topk=16,local=16'), { maxTokens: 150, chunk: 23 }).forward(prompt);
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
