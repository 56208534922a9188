// LONGCTX_DAWN_TOGGLES (runtime/acquire-gpu.ts): the opt-in Dawn toggles are parsed strictly, a device made with
// them says so in its name, and kernels on it still compute what the CPU does; a toggle we do not offer is one
// typed line from the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeNpy } from '../src/io/npy.js';
import { attention } from '../src/attention/attention.js';
import { DeviceError } from '../src/errors.js';
import { acquireGpu, userDawnToggles } from '../src/runtime/acquire-gpu.js';
import { cpuDevice } from '../src/runtime/device.js';
import { randomNormal } from '../src/tensor.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

test('LONGCTX_DAWN_TOGGLES is parsed strictly', () => {
  assert.deepEqual(userDawnToggles(undefined), []);
  assert.deepEqual(userDawnToggles(' '), []);
  assert.deepEqual(userDawnToggles('disable_robustness, skip_validation,disable_robustness'), [
    'disable_robustness',
    'skip_validation',
  ]);
  assert.throws(() => userDawnToggles('disable_robustness,allow_everything'), DeviceError);
  assert.throws(() => userDawnToggles('enable-dawn-features=x'), /unknown toggle/);
});

test('a device without robustness names it and computes what the CPU does', async () => {
  const saved = process.env.LONGCTX_DAWN_TOGGLES;
  process.env.LONGCTX_DAWN_TOGGLES = 'disable_robustness';
  const gpu = await acquireGpu().finally(() => {
    if (saved === undefined) delete process.env.LONGCTX_DAWN_TOGGLES;
    else process.env.LONGCTX_DAWN_TOGGLES = saved;
  });
  if (!gpu) return void test.skip?.('no WebGPU adapter');
  try {
    assert.match(gpu.adapterName, /\[dawn: disable_robustness\]$/);
    const dev = { backend: 'webgpu' as const, name: gpu.adapterName, gpu, destroy() {} };
    const [q, k, v] = [randomNormal([4, 97, 64], 5), randomNormal([2, 97, 64], 6), randomNormal([2, 97, 64], 7)];
    const want = (await attention(cpuDevice, q, k, v, 'flash')).o;
    const got = (await attention(dev, q, k, v, 'flash')).o;
    let err = 0;
    for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(want[i] - got[i]));
    assert.ok(Number.isFinite(err) && err < 1e-4, `max error ${err}`);
  } finally {
    gpu.destroy();
  }
});

test('an unknown toggle is one typed line from the CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'longctx-toggles-'));
  for (const [name, seed] of [
    ['q', 1],
    ['k', 2],
    ['v', 3],
  ] as const)
    writeNpy(join(dir, `${name}.npy`), randomNormal([2, 8, 16], seed));
  const io = ['q', 'k', 'v', 'out'].flatMap((n) => [`--${n}`, join(dir, `${n}.npy`)]);
  const r = spawnSync(process.execPath, [cli, 'attend', ...io, '--method', 'flash', '--backend', 'webgpu'], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, LONGCTX_DAWN_TOGGLES: 'turbo' },
  });
  rmSync(dir, { recursive: true, force: true });
  const lines = r.stderr.trim().split('\n');
  assert.match(lines[lines.length - 1], /^longctx: DeviceError: LONGCTX_DAWN_TOGGLES: unknown toggle turbo/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.notEqual(r.status, 0);
});
