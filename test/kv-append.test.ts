// The one KV-append kernel (kernels/kv-append-wgsl.ts) against a plain per-token model of each cache it serves:
// a linear cache (dense, DSA), StreamingLLM's sinks + ring (window, sinks) and a ring after other rows (CCA's
// raw tokens after its cores), over chunks of odd sizes, some longer than the ring, some starting in the sinks;
// and a part of each chunk (`first`, `count`). The cache is poisoned with NaN first, so rows the kernel must
// not touch stay NaN; the model writes one token at a time in position order, so a later one overwrites.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  kvAppendCall,
  kvAppendKernel,
  type KvAppendChunk,
  type KvAppendLayout,
} from '../src/kernels/kv-append-wgsl.js';
import { float32ToHalf } from '../src/f16.js';
import { randomNormal, type DType } from '../src/tensor.js';
import { webgpuDevice } from './support.js';

const gpu = (await webgpuDevice())?.gpu;
after(async () => (await webgpuDevice())?.destroy());

interface Case {
  name: string;
  layout: KvAppendLayout;
  chunks: KvAppendChunk[];
}

const sized = (tokens: number[]) => tokens.map((t) => ({ start: 0, tokens: t }));
const [Hkv, D] = [3, 5];
const sinksRing = { kvHeads: Hkv, headDim: D, slots: 4 + 13, sinks: 4, ring: 13 };
const cases: Case[] = [
  {
    name: 'linear',
    layout: { kvHeads: Hkv, headDim: D, slots: 200, sinks: 0, ring: 200 },
    chunks: sized([7, 1, 23, 1, 40, 3, 1]),
  },
  { name: 'sinks + ring', layout: sinksRing, chunks: sized([7, 1, 1, 23, 1, 40, 3, 1]) },
  // The first chunk is longer than the ring and starts in the sinks: sinks and last ring tokens survive.
  { name: 'sinks + ring, long first chunk', layout: sinksRing, chunks: sized([29, 1, 17, 1]) },
  {
    name: 'ring after 9 rows (CCA)',
    layout: { kvHeads: Hkv, headDim: D, slots: 9 + 11, sinks: 0, ring: 11, row0: 9 },
    chunks: sized([7, 1, 1, 23, 1, 40, 3, 1]),
  },
  {
    name: 'linear, D 128, 97 and 1023 tokens',
    layout: { kvHeads: 2, headDim: 128, slots: 1200, sinks: 0, ring: 1200 },
    chunks: sized([97, 1023, 1]),
  },
  {
    name: 'part of each chunk (first, count), sinks + ring',
    layout: sinksRing,
    chunks: [
      { start: 0, tokens: 9, first: 0, count: 6 },
      { start: 0, tokens: 5, first: 2, count: 3 },
      { start: 0, tokens: 31, first: 3, count: 27 },
      { start: 0, tokens: 1, first: 0, count: 1 },
      { start: 0, tokens: 8, first: 7, count: 1 },
    ],
  },
];

/** Where position p lies in the cache, by the layout's definition (not the kernel's code). */
function slotOf(l: KvAppendLayout, p: number): number {
  if (p < l.sinks) return p;
  return (l.row0 ?? l.sinks) + ((p - l.sinks) % l.ring);
}

const bitsOf = (x: Float32Array | Uint16Array) =>
  x instanceof Float32Array ? new Uint32Array(x.buffer, x.byteOffset, x.length) : x;

function assertSameBits(
  label: string,
  got: Float32Array | Uint16Array,
  want: Float32Array | Uint16Array,
  l: KvAppendLayout,
) {
  const [g, w] = [bitsOf(got), bitsOf(want)];
  assert.equal(g.length, w.length);
  for (let i = 0; i < w.length; i++)
    if (g[i] !== w[i]) {
      const [h, row, d] = [Math.floor(i / (l.slots * l.headDim)), Math.floor(i / l.headDim) % l.slots, i % l.headDim];
      assert.fail(`${label}: head ${h} row ${row} dim ${d} holds ${got[i]}, the layout says ${want[i]}`);
    }
}

