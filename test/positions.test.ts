// Training-free positional methods (src/model/positions): the position assignment against the papers'
// formulas, the CPU attention path against a float64 reference that rotates explicitly (src/reference/
// positions-reference.ts), each equal to plain RoPE when its window is wider than the text, and the CPU decoder
// with a method: prefill in chunks against one token at a time, and the golden stories260K output unchanged
// when the window covers everything.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomNormal } from '../src/tensor.js';
import { ShapeError, SpecError, UnsupportedError } from '../src/errors.js';
import {
  checkPositionMethod,
  parsePositionSpec,
  positionReach,
  relativePosition,
  type PositionMethod,
} from '../src/model/positions/position-method.js';
import { PositionedAttentionCpu } from '../src/model/positions/positioned-attention-cpu.js';
import { referencePositionedAttention, type PositionsProblem } from '../src/reference/positions-reference.js';
import { loadGguf } from '../src/model/load/gguf.js';
import { CpuDecoder } from '../src/model/forward/decoder-cpu.js';
import { uniformSchedule } from '../src/attention/sparse.js';
import { generate } from '../src/model/generation/generate.js';
import { FIXTURE_GGUF, expectedIds } from './model-support.js';
import type { ModelConfig } from '../src/model/types.js';
import { assertNoNaN } from './support.js';

const rand = (n: number, seed: number) => randomNormal([n], seed).data as Float32Array;
const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
};

describe('position assignment', () => {
  it('Self-Extend: exact in the window, floor(p/G) + W - floor(W/G) - floor(j/G) beyond, continuous at W', () => {
    const m: PositionMethod = { kind: 'self-extend', window: 8, group: 4 };
    assert.equal(relativePosition(m, 100, 93), 7);
    assert.equal(relativePosition(m, 100, 3), 25 + 8 - 2 - 0);
    assert.equal(relativePosition(m, 101, 50), 25 + 6 - 12);
    for (let p = 8; p < 300; p++) {
      const d = relativePosition(m, p, p - 8);
      assert.ok(Math.abs(d - 8) <= 1, `p ${p}: ${d} at the window edge`);
      for (let j = 0; j <= p; j++) assert.ok(relativePosition(m, p, j) >= 0);
    }
  });
  it('chunked: intra-, successive- and inter-chunk positions (DCA)', () => {
    const m: PositionMethod = { kind: 'chunked', chunk: 10, local: 3 };
    assert.equal(relativePosition(m, 25, 21), 4); // same chunk: exact
    assert.equal(relativePosition(m, 21, 17), 4); // previous chunk, early query: exact (1 < local)
    assert.equal(relativePosition(m, 27, 15), 13 - 5); // previous chunk, late query: capped at S + L
    assert.equal(relativePosition(m, 45, 12), 13 - 2); // older chunk: S + L - j mod S
    for (let p = 0; p < 200; p++) for (let j = 0; j <= p; j++) assert.ok(relativePosition(m, p, j) <= 13);
  });
  it('remap: window exact, the selected far keys just beyond it in order, others not attended', () => {
    const m: PositionMethod = { kind: 'remap', window: 16, topk: 4 };
    assert.equal(relativePosition(m, 100, 90), 10);
    assert.equal(relativePosition(m, 100, 10, 0, 4), 16 + 3);
    assert.equal(relativePosition(m, 100, 50, 3, 4), 16);
    assert.ok(Number.isNaN(relativePosition(m, 100, 20, -1, 4)));
  });
  it('reach: the longest text every distance of which stays inside the trained context', () => {
    const se: PositionMethod = { kind: 'self-extend', window: 512, group: 8 };
    const reach = positionReach(se, 2048);
    assert.equal(reach, (2048 - 512 + 64) * 8);
    assert.ok(relativePosition(se, reach - 1, 0) <= 2047);
    assert.ok(relativePosition(se, reach + 7, 0) > 2047);
    assert.equal(positionReach({ kind: 'chunked', chunk: 1536, local: 256 }, 2048), Infinity);
    assert.equal(positionReach({ kind: 'none' }, 2048), 2048);
    assert.throws(() => checkPositionMethod({ kind: 'chunked', chunk: 2000, local: 100 }, 2048), SpecError);
  });
  it('parses specs and refuses bad ones with one typed line', () => {
    assert.deepEqual(parsePositionSpec('self-extend:window=512,group=8'), {
      kind: 'self-extend',
      window: 512,
      group: 8,
    });
    assert.deepEqual(parsePositionSpec('none'), { kind: 'none' });
    for (const bad of [
      'self-extend:window=512',
      'chunked:chunk=0,local=4',
      'remap:window=1,topk=x',
      'warp',
      'remap:w=1',
    ])
      assert.throws(() => parsePositionSpec(bad), SpecError, bad);
  });
});

