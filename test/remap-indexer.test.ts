// Remapped positions with the DSA indexer as the selector (model/caches/remap-indexer.ts) on the CPU: the layer's
// picks are the indexer's top K of the far keys, and its output equals the float64 reference of remap
// (src/reference/positions-reference.ts: explicit rotations) given those picks; with K at least every far key it
// equals remap's own selection; wrong settings are typed errors, and WebGPU refuses it by name.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomNormal } from '../src/tensor.js';
import { SpecError, UnsupportedError } from '../src/errors.js';
import { randomModel } from '../src/model/load/random-model.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { GpuDecoder } from '../src/model/forward/decoder-gpu.js';
import { uniformSchedule } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { PositionedCpuLayer } from '../src/model/caches/positioned-layer-cpu.js';
import { DsaLayer } from '../src/model/caches/dsa-layer.js';
import { indexQueries, indexScoresRow } from '../src/model/caches/dsa-indexer.js';
import { remapIndexerParams } from '../src/model/caches/remap-indexer.js';
import { PositionedAttentionCpu } from '../src/model/positions/positioned-attention-cpu.js';
import { positionsVisibleMask } from '../src/model/positions/positions-beside.js';
import { ropeInverseFrequencies } from '../src/model/positions/rope.js';
import type { PositionMethod } from '../src/model/positions/position-method.js';
import type { ModelConfig } from '../src/model/types.js';
import { cpuDevice } from '../src/runtime/device.js';
import { assertNoNaN, webgpuDevice } from './support.js';
import { maxErr, positionsShape, referencePerKvHead } from './positions-support.js';
import { tokens } from './cca-dsa-layer-support.js';

type Remap = Extract<PositionMethod, { kind: 'remap' }>;

const dims = (c: ModelConfig, N: number, chunk: number) => ({
  heads: c.heads,
  kvHeads: c.kvHeads,
  headDim: c.headDim,
  maxTokens: N,
  chunk,
  dtype: 'f32' as const,
});

