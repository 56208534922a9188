// The kernel profiler (runtime/gpu-profile.ts): a pass of several dispatches is split into timed passes that
// must still compute what the unsplit pass did (each replays its pipeline and bind groups), every dispatch is
// put to its pipeline's label under the phase it was recorded in, a kernel doing 1024x the work gets more time,
// dispatches past an encoder's query pairs are counted untimed, and uninstalling gives the device back.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GpuContext } from '../src/runtime/webgpu.js';
import { GpuProfiler, QUERY_PAIRS } from '../src/runtime/gpu-profile.js';
import { webgpuDevice } from './support.js';

const device = await webgpuDevice();
const stamps = device?.gpu?.features.timestamps ?? false;

// out[i] = out[i] * 3 + 1, repeated `loops` times per element (the work the timing must see).
const kernel = (loops: number) => `
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x >= arrayLength(&out)) { return; }
  var x = out[id.x];
  for (var i = 0u; i < ${loops}u; i++) { x = x * 3u + 1u; }
  out[id.x] = x;
}`;

describe('GPU kernel profiler', { skip: !stamps && 'no WebGPU device with timestamp queries' }, () => {
  const gpu = device?.gpu as GpuContext;
  const n = 4096;

  it('splits passes without changing results and puts each dispatch to its kernel and phase', async () => {
    const light = await gpu.pipeline('profile-test-light', () => kernel(16));
    const heavy = await gpu.pipeline('profile-test-heavy', () => kernel(16 * 1024));
    const a = await gpu.upload(new Uint32Array(n).fill(1), 'a');
    const b = await gpu.upload(new Uint32Array(n).fill(2), 'b');
    const [ga, gb] = [gpu.bind(light, [a]), gpu.bind(heavy, [b])];
    // One unprofiled run of each first (a software rasteriser may finish compiling at the first dispatch).
    const scratch = await gpu.upload(new Uint32Array(n), 'scratch');
    await gpu.run('warm', (pass) => {
      for (const p of [light, heavy]) {
        pass.setPipeline(p);
        pass.setBindGroup(0, gpu.bind(p, [scratch]));
        pass.dispatchWorkgroups(n / 64);
      }
    });
    gpu.release(scratch);
    const profiler = new GpuProfiler(gpu.device);
    const original = gpu.device.createCommandEncoder;
    profiler.install();
    try {
      profiler.phase('one');
      await gpu.run('two kernels', (pass) => {
        pass.setPipeline(light);
        pass.setBindGroup(0, ga);
        pass.dispatchWorkgroups(n / 64);
        pass.dispatchWorkgroups(n / 64); // same pipeline and group again: must be replayed
        pass.setPipeline(heavy);
        pass.setBindGroup(0, gb);
        pass.dispatchWorkgroups(n / 64);
      });
      profiler.phase('two');
      await gpu.run('light again', (pass) => {
        pass.setPipeline(light);
        pass.setBindGroup(0, ga);
        pass.dispatchWorkgroups(n / 64);
      });
      const phases = await profiler.collect();
      const one = phases.find((p) => p.phase === 'one');
      const two = phases.find((p) => p.phase === 'two');
      assert.ok(one && two, `phases ${phases.map((p) => p.phase)}`);
      const by = (p: typeof one, k: string) => p.kernels.find((x) => x.kernel === k);
      assert.equal(by(one, 'profile-test-light')?.dispatches, 2);
      assert.equal(by(one, 'profile-test-heavy')?.dispatches, 1);
      assert.equal(by(two, 'profile-test-light')?.dispatches, 1);
      assert.equal(by(two, 'profile-test-heavy'), undefined);
      const lightMs = by(one, 'profile-test-light')!.ms / 2;
      assert.ok(
        by(one, 'profile-test-heavy')!.ms > 2 * lightMs,
        `heavy ${by(one, 'profile-test-heavy')!.ms} ms, light ${lightMs}`,
      );
      assert.equal(one.kernels[0].kernel, 'profile-test-heavy', 'kernels sorted by time');
      assert.ok(Math.abs(one.ms - one.kernels.reduce((t, k) => t + k.ms, 0)) < 1e-9);
      // The results of the split passes: a ran the light loop 3 times in all, b the heavy one once.
      const step = (x: number, loops: number) => {
        for (let i = 0; i < loops; i++) x = (Math.imul(x, 3) + 1) >>> 0;
        return x;
      };
      const wantA = step(1, 16 * 3);
      const wantB = step(2, 16 * 1024);
      const gotA = new Uint32Array(await gpu.read(a, n * 4));
      const gotB = new Uint32Array(await gpu.read(b, n * 4));
      assert.ok(
        gotA.every((x) => x === wantA),
        `a[0] ${gotA[0]}, want ${wantA}`,
      );
      assert.ok(
        gotB.every((x) => x === wantB),
        `b[0] ${gotB[0]}, want ${wantB}`,
      );
      assert.deepEqual(await profiler.collect(), [], 'collect starts afresh');
    } finally {
      profiler.destroy();
      gpu.release(a);
      gpu.release(b);
    }
    assert.equal(gpu.device.createCommandEncoder, original, 'uninstalled');
  });

  it('counts dispatches past an encoder’s query pairs as untimed', async () => {
    const count = `@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) { out[id.x] = out[id.x] + 1u; }`;
    const light = await gpu.pipeline('profile-test-count', () => count);
    const a = await gpu.upload(new Uint32Array(64), 'a');
    const group = gpu.bind(light, [a]);
    const profiler = new GpuProfiler(gpu.device);
    profiler.install();
    try {
      profiler.phase('many');
      await gpu.run('many', (pass) => {
        pass.setPipeline(light);
        pass.setBindGroup(0, group);
        for (let i = 0; i < QUERY_PAIRS + 3; i++) pass.dispatchWorkgroups(1);
      });
      const [many] = await profiler.collect();
      assert.equal(many.kernels[0].dispatches, QUERY_PAIRS);
      assert.equal(many.untimed, 3);
      assert.equal(new Uint32Array(await gpu.read(a, 256))[0], QUERY_PAIRS + 3, 'every dispatch ran');
    } finally {
      profiler.destroy();
      gpu.release(a);
    }
  });
});
