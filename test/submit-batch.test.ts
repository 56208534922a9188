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

  // A uniform cannot be a copy source: a one-thread kernel copies it out (`out` in a fresh storage buffer).
  const uniformOut = async (u: GPUBuffer, out: GPUBuffer) => {
    const pipe = await gpu.pipeline(
      'test-uniform-out',
      () => `@group(0) @binding(0) var<uniform> u: vec4<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<u32>, 1>;
@compute @workgroup_size(1) fn main() { out[0] = u; }`,
    );
    const group = gpu.bind(pipe, [u, out]);
    await gpu.run(
      'uniform out',
      (pass) => {
        pass.setPipeline(pipe);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(1);
      },
      true,
    );
  };

  it('a uniform rewritten with the bytes it holds is skipped; A, B, A writes the last A', async () => {
    const u = gpu.uniform(words(5).buffer);
    const outs = await Promise.all([0, 1, 2, 3].map((i) => gpu.createBuffer(16, `out ${i}`)));
    try {
      const [w0, s0] = [gpu.counters.writes, gpu.counters.writesSkipped];
      await batched(async () => {
        gpu.write(u, 0, words(5)); // what uniform() wrote: skipped
        await uniformOut(u, outs[0]);
        gpu.write(u, 0, words(8)); // a change after a pass read it: written, after that pass
        await uniformOut(u, outs[1]);
        gpu.write(u, 0, words(5)); // back to the first value: held is 8 now, so written
        await uniformOut(u, outs[2]);
        gpu.write(u, 0, new Uint32Array([0, 5, 6, 7]), 1, 2); // elements 1..2 ([5, 6]) at byte 0: held already, skipped
        await uniformOut(u, outs[3]);
      });
      assert.equal(gpu.counters.writes - w0, 2, 'writes made');
      assert.equal(gpu.counters.writesSkipped - s0, 2, 'writes skipped');
      assert.deepEqual(await readWords(outs[0]), [5, 6, 7, 8]);
      assert.deepEqual(await readWords(outs[1]), [8, 9, 10, 11]);
      assert.deepEqual(await readWords(outs[2]), [5, 6, 7, 8]);
      assert.deepEqual(await readWords(outs[3]), [5, 6, 7, 8]);
    } finally {
      outs.forEach((b) => gpu.release(b));
      u.destroy();
    }
  });

  it('a skipped write still orders a later change after the passes recorded since', async () => {
    const u = gpu.uniform(words(1).buffer);
    const outs = await Promise.all([0, 1].map((i) => gpu.createBuffer(16, `out ${i}`)));
    try {
      await batched(async () => {
        gpu.write(u, 0, words(1)); // skipped, but it is this batch's write of u
        await uniformOut(u, outs[0]);
        gpu.write(u, 0, words(2)); // must submit the pass above first, or that pass would read 2
        await uniformOut(u, outs[1]);
      });
      assert.deepEqual(await readWords(outs[0]), [1, 2, 3, 4]);
      assert.deepEqual(await readWords(outs[1]), [2, 3, 4, 5]);
    } finally {
      outs.forEach((b) => gpu.release(b));
      u.destroy();
    }
  });

  it('a clear in the batch orders with its passes without a submission; a write after it submits first', async () => {
    const bufs = await Promise.all(['src', 'a', 'b', 'c'].map((l) => gpu.createBuffer(16, l)));
    const [src, a, b, c] = bufs;
    try {
      const before = gpu.counters.submits;
      await batched(async () => {
        gpu.write(src, 0, words(50));
        await gpu.encode('src to a', copy(src, a), true);
        gpu.clear(src, 4, 8); // words 1 and 2, after the copy to a
        await gpu.encode('src to b', copy(src, b), true);
        gpu.write(src, 0, words(60)); // lands after the clear: the batch is submitted first
        await gpu.encode('src to c', copy(src, c), true);
      });
      assert.equal(gpu.counters.submits - before, 2, 'the clear joined the batch; the write after it split it');
      assert.deepEqual(await readWords(a), [50, 51, 52, 53]);
      assert.deepEqual(await readWords(b), [50, 0, 0, 53]);
      assert.deepEqual(await readWords(c), [60, 61, 62, 63]);
    } finally {
      bufs.forEach((x) => gpu.release(x));
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
