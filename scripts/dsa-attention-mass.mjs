#!/usr/bin/env node
// How much of the true softmax attention mass the training-free DSA indexer's top-k captures, per layer, on
// real text. The model runs with exact (flash) attention; an observer keeps every layer's post-RoPE keys and
// the queries of sampled positions (exact attention: dense on the CPU, flash on WebGPU). For each sampled query p and layer, the exact attention probabilities
// over keys 0..p (averaged over the layer's query heads, since DSA's key set is shared by a token's heads)
// are summed over the key set each selector picks with the same budget of B keys:
//   oracle        the B keys of largest mean probability (the best any shared set can do)
//   indexer:P     the indexer's top-B over all visible keys (float scores), P rotary pairs per index head
//   dsa:P         what the model runs: 4 sinks + the last 64 + the indexer's top-(B-68) of the keys between
//   recent        the last B keys (a window)
//   sinks+recent  4 sinks + the last B-4 (StreamingLLM)
//   random        B distinct visible keys drawn uniformly
// Usage: node scripts/dsa-attention-mass.mjs [--contexts 4096,8192,16384] [--samples 256] [--budgets 128,512]
//   [--pairs 4,2] [--backend cpu|webgpu] [--chunk 512] [--text data/kjv-head.txt] [--out file.json (and file.md)]
// Queries are sampled in the last quarter of each context [3C/4, C), so each sees at least 3C/4 keys.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { loadGguf } from '../dist/src/model/load/gguf.js';
import { CpuDecoder } from '../dist/src/model/forward/decoder-cpu.js';
import { GpuDecoder } from '../dist/src/model/forward/decoder-gpu.js';
import { uniformSchedule } from '../dist/src/attention/sparse.js';
import { acquireDevice } from '../dist/src/runtime/device.js';
import {
  indexKeysInto,
  indexQueries,
  indexScoresRow,
  trainingFreeIndexer,
} from '../dist/src/model/caches/dsa-indexer.js';

const root = new URL('..', import.meta.url).pathname;
const { values: a } = parseArgs({
  options: {
    contexts: { type: 'string', default: '4096,8192,16384' },
    samples: { type: 'string', default: '256' },
    budgets: { type: 'string', default: '128,512' },
    pairs: { type: 'string', default: '4,2' },
    backend: { type: 'string', default: 'cpu' },
    chunk: { type: 'string', default: '512' },
    text: { type: 'string', default: root + 'data/kjv-head.txt' },
    model: { type: 'string', default: root + 'test/fixtures/stories260K/stories260K.gguf' },
    out: { type: 'string' },
  },
});
const contexts = a.contexts.split(',').map(Number);
const budgets = a.budgets.split(',').map(Number);
const samples = Number(a.samples);
const pairList = a.pairs.split(',').map(Number);
const SINKS = 4,
  LOCAL = 64;

const model = loadGguf(a.model);
const c = model.config;
const [Hq, Hkv, D, L] = [c.heads, c.kvHeads, c.headDim, c.layers];
const N = Math.max(...contexts);
const ids = [c.bosTokenId ?? 1, ...model.tokenizer.encode(readFileSync(a.text, 'utf8'))].slice(0, N);
if (ids.length < N) throw new Error(`the text gives ${ids.length} tokens, fewer than ${N}`);

// Seeded xorshift for the sampled positions and the random baseline.
let seed = 12345;
const rnd = () => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 4294967296;
};
const sampled = new Map(); // position -> context
for (const C of contexts) {
  const lo = Math.floor((3 * C) / 4);
  const picks = new Set();
  while (picks.size < Math.min(samples, C - lo)) picks.add(lo + Math.floor(rnd() * (C - lo)));
  for (const p of picks) sampled.set(p, C);
}

