// The needle retrieval measurement (eval/needle-*.ts, `longctx eval-mass --needle`): each layer's figures
// against a float64 computation written here from the definitions (softmax mass, top-k with ties in key
// order, dsa's sinks + local + top-k, CCA's pooled cores and its one softmax over cores and raw keys); the
// capture's cores, fed in uneven chunks, against pooling done here over the whole sequence; the needle span
// is the asked value's tokens; and the CLI end to end on passkey-2k.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCorpus } from '../src/eval/corpus.js';
import { Haystack } from '../src/eval/haystack.js';
import { NeedleCapture } from '../src/eval/needle-capture.js';
import { measureNeedleLayer, type NeedleLayerInput } from '../src/eval/needle-retrieval.js';
import { hashSeed, Rng } from '../src/eval/rng.js';
import { taskByName } from '../src/eval/tasks/index.js';
import { loadTemplates } from '../src/eval/templates.js';
import type { QaCase } from '../src/eval/case.js';
import { loadModel } from '../src/model/load/load.js';
import type { ModelConfig } from '../src/model/types.js';

const [Hq, Hkv, D] = [4, 2, 8];
const G = Hq / Hkv;

function randoms(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

/** Softmax over logits, in float64. */
function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const z = e.reduce((a, x) => a + x, 0);
  return e.map((x) => x / z);
}

const dot = (a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number) => {
  let s = 0;
  for (let e = 0; e < D; e++) s += a[ai + e] * b[bi + e];
  return s;
};

/** Core j of KV head kv: softmax over the group's keys of each query head's q at the group's last token, averaged. */
function poolReference(Q: Float32Array, K: Float32Array, N: number, kv: number, j: number, g: number): number[] {
  const last = (j + 1) * g - 1;
  const w = new Array<number>(g).fill(0);
  for (let h = kv * G; h < (kv + 1) * G; h++) {
    const p = softmax(
      Array.from({ length: g }, (_, t) => dot(Q, (h * N + last) * D, K, (kv * N + j * g + t) * D) / Math.sqrt(D)),
    );
    for (let t = 0; t < g; t++) w[t] += p[t] / G;
  }
  return Array.from({ length: D }, (_, e) => w.reduce((a, wt, t) => a + wt * K[(kv * N + j * g + t) * D + e], 0));
}

/** The k keys kept first: largest score, ties to the earlier key. */
function topSet(score: ArrayLike<number>, from: number, to: number, k: number): Set<number> {
  const idx = Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
  idx.sort((a, b) => score[b] - score[a] || a - b);
  return new Set(idx.slice(0, k));
}

