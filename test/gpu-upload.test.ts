// Large uploads in bounded pieces (runtime/gpu-upload.ts): with pieces and drains far smaller than the data, every
// element lands where it belongs (sub-ranges of the source at byte offsets of the buffer), bytes outside the
// written range stay as they were, in each of the three modes; LONGCTX_UPLOAD names one or is an InputError.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { GpuUploader, UPLOAD_MODES, uploadModeFromEnv } from '../src/runtime/gpu-upload.js';
import { InputError } from '../src/errors.js';
import { webgpuDevice } from './support.js';

const device = await webgpuDevice();
after(() => device?.destroy());

describe('GpuUploader', { skip: device ? false : 'no WebGPU device' }, () => {
  const gpu = device?.gpu as GpuContext;

  for (const mode of UPLOAD_MODES)
    it(`${mode}: writes odd-sized f16 and f32 sub-ranges through many small pieces`, async () => {
      for (const make of [(n: number) => new Uint16Array(n), (n: number) => new Float32Array(n)]) {
        const n = 1023 * 4 + 6;
        const data = make(n);
        for (let i = 0; i < n; i++) data[i] = (i * 7919 + 13) % 65521;
        const size = data.BYTES_PER_ELEMENT;
        const bytes = (n + 64) * size;
        const buffer = await gpu.createBuffer(Math.ceil(bytes / 4) * 4, 'upload test');
        const poison = new Uint8Array(Math.ceil(bytes / 4) * 4).fill(0xa5);
        gpu.write(buffer, 0, poison);
        const up = new GpuUploader(gpu, mode, 96, 1000);
        const from = 2; // elements: the source's sub-range starts past its first two
        const count = n - 6;
        const at = 16; // bytes into the buffer
        await up.write(buffer, at, data, from, count);
        await up.settle();
        const got = new Uint8Array(await gpu.read(buffer, bytes));
        const want = new Uint8Array(data.buffer, from * size, count * size);
        assert.deepEqual(got.subarray(at, at + count * size), want);
        assert.ok(
          got.subarray(0, at).every((b) => b === 0xa5),
          'bytes before the range are untouched',
        );
        assert.ok(
          got.subarray(at + count * size).every((b) => b === 0xa5),
          'bytes after the range are untouched',
        );
        gpu.release(buffer);
      }
    });

  it('LONGCTX_UPLOAD names a mode or is an InputError', () => {
    assert.equal(uploadModeFromEnv(undefined), 'write');
    assert.equal(uploadModeFromEnv('staging'), 'staging');
    assert.throws(
      () => uploadModeFromEnv('fast'),
      (e: Error) => e instanceof InputError && /LONGCTX_UPLOAD/.test(e.message),
    );
  });
});