const keys = Array.from({ length: L }, () => new Float32Array(Hkv * N * D)); // [Hkv, N, D] per layer
const queries = Array.from({ length: L }, () => new Map()); // position -> [Hq, 1, D]
const observe = (layer, pos, T, q, k) => {
  for (let h = 0; h < Hkv; h++) keys[layer].set(k.subarray(h * T * D, (h + 1) * T * D), (h * N + pos) * D);
  for (let t = 0; t < T; t++) {
    if (!sampled.has(pos + t)) continue;
    const row = new Float32Array(Hq * D);
    for (let h = 0; h < Hq; h++) row.set(q.subarray((h * T + t) * D, (h * T + t + 1) * D), h * D);
    queries[layer].set(pos + t, row);
  }
};
const opts = { maxTokens: N, chunk: Number(a.chunk), observe };
const device = a.backend === 'webgpu' ? await acquireDevice('webgpu') : undefined;
const t0 = performance.now();
const decoder = device
  ? await GpuDecoder.create(device.gpu, model, uniformSchedule('flash'), opts)
  : new CpuDecoder(model, uniformSchedule('dense'), opts);
await decoder.forward(ids);
decoder.destroy();
const prefillSeconds = (performance.now() - t0) / 1000;
process.stderr.write(`prefill of ${N} tokens with exact attention on ${a.backend}: ${prefillSeconds.toFixed(1)} s\n`);

/** Sum of mass[] over the B entries of largest score[] among positions `from`..`to`-1 (sorts kept per query for all budgets). */
let sortCache = new Map();
function massOfTop(score, mass, from, to, B) {
  const n = to - from;
  if (n <= 0 || B <= 0) return 0;
  if (B >= n) {
    let s = 0;
    for (let i = from; i < to; i++) s += mass[i];
    return s;
  }
  const cacheKey = score;
  let sorted = sortCache.get(cacheKey)?.get(from);
  if (!sorted) {
    sorted = Float32Array.from(score.subarray(from, to)).sort();
    if (!sortCache.has(cacheKey)) sortCache.set(cacheKey, new Map());
    sortCache.get(cacheKey).set(from, sorted);
  }
  const thr = sorted[n - B];
  let s = 0,
    taken = 0;
  for (let i = from; i < to; i++)
    if (score[i] > thr) {
      s += mass[i];
      taken++;
    }
  for (let i = from; i < to && taken < B; i++)
    if (score[i] === thr) {
      s += mass[i];
      taken++;
    }
  return s;
}
const sumRange = (mass, from, to) => {
  let s = 0;
  for (let i = Math.max(0, from); i < to; i++) s += mass[i];
  return s;
};

