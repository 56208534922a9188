// A forward pass's passes go into one submission (runtime/submit-batch.ts): what it must keep of the order the
// queue gave when every pass was its own submission. Each case records copies from a written buffer and reads
// the copies back: a write that landed before a pass recorded earlier would show in that pass's copy.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { BATCH_MAX_PASSES } from '../src/runtime/submit-batch.js';
import { webgpuDevice } from './support.js';

const device = await webgpuDevice();

describe('one submission per forward pass', { skip: !device }, () => {
  const gpu = device?.gpu as GpuContext;
  const words = (x: number) => new Uint32Array([x, x + 1, x + 2, x + 3]);
  const copy = (from: GPUBuffer, to: GPUBuffer) => (enc: GPUCommandEncoder) =>
    enc.copyBufferToBuffer(from, 0, to, 0, 16);
  const batched = <T>(work: () => Promise<T>) => gpu.checked('batch test', () => gpu.batched(work));
  const readWords = async (b: GPUBuffer) => Array.from(new Uint32Array(await gpu.read(b, 16)));

  it('a buffer written twice: the pass recorded between the writes sees the first value', async () => {
    const [src, first, second] = [
      await gpu.createBuffer(16, 'src'),
      await gpu.createBuffer(16, 'a'),
      await gpu.createBuffer(16, 'b'),
    ];
    try {
      const before = gpu.counters.submits;
      await batched(async () => {
        gpu.write(src, 0, words(10));
        await gpu.encode('copy 1', copy(src, first), true);
        gpu.write(src, 0, words(20)); // a second write: what is pending is submitted first
        await gpu.encode('copy 2', copy(src, second), true);
      });
      assert.equal(gpu.counters.submits - before, 2, 'the second write split the batch');
      assert.deepEqual(await readWords(first), [10, 11, 12, 13]);
      assert.deepEqual(await readWords(second), [20, 21, 22, 23]);
    } finally {
      [src, first, second].forEach((b) => gpu.release(b));
    }
  });

  it('a write after a full batch was submitted still waits for the passes recorded since', async () => {
    const bufs = await Promise.all(['src', 'spare', 'spare2', 'x', 'y'].map((l) => gpu.createBuffer(16, l)));
    const [src, spare, spare2, x, y] = bufs;
    try {
      await batched(async () => {
        gpu.write(src, 0, words(30));
        for (let i = 0; i < BATCH_MAX_PASSES; i++) await gpu.encode(`filler ${i}`, copy(spare, spare2), true);
        await gpu.encode('src to x', copy(src, x), true); // the batch was full: this starts the next one
        gpu.write(src, 0, words(40));
        await gpu.encode('src to y', copy(src, y), true);
      });
      assert.deepEqual(await readWords(x), [30, 31, 32, 33]);
      assert.deepEqual(await readWords(y), [40, 41, 42, 43]);
    } finally {
      bufs.forEach((b) => gpu.release(b));
    }
  });

  it('buffers written once each share one submission; a pass without batch submits what is pending first', async () => {
    const bufs = await Promise.all([0, 1, 2, 3, 4].map((i) => gpu.createBuffer(16, `b${i}`)));
    const [u, v, x, y, z] = bufs;
    try {
      const before = gpu.counters.submits;
      await batched(async () => {
        gpu.write(u, 0, words(1));
        gpu.write(v, 0, words(2));
        await gpu.encode('u to x', copy(u, x), true);
        await gpu.encode('v to y', copy(v, y), true);
        await gpu.encode('x to z, alone', copy(x, z)); // not batched: sees the two copies done
      });
      assert.equal(gpu.counters.submits - before, 2);
      assert.deepEqual(await readWords(y), [2, 3, 4, 5]);
      assert.deepEqual(await readWords(z), [1, 2, 3, 4]);
    } finally {
      bufs.forEach((b) => gpu.release(b));
    }
  });

  it('a buffer released while the batch holds it is destroyed after the submission, and reads flush', async () => {
    const [tmp, out] = [await gpu.upload(words(7), 'temporary'), await gpu.createBuffer(16, 'out')];
    try {
      const got = await batched(async () => {
        await gpu.encode('tmp to out', copy(tmp, out), true);
        gpu.release(tmp); // would be a validation error at submit if destroyed now
        return readWords(out); // the read submits the pending copy first
      });
      assert.deepEqual(got, [7, 8, 9, 10]);
    } finally {
      gpu.release(out);
    }
  });
});
