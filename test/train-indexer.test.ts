// The indexer's hand-written backward against float64 central finite differences on small random shapes (odd
// hidden sizes, several index heads, half and interleaved RoPE, a LayerNorm with non-trivial weight and bias),
// the warm-up target against a direct float64 softmax, and the training forward against the loader's
// inference path (model/caches/dsa-indexer.ts) on the same weights: same I up to f32 rounding.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { indexerLossGrad } from '../src/train/indexer-grad.js';
import {
  indexerGeometry,
  indexerTensors,
  initIndexerParams,
  paramLayout,
  seededNormal,
} from '../src/train/indexer-params.js';
import { attentionTarget } from '../src/train/attention-target.js';
import { layerIndexer, trainedIndexKeysInto, trainedIndexQueries } from '../src/model/caches/dsa-indexer.js';
import { randomModel } from '../src/model/load/random-model.js';
import type { ModelConfig } from '../src/model/types.js';
import { indexerTestConfig, randomIndexerSequence } from './indexer-support.js';

const config = (layout: ModelConfig['ropeLayout'], hidden: number, headDim: number) =>
  indexerTestConfig(layout, hidden, headDim, 64);
const randomSequence = (L: number, hidden: number, seed: number, chunk: number) =>
  randomIndexerSequence(L, hidden, seed, chunk, { power: 2 });

describe('indexer backward', () => {
  const cases = [
    { layout: 'half', hidden: 7, headDim: 4, heads: 3, dim: 6, L: 9, chunk: 4 },
    { layout: 'interleaved', hidden: 5, headDim: 2, heads: 2, dim: 4, L: 11, chunk: 3 },
    { layout: 'interleaved', hidden: 9, headDim: 6, heads: 1, dim: 6, L: 6, chunk: 64 },
  ] as const;
  for (const k of cases) {
    it(`matches float64 finite differences (${k.layout} RoPE, hidden ${k.hidden}, H_I ${k.heads}, D_I ${k.dim}, L ${k.L})`, () => {
      const g = indexerGeometry(config(k.layout, k.hidden, k.headDim), k.heads, k.dim);
      const params = initIndexerParams(g, 11 + k.hidden);
      const lay = paramLayout(g);
      const { normal } = seededNormal(5);
      // Non-trivial LayerNorm, and projections large enough that scores differ by more than fp noise.
      for (let i = 0; i < lay.gamma; i++) params[i] *= 2;
      for (let i = lay.gamma; i < lay.size; i++) params[i] += 0.3 * normal();
      const seq = randomSequence(k.L, k.hidden, 3 + k.L, k.chunk);
      const grad = new Float64Array(lay.size);
      const { loss } = indexerLossGrad(g, params, seq, grad);
      assert.ok(Number.isFinite(loss) && loss > 0, `loss ${loss}`);
      const eps = 1e-6;
      let worst = 0;
      let scale = 0;
      let active = 0;
      for (let i = 0; i < lay.size; i++) {
        const x = params[i];
        params[i] = x + eps;
        const up = indexerLossGrad(g, params, seq).loss;
        params[i] = x - eps;
        const down = indexerLossGrad(g, params, seq).loss;
        params[i] = x;
        const fd = (up - down) / (2 * eps);
        worst = Math.max(worst, Math.abs(fd - grad[i]));
        scale = Math.max(scale, Math.abs(fd));
        if (Math.abs(grad[i]) > 1e-8) active++;
      }
      assert.ok(scale > 1e-4, `gradient scale ${scale}: the check would be vacuous`);
      assert.ok(active > lay.size / 2, `only ${active} of ${lay.size} gradients non-zero`);
      assert.ok(worst < 1e-6 * Math.max(1, scale) + 1e-8, `max |fd - grad| ${worst} (gradient scale ${scale})`);
    });
  }
});

describe('indexer forward', () => {
  it('the warm-up target is the head-mean causal softmax, rows summing to 1, zero beyond the causal limit', () => {
    const [Hq, Hkv, D, L] = [4, 2, 3, 7];
    const { normal } = seededNormal(9);
    const q = Float32Array.from({ length: Hq * L * D }, () => normal());
    const k = Float32Array.from({ length: Hkv * L * D }, () => normal());
    const rows = attentionTarget({ q, k, h: new Float32Array(0) }, L, Hq, Hkv, D)(2, 6);
    for (let t = 2; t < 6; t++) {
      const want = new Float64Array(L);
      for (let h = 0; h < Hq; h++) {
        const logits = Array.from({ length: t + 1 }, (_, s) => {
          let d = 0;
          for (let e = 0; e < D; e++) d += q[(h * L + t) * D + e] * k[((h >> 1) * L + s) * D + e];
          return d / Math.sqrt(D);
        });
        const z = logits.reduce((a, b) => a + Math.exp(b), 0);
        logits.forEach((l, s) => (want[s] += Math.exp(l) / z / Hq));
      }
      for (let s = 0; s < L; s++) assert.ok(Math.abs(rows[(t - 2) * L + s] - want[s]) < 1e-12, `t ${t} s ${s}`);
    }
  });

  for (const layout of ['half', 'interleaved'] as const) {
    it(`scores what the loader's trained indexer scores at inference (${layout} RoPE)`, () => {
      const c = config(layout, 12, 4);
      const g = indexerGeometry(c, 3, 8);
      const params = initIndexerParams(g, 21);
      const lay = paramLayout(g);
      const { normal } = seededNormal(8);
      for (let i = lay.gamma; i < lay.size; i++) params[i] += 0.5 * normal();
      const L = 10;
      const seq = randomSequence(L, c.hiddenSize, 4, 64);
      const layer = { ...randomModel(c, 3).weights.layers[0], indexer: indexerTensors(g, params, 'gguf', 0) };
      const ix = layerIndexer(layer, c);
      const keys = new Float32Array(L * g.dim);
      trainedIndexKeysInto(ix, seq.h, L, 0, keys, 0);
      const { q, w } = trainedIndexQueries(ix, seq.h, L, 0);
      // Training loss with a one-hot target on key s isolates -log softmax(I)[s]; compare I differences instead:
      // build I at inference and compare KL of the same target.
      const p = seq.target(0, L);
      let kl = 0;
      for (let t = 0; t < L; t++) {
        const I = Array.from({ length: t + 1 }, (_, s) => {
          let total = 0;
          for (let j = 0; j < g.heads; j++) {
            let d = 0;
            for (let e = 0; e < g.dim; e++) d += q[(j * L + t) * g.dim + e] * keys[s * g.dim + e];
            if (d > 0) total += w[t * g.heads + j] * d;
          }
          return total;
        });
        const m = Math.max(...I);
        const logZ = m + Math.log(I.reduce((a, b) => a + Math.exp(b - m), 0));
        I.forEach((v, s) => {
          const ps = p[t * L + s];
          if (ps > 0) kl += (ps * (Math.log(ps) - (v - logZ))) / L;
        });
      }
      const { loss } = indexerLossGrad(g, params, seq);
      assert.ok(Math.abs(loss - kl) < 1e-5 * Math.max(1, kl), `training loss ${loss}, inference ${kl}`);
    });
  }
});