const methods = [
  'oracle',
  ...pairList.flatMap((P) => [`indexer:${P}`, `dsa:${P}`]),
  'recent',
  'sinks+recent',
  'random',
];
const totals = new Map(); // `${C}|${layer}|${B}|${method}` -> [sum, count]
const add = (key, v) => {
  const t = totals.get(key) ?? [0, 0];
  t[0] += v;
  t[1]++;
  totals.set(key, t);
};
const mass = new Float64Array(N);
const massF = new Float32Array(N);
const logits = new Float64Array(N);
const indexersOf = Array.from({ length: L }, (_, layer) =>
  pairList.map((P) => {
    const ix = trainingFreeIndexer(model.weights.layers[layer], c, { pairsPerHead: P });
    const indexK = new Float32Array(N * ix.dim);
    indexKeysInto(ix, keys[layer], N, D, indexK, 0);
    return { P, ix, indexK, score: new Float32Array(N) };
  }),
);
const done = [];
// Contexts in turn, the table rewritten after each: a run cut short by a time limit still reports the shorter ones.
for (const context of contexts) {
  for (let layer = 0; layer < L; layer++) {
    const indexers = indexersOf[layer];
    for (const [p, C] of sampled) {
      if (C !== context) continue;
      const q = queries[layer].get(p);
      const n = p + 1;
      mass.fill(0, 0, n);
      const group = Hq / Hkv;
      for (let h = 0; h < Hq; h++) {
        const kh = Math.floor(h / group);
        let max = -Infinity;
        for (let s = 0; s < n; s++) {
          let d = 0;
          for (let e = 0; e < D; e++) d += q[h * D + e] * keys[layer][(kh * N + s) * D + e];
          logits[s] = d / Math.sqrt(D);
          if (logits[s] > max) max = logits[s];
        }
        let z = 0;
        for (let s = 0; s < n; s++) z += logits[s] = Math.exp(logits[s] - max);
        for (let s = 0; s < n; s++) mass[s] += logits[s] / z / Hq;
      }
      for (let s = 0; s < n; s++) massF[s] = mass[s];
      for (const { ix, indexK, score } of indexers)
        indexScoresRow(ix, indexQueries(ix, q, Hq, 1, D).q, 1, 0, indexK, n, score);
      sortCache = new Map();
      for (const B of budgets) {
        const key = (m) => `${C}|${layer}|${B}|${m}`;
        add(key('oracle'), massOfTop(massF, mass, 0, n, B));
        const mid = Math.max(SINKS, n - LOCAL);
        for (const { P, score } of indexers) {
          add(key(`indexer:${P}`), massOfTop(score, mass, 0, n, B));
          add(
            key(`dsa:${P}`),
            sumRange(mass, 0, Math.min(SINKS, n)) +
              sumRange(mass, mid, n) +
              massOfTop(score, mass, SINKS, mid, B - SINKS - LOCAL),
          );
        }
        add(key('recent'), sumRange(mass, n - B, n));
        add(
          key('sinks+recent'),
          sumRange(mass, 0, Math.min(SINKS, n)) + sumRange(mass, Math.max(SINKS, n - (B - SINKS)), n),
        );
        const picks = new Set();
        while (picks.size < Math.min(B, n)) picks.add(Math.floor(rnd() * n));
        let r = 0;
        for (const s of picks) r += mass[s];
        add(key('random'), r);
      }
    }
  }

  done.push(context);
  report();
}

function report() {
  const rows = [];
  for (const C of done)
    for (const B of budgets)
      for (let layer = 0; layer < L; layer++) {
        const row = { context: C, budget: B, layer };
        for (const m of methods) {
          const [s, k] = totals.get(`${C}|${layer}|${B}|${m}`);
          row[m] = s / k;
        }
        rows.push(row);
      }
  const ix0 = trainingFreeIndexer(model.weights.layers[0], c, { pairsPerHead: pairList[0] });
  const lines = [
    `# Share of exact attention mass inside each selector's B keys (mean over ${samples} sampled queries in [3C/4, C) and the query heads)`,
    `model ${model.source}, trained at 512 tokens; text ${a.text.replace(root, '')}; indexer:P = ${ix0.description.replace(/\d+ of/, 'P of')}; backend ${a.backend}`,
    '',
    `| context | B | layer | ${methods.join(' | ')} |`,
    `| --- | --- | --- | ${methods.map(() => '---').join(' | ')} |`,
    ...rows.map(
      (r) => `| ${r.context} | ${r.budget} | ${r.layer} | ${methods.map((m) => r[m].toFixed(3)).join(' | ')} |`,
    ),
  ];
  if (done.length === contexts.length) console.log(lines.join('\n'));
  if (a.out) {
    mkdirSync(dirname(a.out), { recursive: true });
    writeFileSync(a.out.replace(/\.json$/, '') + '.md', lines.join('\n') + '\n');
    writeFileSync(
      a.out,
      JSON.stringify(
        {
          model: model.source,
          text: a.text,
          indexer: ix0.description,
          backend: a.backend,
          samples,
          prefillSeconds,
          rows,
        },
        null,
        1,
      ),
    );
  }
  process.stderr.write(
    `context ${done[done.length - 1]} measured after ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
  );
}