async function checkCase(c: Case, dtype: DType): Promise<void> {
  const g = gpu!;
  const l = c.layout;
  const n = l.kvHeads * l.slots * l.headDim;
  const make = (xs: Float32Array) => (dtype === 'f16' ? float32ToHalf(xs) : xs);
  const poison = make(new Float32Array(n).fill(Number.NaN));
  const [wantK, wantV] = [poison.slice(), poison.slice()];
  const cacheK = await g.upload(poison, 'cache k');
  const cacheV = await g.upload(poison, 'cache v');
  const kernel = kvAppendKernel(dtype);
  const pipeline = await g.pipeline(kernel.key, kernel.code);
  let start = 0;
  try {
    for (const [i, chunk] of c.chunks.entries()) {
      const T = chunk.tokens;
      const k = make(randomNormal([l.kvHeads, T, l.headDim], 100 + i).data as Float32Array);
      const v = make(randomNormal([l.kvHeads, T, l.headDim], 200 + i).data as Float32Array);
      const [from, to] = [chunk.first ?? 0, (chunk.first ?? 0) + (chunk.count ?? T)];
      for (let t = from; t < to; t++)
        for (let h = 0; h < l.kvHeads; h++)
          for (let d = 0; d < l.headDim; d++) {
            const at = (h * l.slots + slotOf(l, start + t)) * l.headDim + d;
            wantK[at] = k[(h * T + t) * l.headDim + d];
            wantV[at] = v[(h * T + t) * l.headDim + d];
          }
      const [kb, vb] = [await g.upload(k, 'k'), await g.upload(v, 'v')];
      const call = kvAppendCall(l, { ...chunk, start });
      const params = g.uniform(call.params);
      await g.run('kv append', (pass) => {
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, g.bind(pipeline, [kb, vb, cacheK, cacheV, params]));
        pass.dispatchWorkgroups(...call.groups);
      });
      params.destroy();
      g.release(kb);
      g.release(vb);
      start += chunk.first === undefined ? T : to;
    }
    const read = async (b: GPUBuffer) => {
      const raw = await g.read(b, n * (dtype === 'f16' ? 2 : 4));
      return dtype === 'f16' ? new Uint16Array(raw) : new Float32Array(raw);
    };
    assertSameBits(`${c.name} ${dtype} keys`, await read(cacheK), wantK, l);
    assertSameBits(`${c.name} ${dtype} values`, await read(cacheV), wantV, l);
  } finally {
    g.release(cacheK);
    g.release(cacheV);
  }
}

describe('KV append on WebGPU', { skip: gpu ? false : 'no WebGPU adapter' }, () => {
  for (const c of cases)
    for (const dtype of ['f32', 'f16'] as const)
      test(`${c.name}, ${dtype}`, { skip: dtype === 'f16' && !gpu?.features.f16 && 'no shader-f16' }, () =>
        checkCase(c, dtype),
      );
});

describe('KV append call', () => {
  test('a chunk longer than the ring is dispatched for the ring rows only', () => {
    const l = { kvHeads: Hkv, headDim: D, slots: 20, sinks: 0, ring: 11, row0: 9 };
    const words = new Uint32Array(kvAppendCall(l, { start: 30, tokens: 40 }).params);
    assert.deepEqual([words[0], words[2], words[3]], [Hkv * 11 * D, 29, 11]); // threads, first, count
    const inSinks = new Uint32Array(kvAppendCall(sinksRing, { start: 2, tokens: 40 }).params);
    assert.deepEqual([inSinks[2], inSinks[3]], [0, 40]);
  });

  test('a part outside the chunk is refused', () => {
    assert.throws(() => kvAppendCall(sinksRing, { start: 0, tokens: 5, first: 3, count: 3 }), /not in a chunk of 5/);
  });

  test('each dtype has its own pipeline key, and no caller writes one by hand', () => {
    assert.notEqual(kvAppendKernel('f32').key, kvAppendKernel('f16').key);
    const hand: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, e.name);
        if (e.isDirectory()) walk(path);
        else if (path.endsWith('.ts') && !path.endsWith('kv-append-wgsl.ts'))
          if (/pipeline\(\s*[`'"][^`'"]*append/.test(readFileSync(path, 'utf8'))) hand.push(path);
      }
    };
    walk(new URL('../../src', import.meta.url).pathname);
    assert.deepEqual(hand, [], 'append pipelines keyed by hand instead of by kvAppendKernel');
  });
});
