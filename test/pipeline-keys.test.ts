// The pipeline cache refuses a key that names two different kernels (the tests run with the check on:
// test/support.ts), so a collision like the one that once ran the wrong KV-append kernel fails loudly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { DeviceError } from '../src/errors.js';
import { webgpuDevice } from './support.js';

const device = await webgpuDevice();
const kernel = (value: number) => `@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1) fn main() { out[0] = ${value}u; }`;

test(
  'a pipeline key reused with other WGSL is refused; the same WGSL is served from the cache',
  {
    skip: device ? false : 'no WebGPU adapter',
  },
  async () => {
    const gpu = device!.gpu as GpuContext;
    const key = `pipeline-keys-test-${Date.now()}`;
    const first = await gpu.pipeline(key, () => kernel(1));
    assert.equal(await gpu.pipeline(key, () => kernel(1)), first);
    await assert.rejects(
      gpu.pipeline(key, () => kernel(2)),
      (e: Error) => e instanceof DeviceError && /two different kernels/.test(e.message),
    );
  },
);