describe('CPU attention under a positional method against float64', () => {
  const methods: PositionMethod[] = [
    { kind: 'self-extend', window: 13, group: 4 },
    { kind: 'self-extend', window: 32, group: 3 },
    { kind: 'chunked', chunk: 24, local: 7 },
    { kind: 'remap', window: 11, topk: 9 },
    { kind: 'none' },
  ];
  for (const [D, layout] of [
    [32, 'half'],
    [18, 'interleaved'],
  ] as const)
    for (const m of methods)
      it(`${m.kind} ${JSON.stringify(m)}, head dim ${D} (${layout}), 97 keys, 3 heads, 7 new queries`, () => {
        const [heads, T, start] = [3, 7, 90];
        const n = start + T;
        const invFreq = Float64Array.from({ length: D / 2 }, (_, i) => Math.pow(10000, (-2 * i) / D) * 0.7);
        const pb: PositionsProblem = {
          q: rand(heads * T * D, 1),
          k: rand(n * D, 2),
          v: rand(n * D, 3),
          heads,
          T,
          D,
          start,
          invFreq,
          attentionFactor: 1.1,
          layout,
        };
        const cpu = new PositionedAttentionCpu(m, invFreq, 1.1, layout);
        const got = cpu.attend(pb.q as Float32Array, heads, T, pb.k as Float32Array, pb.v as Float32Array, n, D, start);
        const ref = referencePositionedAttention(pb, m);
        assertNoNaN('o', got.o);
        assert.ok(maxErr(got.o, ref.o) < 2e-5, `o error ${maxErr(got.o, ref.o)}`);
        assert.ok(maxErr(got.lse, ref.lse) < 2e-5, `lse error ${maxErr(got.lse, ref.lse)}`);
        if (m.kind !== 'none') {
          // The method must change something at this length (else the test shows nothing).
          const plain = referencePositionedAttention(pb, { kind: 'none' });
          assert.ok(maxErr(plain.o, ref.o) > 1e-3, 'the method equals plain RoPE at 97 keys');
        }
      });

  for (const m of [
    { kind: 'self-extend', window: 200, group: 4 },
    { kind: 'chunked', chunk: 150, local: 20 },
    { kind: 'remap', window: 100, topk: 4 },
  ] as PositionMethod[])
    it(`${m.kind} with a window wider than the text equals plain RoPE attention`, () => {
      const [heads, T, start, D] = [2, 5, 92, 32];
      const invFreq = Float64Array.from({ length: D / 2 }, (_, i) => Math.pow(10000, (-2 * i) / D));
      const pb: PositionsProblem = {
        q: rand(heads * T * D, 4),
        k: rand((start + T) * D, 5),
        v: rand((start + T) * D, 6),
        ...{ heads, T, D, start, invFreq, attentionFactor: 1, layout: 'half' as const },
      };
      const cpu = new PositionedAttentionCpu(m, invFreq, 1, 'half');
      const got = cpu.attend(
        pb.q as Float32Array,
        heads,
        T,
        pb.k as Float32Array,
        pb.v as Float32Array,
        start + T,
        D,
        start,
      );
      const plain = referencePositionedAttention(pb, { kind: 'none' });
      assert.ok(maxErr(got.o, plain.o) < 2e-5);
      assert.ok(maxErr(got.lse, plain.lse) < 2e-5);
    });
});

