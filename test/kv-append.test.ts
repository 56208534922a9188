// The one KV-append kernel (kernels/kv-append-wgsl.ts) against a plain per-token model of each cache it serves:
// a linear cache (dense, DSA), StreamingLLM's sinks + ring (window, sinks) and a ring after other rows (CCA's
// raw tokens after its cores), over chunks of odd sizes, some longer than the ring. Rows it must not touch
// hold a sentinel; positions are written one token at a time in the model, so a later one overwrites.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { grid } from '../src/kernels/elementwise-wgsl.js';
import { KV_APPEND_THREADS, kvAppendParams, kvAppendWgsl } from '../src/kernels/kv-append-wgsl.js';
import { randomNormal } from '../src/tensor.js';
import { webgpuDevice } from './support.js';

const gpu = (await webgpuDevice())?.gpu;
after(async () => (await webgpuDevice())?.destroy());

interface Layout {
  name: string;
  slots: number;
  sinks: number;
  ring: number;
  row0?: number;
}

const layouts: Layout[] = [
  { name: 'linear', slots: 200, sinks: 0, ring: 200 },
  { name: 'sinks + ring', slots: 4 + 13, sinks: 4, ring: 13 },
  { name: 'ring after 9 rows', slots: 9 + 11, sinks: 0, ring: 11, row0: 9 },
];
const [Hkv, D] = [3, 5];
const chunks = [7, 1, 1, 23, 1, 40, 3, 1];
const SENTINEL = -12345;

describe('KV append on WebGPU', { skip: gpu ? false : 'no WebGPU adapter' }, () => {
  for (const l of layouts)
    test(`${l.name}: chunks ${chunks.join(', ')}`, async () => {
      const g = gpu!;
      const bytes = Hkv * l.slots * D * 4;
      const expectK = new Float32Array(Hkv * l.slots * D).fill(SENTINEL);
      const expectV = expectK.slice();
      const cacheK = await g.upload(expectK, 'cache k');
      const cacheV = await g.upload(expectV, 'cache v');
      const pipeline = await g.pipeline('kv-append-f32', () => kvAppendWgsl('f32'));
      let start = 0;
      try {
        for (const [i, T] of chunks.entries()) {
          const k = randomNormal([Hkv, T, D], 100 + i).data as Float32Array;
          const v = randomNormal([Hkv, T, D], 200 + i).data as Float32Array;
          for (let t = 0; t < T; t++) {
            const p = start + t;
            const slot = p < l.sinks ? p : (l.row0 ?? l.sinks) + ((p - l.sinks) % l.ring);
            for (let h = 0; h < Hkv; h++)
              for (let d = 0; d < D; d++) {
                expectK[(h * l.slots + slot) * D + d] = k[(h * T + t) * D + d];
                expectV[(h * l.slots + slot) * D + d] = v[(h * T + t) * D + d];
              }
          }
          const [kb, vb] = [await g.upload(k, 'k'), await g.upload(v, 'v')];
          const params = g.uniform(kvAppendParams({ tokens: T, kvHeads: Hkv, headDim: D, start, ...l }));
          const [x, y] = grid(Hkv * T * D, KV_APPEND_THREADS);
          await g.run('kv append', (pass) => {
            pass.setPipeline(pipeline);
            pass.setBindGroup(0, g.bind(pipeline, [kb, vb, cacheK, cacheV, params]));
            pass.dispatchWorkgroups(x, y);
          });
          params.destroy();
          g.release(kb);
          g.release(vb);
          start += T;
        }
        assert.deepEqual(new Float32Array(await g.read(cacheK, bytes)), expectK);
        assert.deepEqual(new Float32Array(await g.read(cacheV, bytes)), expectV);
      } finally {
        g.release(cacheK);
        g.release(cacheV);
      }
    });
});
