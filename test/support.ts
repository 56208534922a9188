// Test support: the WebGPU device (required in CI, loudly skipped elsewhere) and the error rules.
import { acquireDevice, cpuDevice, type Device } from '../src/runtime/device.js';
import { maxAbsDiff, type ReferenceState } from '../src/reference/attention.js';
import type { AttentionState } from '../src/spine/state.js';
import assert from 'node:assert/strict';

// Every GpuContext the tests make refuses a pipeline key that names two different kernels (runtime/webgpu.ts).
process.env.LONGCTX_CHECK_PIPELINE_KEYS ??= '1';

let gpuDevice: Promise<Device | null> | undefined;

/** The WebGPU device, or null (with a loud warning) when there is no adapter. In CI, no adapter fails. */
export function webgpuDevice(): Promise<Device | null> {
  gpuDevice ??= acquireDevice('webgpu').catch((e: Error) => {
    if (process.env.CI) throw new Error(`CI must run the WebGPU tests, but: ${e.message}`);
    process.stderr.write(
      `\n!!! WEBGPU TESTS SKIPPED: ${e.message}\n!!! Install lavapipe (.ci/install-lavapipe.sh) to run them.\n\n`,
    );
    return null;
  });
  return gpuDevice;
}

export async function backends(): Promise<Array<[string, Device | null]>> {
  return [
    ['cpu', cpuDevice],
    ['webgpu', await webgpuDevice()],
  ];
}

export function assertNoNaN(name: string, xs: ArrayLike<number>): void {
  for (let i = 0; i < xs.length; i++)
    if (Number.isNaN(xs[i])) assert.fail(`${name}[${i}] is NaN (an output left unwritten or a bad operation)`);
}

/** f32 inputs: close to float64. f16 inputs: within 2x the error of a naive f16 implementation (FlashAttention's rule). */
export function assertMatchesReference(
  got: AttentionState,
  ref: ReferenceState,
  naiveHalf?: ReferenceState,
  label = '',
): void {
  assertNoNaN(`${label} o`, got.o);
  assertNoNaN(`${label} lse`, got.lse);
  const errO = maxAbsDiff(got.o, ref.o);
  const errL = maxAbsDiff(got.lse, ref.lse);
  if (naiveHalf) {
    const budget = 2 * Math.max(maxAbsDiff(naiveHalf.o, ref.o), 1e-6);
    assert.ok(errO <= budget, `${label}: output error ${errO} exceeds 2x the naive f16 error (${budget})`);
    assert.ok(errL <= 1e-4, `${label}: LSE error ${errL}`);
  } else {
    assert.ok(errO <= 2e-5, `${label}: output error ${errO} against float64`);
    assert.ok(errL <= 2e-5, `${label}: LSE error ${errL} against float64`);
  }
}

export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
