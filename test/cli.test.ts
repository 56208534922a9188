// `longctx attend` end to end through .npy files, and its one-line errors with exit code 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpy, writeNpy } from '../src/io/npy.js';
import { referenceAttention, maxAbsDiff } from '../src/reference/attention.js';
import { randomNormal } from '../src/tensor.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'longctx-cli-'));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
const path = (name: string) => join(dir, name);

const q = randomNormal([4, 19, 32], 1, 'f16');
const k = randomNormal([2, 23, 32], 2, 'f16');
const v = randomNormal([2, 23, 32], 3, 'f16');
writeNpy(path('q.npy'), q);
writeNpy(path('k.npy'), k);
writeNpy(path('v.npy'), v);
const base = ['attend', '--q', path('q.npy'), '--k', path('k.npy'), '--v', path('v.npy'), '--backend', 'cpu'];

for (const method of ['dense', 'flash']) {
  test(`attend --method ${method} writes out and lse that match the reference`, () => {
    const r = run(
      ...base,
      '--method',
      method,
      '--out',
      path(`${method}-o.npy`),
      '--lse',
      path(`${method}-l.npy`),
      '--no-causal',
      '--scale',
      '0.25',
    );
    assert.equal(r.status, 0, r.stderr);
    const o = readNpy(path(`${method}-o.npy`));
    const lse = readNpy(path(`${method}-l.npy`));
    assert.deepEqual(o.shape, [4, 19, 32]);
    assert.deepEqual(lse.shape, [4, 19]);
    assert.equal(o.dtype, 'f32');
    const ref = referenceAttention(q, k, v, { causal: false, scale: 0.25 });
    assert.ok(maxAbsDiff(o.data, ref.o) < 1e-5);
    assert.ok(maxAbsDiff(lse.data, ref.lse) < 1e-5);
  });
}

test('attend --method window matches the reference with the window as a key filter', () => {
  const r = run(...base, '--method', 'window:left=5', '--out', path('w-o.npy'));
  assert.equal(r.status, 0, r.stderr);
  const ref = referenceAttention(q, k, v, { causal: false }, (i, j) => j <= 23 - 19 + i && j >= 23 - 19 + i - 5);
  assert.ok(maxAbsDiff(readNpy(path('w-o.npy')).data, ref.o) < 1e-5);
});

test('bad input: one line on stderr and exit code 2', () => {
  writeFileSync(path('junk.npy'), 'not numpy');
  writeNpy(path('k3.npy'), randomNormal([3, 23, 32], 4, 'f16'));
  writeNpy(path('v3.npy'), randomNormal([3, 23, 32], 5, 'f16'));
  writeNpy(path('k32.npy'), randomNormal([2, 23, 32], 6, 'f32'));
  writeNpy(path('kshort.npy'), randomNormal([2, 22, 32], 4, 'f16'));
  const out = ['--out', path('x.npy')];
  const cases: Array<[string[], RegExp]> = [
    [
      [...base, '--method', 'flash', ...out].map((a) => (a === path('q.npy') ? path('junk.npy') : a)),
      /not a \.npy file/,
    ],
    [[...base, '--method', 'wavelet', ...out], /unknown attention method 'wavelet'/],
    [
      [...base, '--method', 'flash', ...out].map((a) =>
        a === path('k.npy') ? path('k3.npy') : a === path('v.npy') ? path('v3.npy') : a,
      ),
      /multiple of key\/value heads/,
    ],
    [[...base, '--method', 'flash', ...out].map((a) => (a === path('k.npy') ? path('k32.npy') : a)), /share a dtype/],
    [[...base, '--method', 'flash', ...out].map((a) => (a === path('k.npy') ? path('kshort.npy') : a)), /same shape/],
    [[...base, '--method', 'flash'], /--out is required/],
    [[...base, '--method', 'flash', ...out, '--scale', 'big'], /--scale must be a number/],
    [[...base, '--method', 'flash', ...out, '--frobnicate'], /Unknown option/],
  ];
  for (const [args, message] of cases) {
    const r = run(...args);
    assert.equal(r.status, 2, `${args.join(' ')}\n${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
});