describe('CPU decoder with a positional method (stories260K)', () => {
  const model = loadGguf(FIXTURE_GGUF);
  const flash = uniformSchedule('flash');
  it('a window wider than the text keeps the golden greedy output', async () => {
    for (const positions of [
      { kind: 'self-extend', window: 1024, group: 4 },
      { kind: 'chunked', chunk: 1024, local: 64 },
    ] as PositionMethod[]) {
      const d = new CpuDecoder(model, flash, { maxTokens: 64, positions });
      const r = await generate(d, model.tokenizer, [model.tokenizer.bosId!], {
        maxTokens: 40,
        temperature: 0,
        stopAtEos: false,
      });
      assert.deepEqual([model.tokenizer.bosId!, ...r.ids], expectedIds().slice(0, 41), positions.kind);
    }
  });
  it('Self-Extend: chunked prefill equals one token at a time, and differs from plain RoPE', async () => {
    const ids = [
      model.tokenizer.bosId!,
      ...model.tokenizer.encode('Once upon a time there was a little girl who').slice(0, 60),
    ];
    const positions: PositionMethod = { kind: 'self-extend', window: 6, group: 3 };
    const whole = await new CpuDecoder(model, flash, { maxTokens: 128, positions }).forward(ids);
    const stepper = new CpuDecoder(model, flash, { maxTokens: 128, positions, chunk: 5 });
    let last: Float32Array = new Float32Array(0);
    for (let i = 0; i < ids.length; i += 3) last = await stepper.forward(ids.slice(i, i + 3));
    assert.ok(maxErr(whole, last) < 1e-4, `prefill vs decode ${maxErr(whole, last)}`);
    const plain = await new CpuDecoder(model, flash, { maxTokens: 128 }).forward(ids);
    assert.ok(maxErr(plain, whole) > 1e-3);
  });
  it('beside window and sinks masks; refuses cca, dsa, star and remap beside a window, typed', async () => {
    const words = model.tokenizer.encode('Once upon a time there was a little girl who liked the park.');
    const ids = [model.tokenizer.bosId!, ...words, ...words, ...words, ...words].slice(0, 45);
    const positions: PositionMethod = { kind: 'self-extend', window: 8, group: 2 };
    const logits = (method: string) =>
      new CpuDecoder(model, uniformSchedule(method), { maxTokens: 64, positions, chunk: 7 }).forward(ids);
    const exact = await logits('flash');
    assert.ok(maxErr(await logits('window:left=63'), exact) < 1e-5, 'a window wider than the text');
    assert.ok(maxErr(await logits('window:left=12'), exact) > 1e-3, 'a narrow window drops keys');
    const make = (method: string, p: PositionMethod = positions) =>
      new CpuDecoder(model, uniformSchedule(method), { maxTokens: 64, positions: p });
    assert.throws(() => make('cca:group=4,window=8'), SpecError);
    assert.throws(() => make('dsa:topk=8'), SpecError);
    assert.throws(() => make('star:block=8,anchor=8'), UnsupportedError);
    assert.throws(() => make('window:left=8', { kind: 'remap', window: 8, topk: 4 }), SpecError);
  });
});