describe('needle retrieval of one layer', () => {
  const N = 101; // key rows per head (stride); n visible
  const n = 97;
  const [g, window] = [8, 20];
  const span: [number, number] = [40, 46];
  const make = (boost: number) => {
    const rng = new Rng(hashSeed('needle-layer', boost));
    const Q = randoms(rng, Hq * N * D); // every position's query [Hq, N, D]; the answer is n - 1
    const K = randoms(rng, Hkv * N * D);
    // The needle's keys lean towards the answer query of their KV head's first query head.
    for (let kv = 0; kv < Hkv; kv++)
      for (let s = span[0]; s < span[1]; s++)
        for (let e = 0; e < D; e++) K[(kv * N + s) * D + e] += boost * Q[(kv * G * N + n - 1) * D + e];
    const query = new Float32Array(Hq * D);
    for (let h = 0; h < Hq; h++) query.set(Q.subarray((h * N + n - 1) * D, (h * N + n) * D), h * D);
    const cores = new Float32Array(Hkv * Math.floor(N / g) * D);
    for (let kv = 0; kv < Hkv; kv++)
      for (let j = 0; j < Math.floor(N / g); j++)
        cores.set(poolReference(Q, K, N, kv, j, g), (kv * Math.floor(N / g) + j) * D);
    // A score with many ties (rounded to halves), so the key-order rule decides.
    const score = Float32Array.from({ length: n }, (_, s) => Math.round(dot(query, 0, K, s * D) * 2) / 2);
    const input: NeedleLayerInput = {
      shape: { heads: Hq, kvHeads: Hkv, headDim: D },
      n,
      keys: K,
      stride: N,
      query,
      span,
      scorers: [{ name: 'indexer:x', score }],
      budgets: [1, 6, 12, 40, 200],
      sinks: 4,
      local: 8,
      cca: [{ name: 'cca', group: g, window, keys: cores, stride: Math.floor(N / g) }],
    };
    return { input, Q, K, score };
  };

  for (const boost of [0, 3]) {
    it(`matches a float64 computation from the definitions (needle boost ${boost})`, () => {
      const { input, K, score } = make(boost);
      const got = measureNeedleLayer(input);
      const mass = new Array<number>(n).fill(0);
      for (let h = 0; h < Hq; h++) {
        const kv = Math.floor(h / G);
        const p = softmax(
          Array.from({ length: n }, (_, s) => dot(input.query, h * D, K, (kv * N + s) * D) / Math.sqrt(D)),
        );
        for (let s = 0; s < n; s++) mass[s] += p[s] / Hq;
      }
      const needle = [40, 41, 42, 43, 44, 45];
      const needleMass = needle.reduce((a, s) => a + mass[s], 0);
      assert.ok(Math.abs(got.needleMass - needleMass) < 1e-12, `${got.needleMass} vs ${needleMass}`);
      const expect = (selector: string, k: number, kept: (s: number) => boolean) => {
        const hit = got.hits.find((x) => x.selector === selector && x.budget === k)!;
        const inside = needle.filter(kept);
        assert.equal(hit.all, inside.length === needle.length, `${selector} k=${k} all`);
        assert.equal(hit.any, inside.length > 0, `${selector} k=${k} any`);
        const share = inside.reduce((a, s) => a + mass[s], 0) / needleMass;
        assert.ok(Math.abs(hit.kept - share) < 1e-12, `${selector} k=${k} kept ${hit.kept} vs ${share}`);
      };
      for (const k of input.budgets) {
        const oracle = topSet(mass, 0, n, k);
        expect('oracle', k, (s) => oracle.has(s));
        const top = topSet(score, 0, n, k);
        expect('indexer:x', k, (s) => top.has(s));
        const middle = topSet(score, 4, n - 8, k);
        expect('dsa:x', k, (s) => s < 4 || s >= n - 8 || middle.has(s));
      }
      // CCA at position 96: floor((97 - 20) / 8) = 9 cores (tokens 0..71), raw keys 72..96; the needle in core 5.
      const c = got.cca[0];
      const seen = 9;
      assert.equal(c.inWindow, false);
      const exactCore = mass.slice(40, 48).reduce((a, x) => a + x, 0);
      assert.ok(Math.abs(c.coreMass - exactCore) < 1e-12);
      assert.ok(Math.abs(c.windowMass - mass.slice(72, n).reduce((a, x) => a + x, 0)) < 1e-12);
      const coreProb = new Array<number>(seen).fill(0);
      let windowProb = 0;
      for (let h = 0; h < Hq; h++) {
        const kv = Math.floor(h / G);
        const stride = Math.floor(N / g);
        const logits = [
          ...Array.from({ length: seen }, (_, j) => dot(input.query, h * D, input.cca[0].keys, (kv * stride + j) * D)),
          ...Array.from({ length: n - 72 }, (_, i) => dot(input.query, h * D, K, (kv * N + 72 + i) * D)),
        ].map((x) => x / Math.sqrt(D));
        const p = softmax(logits);
        for (let j = 0; j < seen; j++) coreProb[j] += p[j] / Hq;
        for (let i = seen; i < p.length; i++) windowProb += p[i] / Hq;
      }
      assert.ok(Math.abs(c.ccaCoreMass - coreProb[5]) < 1e-9, `${c.ccaCoreMass} vs ${coreProb[5]}`);
      assert.ok(Math.abs(c.ccaWindowMass - windowProb) < 1e-9);
      const best = coreProb.indexOf(Math.max(...coreProb));
      assert.equal(c.top1, best === 5);
      if (boost > 0) {
        // By construction the needle dominates: every selector with room for it finds it.
        assert.ok(got.hits.find((x) => x.selector === 'oracle' && x.budget === 6)!.all);
        assert.equal(c.top1, true);
      }
    });
  }

  it('breaks ties in key order: with every score equal the top-k is the first k keys', () => {
    const { input } = make(0);
    const flat = { name: 'indexer:flat', score: new Float32Array(n) };
    const got = measureNeedleLayer({ ...input, scorers: [flat], budgets: [40, 43, 46] });
    const at = (k: number) => got.hits.find((x) => x.selector === 'indexer:flat' && x.budget === k)!;
    assert.deepEqual([at(40).any, at(43).any, at(43).all, at(46).all], [false, true, false, true]);
  });

  it('marks a needle inside the raw window, and gives no top core then', () => {
    const { input } = make(0);
    const got = measureNeedleLayer({ ...input, span: [80, 84] });
    assert.equal(got.cca[0].inWindow, true);
    assert.equal(got.cca[0].top1, null);
    assert.equal(got.cca[0].ccaCoreMass, 0);
    // 80..83 lie between the sinks and dsa's local window (89..96): a top-1 cannot hold all four.
    assert.equal(got.hits.find((x) => x.selector === 'dsa:x' && x.budget === 1)!.all, false);
  });
});

