// A trained DSA indexer on the GPU (attention/layers/dsa-trained-gpu.ts with kernels/dsa-trained-project-wgsl.ts,
// and the shared-key scores of kernels/dsa-indexer-scores-wgsl.ts) against a float64 reference written here from
// the definition (DeepSeek-V3.2 sec. 2.1 in model/caches/dsa-indexer.ts's form: q_I = W_q h, k_I = LayerNorm(W_k h)
// g + b, w = W_proj h / sqrt(H_I D_I), RoPE on the first head-dim channels; I = sum_j w_j ReLU(q_j . k)). Odd
// sizes (hidden 97, H_I 3, D_I 70 over a head dim of 66), both RoPE layouts, positions from 1000, outputs poisoned.
// The model-level equality with the CPU decoder is test/model-dsa.test.ts; saved sessions test/api-session-methods.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TrainedIndexProjection, type ResidentTrainedIndexer } from '../src/attention/layers/dsa-trained-gpu.js';
import { indexScoreParams, indexScoresWgsl } from '../src/kernels/dsa-indexer-scores-wgsl.js';
import type { IndexerSlots } from '../src/kernels/dsa-indexer-project-wgsl.js';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { webgpuDevice } from './support.js';
import { poison, readFloats } from './cca-dsa-layer-support.js';

const device = await webgpuDevice();
after(() => device?.destroy());
const [HIDDEN, HI, DI, HEAD_DIM, T, START] = [97, 3, 70, 66, 13, 1000];
const R = HEAD_DIM / 2;

/** A small deterministic generator in [0, 1) (fresh inputs per seed; no code shared with the layer). */
function uniform01(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function setup(seed: number, layout: 'interleaved' | 'half') {
  const rand = uniform01(seed);
  const g = () => rand() * 2 - 1;
  const rows = HI * DI + DI + HI;
  const weights = Float32Array.from({ length: rows * HIDDEN + 2 * DI }, (_, i) =>
    i < rows * HIDDEN ? g() * 0.2 : i < rows * HIDDEN + DI ? 1 + 0.3 * g() : 0.1 * g(),
  );
  const invFreq = Float64Array.from({ length: R }, (_, i) => 10000 ** (-(2 * i) / HEAD_DIM));
  const ix: ResidentTrainedIndexer = {
    hidden: HIDDEN,
    weights,
    norm: true,
    weight: 1 / Math.sqrt(HI * DI),
    invFreq,
    ropeLayout: layout,
  };
  const h = Float32Array.from({ length: T * HIDDEN }, g);
  return { ix, h };
}

/** float64: q [HI, T, DI], k [T, DI], w [T, HI] as defined (not the layer's code). */
function reference(ix: ResidentTrainedIndexer, h: Float32Array) {
  const W = ix.weights;
  const dot = (row: number, t: number) => {
    let s = 0;
    for (let c = 0; c < HIDDEN; c++) s += W[row * HIDDEN + c] * h[t * HIDDEN + c];
    return s;
  };
  const rope = (x: Float64Array, pos: number) => {
    for (let i = 0; i < R; i++) {
      const [a, b] = ix.ropeLayout === 'interleaved' ? [2 * i, 2 * i + 1] : [i, i + R];
      const [c, s] = [Math.cos(pos * ix.invFreq[i]), Math.sin(pos * ix.invFreq[i])];
      [x[a], x[b]] = [x[a] * c - x[b] * s, x[a] * s + x[b] * c];
    }
  };
  const q = new Float64Array(HI * T * DI);
  const k = new Float64Array(T * DI);
  const w = new Float64Array(T * HI);
  const g0 = (HI * DI + DI + HI) * HIDDEN;
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < HI; j++) {
      const x = Float64Array.from({ length: DI }, (_, d) => dot(j * DI + d, t));
      rope(x, START + t);
      q.set(x, (j * T + t) * DI);
      w[t * HI + j] = dot(HI * DI + DI + j, t) * ix.weight;
    }
    const raw = Float64Array.from({ length: DI }, (_, d) => dot(HI * DI + d, t));
    const mean = raw.reduce((a, b) => a + b) / DI;
    const sd = Math.sqrt(raw.reduce((a, b) => a + (b - mean) ** 2, 0) / DI + 1e-6);
    const x = raw.map((v, d) => ((v - mean) / sd) * W[g0 + d] + W[g0 + DI + d]);
    rope(x, START + t);
    k.set(x, t * DI);
  }
  return { q, k, w };
}

async function project(
  gpu: GpuContext,
  ix: ResidentTrainedIndexer,
  h: Float32Array<ArrayBuffer>,
  precision: 'float' | 'int8',
) {
  const slots: IndexerSlots = { precision, heads: HI, per: DI, shared: true };
  const words = precision === 'int8' ? Math.ceil(DI / 4) : DI;
  const make = (n: number, label: string) => gpu.createBuffer(n * 4, label);
  const out = {
    ik: await make((START + T) * words, 'ik'),
    iq: await make(HI * T * words, 'iq'),
    iw: await make(T * HI, 'iw'),
    kscale: precision === 'int8' ? await make(START + T, 'kscale') : undefined,
  };
  const hb = await make(T * HIDDEN, 'h');
  gpu.write(hb, 0, h as Float32Array<ArrayBuffer>);
  for (const b of Object.values(out)) if (b) poison(gpu, b, b.size / 4);
  const p = await TrainedIndexProjection.create(gpu, ix, slots, out, 32);
  const record = p.prepare(hb, START, T);
  await gpu.run('trained projection', record);
  const read = async (b: GPUBuffer, from: number, n: number) => (await readFloats(gpu, b, from + n)).slice(from);
  const raw = {
    ik: await read(out.ik, START * words, T * words),
    iq: await read(out.iq, 0, HI * T * words),
    iw: await read(out.iw, 0, T * HI),
    kscale: out.kscale && (await read(out.kscale, START, T)),
  };
  p.destroy();
  return { raw, out, hb, slots };
}