describe('serving past the trained context (the context check)', () => {
  it('a positional method serves what it reaches, and the suggestion reaches the prompt', async () => {
    const { positionsServe, suggestPositions } = await import('../src/model/positions/position-method.js');
    assert.equal(positionsServe({ kind: 'none' }, 2048, 4096), undefined);
    assert.match(positionsServe({ kind: 'self-extend', window: 512, group: 8 }, 2048, 12_800)!, /to 12800 positions/);
    assert.equal(positionsServe({ kind: 'self-extend', window: 512, group: 8 }, 2048, 12_801), undefined);
    assert.match(positionsServe({ kind: 'chunked', chunk: 1536, local: 256 }, 2048, 1 << 20)!, /any length/);
    const hint = suggestPositions(2048, 131_072);
    const m = parsePositionSpec(hint.replace('--positions ', ''));
    assert.ok(positionReach(m, 2048) >= 131_072, hint);
  });
  it('canServe counts a positional method, over the RoPE-scaled context, and suggests one', async () => {
    const { canServe } = await import('../src/model/load/can-serve.js');
    const config = { contextLength: 2048, layers: 2, rope: { kind: 'none' } } as unknown as ModelConfig;
    const schedule = uniformSchedule('flash');
    const se: PositionMethod = { kind: 'self-extend', window: 512, group: 8 };
    const served = canServe(config, { schedule, positions: se, newTokens: 32 }, 12_768);
    assert.equal(served.ok, true);
    assert.match(served.servedBy!, /self-extend:window=512,group=8 \(to 12800 positions\)/);
    const past = canServe(config, { schedule, positions: se, newTokens: 33 }, 12_768);
    assert.equal(past.ok, false);
    const hint = past.suggestions.find((x) => x.startsWith('--positions'))!;
    const suggested = parsePositionSpec(hint.replace('--positions ', ''));
    assert.equal(canServe(config, { schedule, positions: suggested, newTokens: 33 }, 12_768).ok, true, hint);
    const remap = past.suggestions.find((x) => x.startsWith('--positions remap'))!;
    const far = parsePositionSpec(remap.replace('--positions ', ''));
    assert.equal(canServe(config, { schedule, positions: far }, 1 << 20).ok, true, remap);
    assert.equal(canServe(config, { schedule, positions: { kind: 'none' } }, 4096).ok, false);
    assert.equal(canServe(config, { schedule, positions: { kind: 'chunked', chunk: 1536, local: 256 } }, 1e6).ok, true);
    // YaRN x2 reaches 4096 positions: Self-Extend's reach is then counted over 4096.
    const yarn = { ...config, rope: { kind: 'yarn', factor: 2, originalContext: 2048 } } as unknown as ModelConfig;
    assert.equal(canServe(yarn, { schedule, positions: se }, 20_000).ok, true);
  });
});

describe('the chunk band mask (dual-chunk attention on the block-mask kernels)', () => {
  it('tiles classify as their elements do, and the predicate matches the reference', async () => {
    const { chunkBand, classifyTile, maskAllows, EMPTY, FULL } = await import('../src/spine/mask.js');
    const { referenceVisible } = await import('../src/reference/mask-reference.js');
    for (const [S, near, far] of [
      [7, 0, 0],
      [5, 1, 1],
      [6, 2, 2 ** 31 - 1],
      [3, 1, 4],
    ]) {
      const m = chunkBand(S, near, far);
      for (let q = 0; q < 60; q++)
        for (let k = 0; k < 60; k++) assert.equal(maskAllows(m, q, k), referenceVisible(m, q, k));
      for (const [q0, k0, n] of [
        [0, 0, 8],
        [13, 2, 5],
        [29, 11, 9],
        [40, 0, 16],
      ]) {
        const cells: boolean[] = [];
        for (let q = q0; q < q0 + n; q++) for (let k = k0; k < k0 + n; k++) cells.push(maskAllows(m, q, k));
        const kind = classifyTile(m, q0, q0 + n - 1, k0, k0 + n - 1);
        if (kind === EMPTY)
          assert.ok(
            cells.every((c) => !c),
            `S ${S} tile ${q0},${k0}`,
          );
        // Partial tiles may be conservative (the predicate runs on them); empty and full ones must be exact.
        else if (kind === FULL)
          assert.ok(
            cells.every((c) => c),
            `S ${S} tile ${q0},${k0}`,
          );
      }
    }
    assert.throws(() => chunkBand(0, 0, 0), ShapeError);
  });
});