describe('needle capture', () => {
  it('pools cores as CCA does from an observer fed in uneven chunks, and keeps the answer query', () => {
    const N = 61;
    const g = 4;
    const c = { layers: 2, heads: Hq, kvHeads: Hkv, headDim: D, hiddenSize: 16 } as ModelConfig;
    const rng = new Rng(99);
    const Q = [randoms(rng, Hq * N * D), randoms(rng, Hq * N * D)];
    const K = [randoms(rng, Hkv * N * D), randoms(rng, Hkv * N * D)];
    const cap = new NeedleCapture(c, { capacity: N, groups: [g, 5] });
    cap.reset(N - 1);
    const rows = (x: Float32Array, heads: number, from: number, T: number) => {
      const out = new Float32Array(heads * T * D);
      for (let h = 0; h < heads; h++) out.set(x.subarray((h * N + from) * D, (h * N + from + T) * D), h * T * D);
      return out;
    };
    for (const [from, T] of [
      [0, 7],
      [7, 13],
      [20, 1],
      [21, 40],
    ])
      for (let layer = 0; layer < 2; layer++)
        cap.observe(layer, from, T, rows(Q[layer], Hq, from, T), rows(K[layer], Hkv, from, T));
    assert.ok(cap.complete);
    for (let layer = 0; layer < 2; layer++) {
      assert.deepEqual(cap.query[layer], rows(Q[layer], Hq, N - 1, 1));
      assert.deepEqual(cap.keys[layer], K[layer]);
      for (const group of [g, 5]) {
        const stride = Math.floor(N / group);
        for (let kv = 0; kv < Hkv; kv++)
          for (let j = 0; j < stride; j++) {
            const want = poolReference(Q[layer], K[layer], N, kv, j, group);
            const got = cap.cores.get(group)![layer].subarray((kv * stride + j) * D, (kv * stride + j + 1) * D);
            for (let e = 0; e < D; e++)
              assert.ok(
                Math.abs(got[e] - want[e]) < 1e-6,
                `layer ${layer} g ${group} core ${j}: ${got[e]} vs ${want[e]}`,
              );
          }
      }
    }
  });
});

const PASSKEY_DIR = fileURLToPath(new URL('../../test/fixtures/passkey-2k/', import.meta.url));

describe('needle span', () => {
  const model = loadModel(PASSKEY_DIR);
  const corpus = loadCorpus();
  const ctx = {
    corpus,
    tokenizer: model.tokenizer,
    haystack: new Haystack(corpus.filler, model.tokenizer),
    templates: loadTemplates(undefined),
    bos: model.tokenizer.bosId,
  };
  for (const task of ['passkey', 'multikey', 'multivalue'])
    it(`${task}: each asked value's span decodes to the space and the value, inside its statement`, () => {
      for (let index = 0; index < 6; index++) {
        const qa = taskByName(task).make(ctx, { task, length: 1024, index, seed: hashSeed(3, task, index) }) as QaCase;
        const answers = qa.turns.flatMap((t) => t.answers);
        assert.equal(qa.answerSpans!.length, answers.length);
        const ids = qa.turns[0].ids;
        qa.answerSpans!.forEach(([from, to], i) => {
          assert.equal(model.tokenizer.decode(ids.slice(from, to)), ` ${answers[i]}`);
          assert.match(model.tokenizer.decode(ids.slice(from - 5, from)), / is$/);
        });
      }
    });
});

describe('eval-mass --needle', () => {
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'eval-mass', ...args], { encoding: 'utf8' });

  it('writes rows where a budget over every key keeps the whole needle, and a markdown report', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'longctx-needle-')), 'n.json');
    const args = ['--needle', 'passkey', '--contexts', '256', '--cases', '2', '--budgets', '8,4096'];
    const r2 = run(...args, '--cca', 'group=8,window=64', '--out', out);
    assert.equal(r2.status, 0, r2.stderr);
    const p = JSON.parse(readFileSync(out, 'utf8'));
    assert.deepEqual(p.selectors, ['oracle', 'indexer:4', 'dsa:4', 'indexer:16', 'dsa:16']);
    assert.equal(p.hits.length, 6 * 5 * 2);
    for (const h of p.hits) {
      assert.ok(h.needleMass > 0 && h.needleMass < 1);
      if (h.budget === 4096) assert.deepEqual([h.all.share, h.any.share, h.kept], [1, 1, 1], JSON.stringify(h));
      assert.ok(h.all.k <= h.any.k && h.all.low <= h.all.share && h.all.share <= h.all.high);
    }
    for (const c of p.cca) assert.ok(c.coreMass + c.windowMass <= 1 + 1e-9 && c.ccaWindowMass <= 1 + 1e-9);
    assert.match(readFileSync(out.replace(/json$/, 'md'), 'utf8'), /^# The DSA indexer and CCA cores as retrieval/);
  });

  it('refuses a task without a needle as one line', () => {
    const r = run('--needle', 'vt', '--contexts', '256');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--needle takes a needle task/);
  });
});