const maxRel = (got: ArrayLike<number>, want: ArrayLike<number>) => {
  let [err, scale] = [0, 0];
  for (let i = 0; i < want.length; i++) {
    assert.ok(Number.isFinite(got[i]), `element ${i} is ${got[i]}`);
    err = Math.max(err, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return err / scale;
};

describe('trained DSA indexer on the GPU', { skip: device ? false : 'no webgpu device' }, () => {
  for (const layout of ['interleaved', 'half'] as const)
    it(`float (${layout} RoPE): q, k, w and the shared-key scores match float64`, async () => {
      const gpu = device!.gpu as GpuContext;
      const { ix, h } = setup(layout === 'half' ? 11 : 7, layout);
      const want = reference(ix, h);
      const { raw, out, hb, slots } = await project(gpu, ix, h, 'float');
      assert.ok(maxRel(raw.iq, want.q) < 1e-5, `q ${maxRel(raw.iq, want.q)}`);
      assert.ok(maxRel(raw.ik, want.k) < 1e-5, `k ${maxRel(raw.ik, want.k)}`);
      assert.ok(maxRel(raw.iw, want.w) < 1e-5, `w ${maxRel(raw.iw, want.w)}`);
      // Scores of the T queries against keys START..START+T (bottom-right causal: query t sees keys <= t).
      const pipe = await gpu.pipeline(`test-shared-scores-${HI}-${DI}`, () => indexScoresWgsl(slots));
      const scores = await gpu.createBuffer(T * T * 4, 'scores');
      poison(gpu, scores, T * T);
      const u = gpu.uniform(
        indexScoreParams({ queries: T, firstQuery: 0, keys: T, chunkTokens: T, keyRow0: START, splits: 2 }),
      );
      const group = gpu.bind(pipe, [u, out.iq, out.ik, out.iw, scores]);
      await gpu.run('scores', (pass) => {
        pass.setPipeline(pipe);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(Math.ceil(T / 4), 2);
      });
      const got = await readFloats(gpu, scores, T * T);
      const ref: number[] = [];
      const idx: number[] = [];
      for (let t = 0; t < T; t++)
        for (let s = 0; s <= t; s++) {
          let total = 0;
          for (let j = 0; j < HI; j++) {
            let d = 0;
            for (let e = 0; e < DI; e++) d += want.q[(j * T + t) * DI + e] * want.k[s * DI + e];
            total += want.w[t * HI + j] * Math.max(0, d);
          }
          ref.push(total);
          idx.push(t * T + s);
        }
      assert.ok(
        maxRel(
          idx.map((i) => got[i]),
          ref,
        ) < 1e-4,
        `scores ${maxRel(
          idx.map((i) => got[i]),
          ref,
        )}`,
      );
      for (const b of [...Object.values(out), hb, scores]) if (b) gpu.release(b);
    });

  it('int8: power-of-two scales per vector, values within one step of float64 / scale, w times the query scale', async () => {
    const gpu = device!.gpu as GpuContext;
    const { ix, h } = setup(23, 'half');
    const want = reference(ix, h);
    const { raw, out, hb } = await project(gpu, ix, h, 'int8');
    const W = Math.ceil(DI / 4);
    const bytes = (f: Float32Array) => new Int8Array(f.buffer, f.byteOffset, f.byteLength);
    const check = (vals: Int8Array, row: number, ref: Float64Array, at: number, scale: number, label: string) => {
      const amax = Math.max(...Array.from({ length: DI }, (_, d) => Math.abs(ref[at + d])));
      // The least power of two with 127 scale >= amax (computed from float64: equal unless amax sits on a boundary).
      const want2 = 2 ** Math.ceil(Math.log2(amax / 127));
      assert.equal(scale, want2, `${label} scale`);
      for (let d = 0; d < DI; d++)
        assert.ok(Math.abs(vals[row * W * 4 + d] - ref[at + d] / scale) <= 0.5 + 1e-3, `${label}[${d}]`);
      for (let d = DI; d < W * 4; d++) assert.equal(vals[row * W * 4 + d], 0, `${label} padding`);
    };
    const [kb, qb] = [bytes(raw.ik), bytes(raw.iq)];
    for (let t = 0; t < T; t++) {
      check(kb, t, want.k, t * DI, raw.kscale![t], `k[${t}]`);
      for (let j = 0; j < HI; j++) {
        const at = (j * T + t) * DI;
        const amax = Math.max(...Array.from({ length: DI }, (_, d) => Math.abs(want.q[at + d])));
        const qs = 2 ** Math.ceil(Math.log2(amax / 127));
        check(qb, j * T + t, want.q, at, qs, `q[${j},${t}]`);
        const wq = raw.iw[t * HI + j];
        assert.ok(Math.abs(wq - want.w[t * HI + j] * qs) <= 1e-5 * Math.abs(want.w[t * HI + j] * qs), `w[${t},${j}]`);
      }
    }
    for (const b of [...Object.values(out), hb]) if (b) gpu.release(b);
  });
});