describe('remap with the DSA indexer as its selector (CPU)', () => {
  it('picks the indexer top K of the far keys and attends them as the float64 reference (GQA 3, D 16, 10, 64)', async () => {
    for (const [D, layout, window, topk, seed] of [
      [16, 'half', 7, 5, 1],
      [10, 'interleaved', 5, 9, 2],
      [64, 'interleaved', 3, 4, 3],
    ] as const) {
      const c = positionsShape({ headDim: D, ropeLayout: layout });
      const m: Remap = { kind: 'remap', window, topk };
      const method = parseMethodSpec('dsa:indexer=float');
      const N = 61;
      const weights = randomModel(c, 3 + seed).weights.layers[0];
      const attention = new PositionedAttentionCpu(m, ropeInverseFrequencies(c), 1, c.ropeLayout);
      const layer = new PositionedCpuLayer(dims(c, N, 13), method, m, attention, { weights, config: c });
      assert.match(layer.plan, /far keys picked by the DSA indexer/);
      // A twin selector fed the same rows gives the picks the reference uses (the selection is deterministic).
      const twin = new DsaLayer(weights, c, remapIndexerParams(method, m), N);
      const q = randomNormal([c.heads, N, D], 10 + seed);
      const k = randomNormal([c.kvHeads, N, D], 20 + seed);
      const v = randomNormal([c.kvHeads, N, D], 30 + seed);
      let start = 0;
      let checkedFar = 0;
      for (const T of [13, 1, 9, 13, 1, 1, 12, 1, 1]) {
        if (start + T > N) break;
        const [qc, kc, vc] = [q, k, v].map((t) => tokens(t, start, start + T).data as Float32Array);
        const out = new Float32Array(c.heads * T * D).fill(Number.NaN);
        await layer.forward({ q: qc, k: kc, v: vc, out, start, tokens: T });
        assertNoNaN(`D ${D} chunk at ${start}`, out);
        twin.append(kc, T);
        const lists = await twin.select(cpuDevice, qc, T);
        const picks = (t: number) =>
          Array.from(lists.indices.subarray(t * lists.width, t * lists.width + lists.count(t)));
        // The picks are the indexer's top K among 0..p-W, by its own scores (float precision: no quantisation).
        const iq = indexQueries(twin.indexer, qc, c.heads, T, D);
        const keys = twin.heldIndexKeys;
        for (let t = 0; t < T; t++) {
          const p = start + t;
          const far = p - window + 1;
          const chosen = picks(t).filter((j) => p - j >= window);
          assert.equal(chosen.length, Math.max(0, Math.min(topk, far)), `picks of query ${p}`);
          assert.deepEqual(
            chosen,
            [...chosen].sort((a, b) => a - b),
            'in position order',
          );
          if (far <= topk) continue;
          const scores = new Float32Array(far);
          indexScoresRow(twin.indexer, iq.q, T, t, keys, far, scores);
          const lowestPicked = Math.min(...chosen.map((j) => scores[j]));
          const highestLeft = Math.max(...Array.from(scores).filter((_, j) => !chosen.includes(j)));
          assert.ok(lowestPicked >= highestLeft, `query ${p}: a picked key scores ${lowestPicked} < ${highestLeft}`);
          checkedFar++;
        }
        const err = maxErr(out, referencePerKvHead(q, k, v, start, T, c, { ...m, picks }).o);
        assert.ok(err < 2e-5, `W ${window} K ${topk} D ${D} ${layout} at ${start}+${T}: ${err}`);
        start += T;
      }
      assert.ok(checkedFar > 20, `queries with more far keys than K: ${checkedFar}`);
      assert.equal(layer.cacheBytes, 2 * c.kvHeads * start * D * 4 + twin.bytes, 'rows and index keys');
      assert.equal(await layer.restoreCache(await layer.saveCache()), false, 'its state holds no index keys: replayed');
    }
  });

  it('with K at least every far key, equals remap by q.k (both attend every key, far ones remapped)', async () => {
    const c = positionsShape({ headDim: 16 });
    const m: Remap = { kind: 'remap', window: 6, topk: 40 };
    const N = 45;
    const weights = randomModel(c, 9).weights.layers[0];
    const make = (method: string) =>
      new PositionedCpuLayer(
        dims(c, N, 16),
        parseMethodSpec(method),
        m,
        new PositionedAttentionCpu(m, ropeInverseFrequencies(c), 1, c.ropeLayout),
        { weights, config: c },
      );
    const [viaIndexer, viaQk] = [make('dsa'), make('flash')];
    const q = randomNormal([c.heads, N, 16], 41);
    const k = randomNormal([c.kvHeads, N, 16], 42);
    const v = randomNormal([c.kvHeads, N, 16], 43);
    for (let start = 0, T = 16; start < N; start += T, T = Math.min(T, N - start)) {
      const [qc, kc, vc] = [q, k, v].map((t) => tokens(t, start, start + T).data as Float32Array);
      const [a, b] = [new Float32Array(c.heads * T * 16), new Float32Array(c.heads * T * 16)];
      await viaIndexer.forward({ q: qc, k: kc, v: vc, out: a, start, tokens: T });
      await viaQk.forward({ q: qc, k: kc, v: vc, out: b, start, tokens: T });
      assert.ok(maxErr(a, b) < 1e-6, `chunk at ${start}: ${maxErr(a, b)}`);
    }
  });

  it('refuses settings that disagree, other positions beside dsa, and WebGPU, with typed errors', async () => {
    const m: Remap = { kind: 'remap', window: 8, topk: 16 };
    assert.throws(() => remapIndexerParams(parseMethodSpec('dsa:topk=32'), m), SpecError);
    assert.throws(() => remapIndexerParams(parseMethodSpec('dsa:sinks=2'), m), SpecError);
    assert.throws(() => remapIndexerParams(parseMethodSpec('dsa:local=8'), m), SpecError);
    assert.deepEqual(
      { ...remapIndexerParams(parseMethodSpec('dsa:topk=16,indexer=float'), m), decide: undefined },
      { topk: 16, precision: 'float', sinks: 0, local: 8, pairs: 4, decide: undefined },
    );
    assert.equal(positionsVisibleMask(parseMethodSpec('dsa'), m), undefined);
    assert.throws(
      () => positionsVisibleMask(parseMethodSpec('dsa'), { kind: 'self-extend', window: 8, group: 4 }),
      SpecError,
    );
    const c = positionsShape({});
    const model = randomModel(c, 5);
    const decoder = new CpuDecoder(model, uniformSchedule(parseMethodSpec('dsa')), {
      maxTokens: 40,
      positions: m,
    });
    const logits = await decoder.forward(Array.from({ length: 37 }, (_, i) => (i * 7) % c.vocabSize));
    assertNoNaN('decoder logits', logits);
    assert.match(decoder.plans[0], /DSA indexer/);
    const device = await webgpuDevice();
    if (device?.gpu)
      await assert.rejects(
        GpuDecoder.create(device.gpu, model, uniformSchedule(parseMethodSpec('dsa')), {
          maxTokens: 40,
          positions: m,
        }),
        UnsupportedError,
      );
  });
});
