// `longctx generate` end to end: only the text on stdout (the golden output, byte for byte), speed on
// stderr, and one-line typed errors with exit code 2 for bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURE_GGUF, expectedText } from './model-support.js';
import { webgpuDevice } from './support.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'longctx-generate-'));
const run = (...args: string[]) =>
  spawnSync(process.execPath, [cli, 'generate', ...args], { encoding: 'utf8', timeout: 120_000 });

test('generate prints exactly the golden text from BOS, statistics on stderr', () => {
  const r = run(
    '--model',
    FIXTURE_GGUF,
    '--prompt',
    '',
    '--max-tokens',
    '200',
    '--backend',
    'cpu',
    '--attention',
    'flash',
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, expectedText());
  assert.match(r.stderr, /prefill 1 tokens .* tokens\/s.*decode 200 tokens/);
});

test('generate continues a prompt file; sampling with a seed repeats', () => {
  writeFileSync(join(dir, 'prompt.txt'), 'Once upon a time, there was a little girl named Lily.');
  const args = [
    '--model',
    FIXTURE_GGUF,
    '--prompt-file',
    join(dir, 'prompt.txt'),
    '--max-tokens',
    '20',
    '--backend',
    'cpu',
    '--temperature',
    '0.9',
    '--top-p',
    '0.9',
    '--seed',
    '5',
  ];
  const [a, b] = [run(...args), run(...args)];
  assert.equal(a.status, 0, a.stderr);
  assert.ok(a.stdout.length > 20);
  assert.equal(a.stdout, b.stdout);
  const greedy = run(
    '--model',
    FIXTURE_GGUF,
    '--prompt-file',
    join(dir, 'prompt.txt'),
    '--max-tokens',
    '10',
    '--backend',
    'cpu',
  );
  assert.ok(
    expectedText().startsWith('Once upon a time, there was a little girl named Lily.' + greedy.stdout.trimEnd()),
    greedy.stdout,
  );
});

test('bad input exits 2 with one line', () => {
  const truncated = join(dir, 'cut.gguf');
  writeFileSync(truncated, readFileSync(FIXTURE_GGUF).subarray(0, 5000));
  for (const [args, pattern] of [
    [['--model', FIXTURE_GGUF, '--prompt', 'x'], /--max-tokens/],
    [['--model', join(dir, 'missing.gguf'), '--prompt', 'x', '--max-tokens', '3'], /does not exist/],
    [['--model', truncated, '--prompt', 'x', '--max-tokens', '3'], /InputError: cut\.gguf: .*truncated/],
    [['--model', FIXTURE_GGUF, '--prompt', '', '--no-bos', '--max-tokens', '3'], /empty/],
    [
      ['--model', FIXTURE_GGUF, '--prompt', 'x', '--max-tokens', '3', '--attention', 'nope'],
      /unknown attention method/,
    ],
    [['--model', FIXTURE_GGUF, '--max-tokens', '3'], /exactly one of --prompt/],
  ] as const) {
    const r = run(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test("--rope replaces the model's RoPE (linear interpolation changes the text), and a bad one exits 2", () => {
  const base = ['--model', FIXTURE_GGUF, '--prompt', '', '--max-tokens', '40', '--backend', 'cpu'];
  const scaled = run(...base, '--rope', 'linear:factor=4');
  assert.equal(scaled.status, 0, scaled.stderr);
  assert.ok(scaled.stdout.length > 20);
  assert.notEqual(
    scaled.stdout,
    expectedText().slice(0, scaled.stdout.length),
    'positions divided by 4 change greedy decoding',
  );
  const bad = run(...base, '--rope', 'linear:size=4');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /SpecError: .*linear.*no key 'size'/);
});

test('bench model on the CPU: a tiny random model, two methods, JSON + markdown + SVG, a progress line per run', () => {
  const out = join(dir, 'bench');
  const r = spawnSync(
    process.execPath,
    [
      cli,
      'bench',
      'model',
      '--shape',
      'tiny',
      '--layers',
      '1',
      '--contexts',
      '96,160',
      '--decode',
      '4',
      '--chunk',
      '64',
      '--method',
      'flash',
      '--method',
      'window:left=16',
      '--backend',
      'cpu',
      '--out-dir',
      out,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
  assert.equal(report.config.layers, 1);
  assert.equal(report.rows.length, 4);
  for (const row of report.rows) assert.ok(row.status === 'ok' && row.decodeTokensPerSecond > 0, JSON.stringify(row));
  // The window keeps left + 1 rows per head whatever the context; flash keeps every position.
  const kv = (m: string, n: number) =>
    report.rows.find((x: { method: string; context: number }) => x.method === m && x.context === n).kvBytes;
  assert.equal(kv('window:left=16', 96), kv('window:left=16', 160));
  assert.ok(kv('flash', 160) > kv('flash', 96));
  assert.match(readFileSync(join(out, 'model.md'), 'utf8'), /\| longctx \| window:left=16 \| f32 \| f32 \| 160 \|/);
  assert.match(readFileSync(join(out, 'model-decode.svg'), 'utf8'), /^<svg/);
  assert.equal(r.stderr.match(/bench model on .*\d\/4/g)?.length, 4);
});

test('bench model --batch-passes: passes per submission on WebGPU, counted per decoded token', async (t) => {
  if (!(await webgpuDevice())) return t.skip('no WebGPU adapter');
  const run = (passes: string) => {
    const out = join(dir, `batch-${passes}`);
    const args = ['bench', 'model', '--shape', 'tiny', '--layers', '2', '--contexts', '96', '--decode', '4'];
    const r = spawnSync(
      process.execPath,
      [
        cli,
        ...args,
        '--chunk',
        '64',
        '--method',
        'window:left=16',
        '--backend',
        'webgpu',
        '--batch-passes',
        passes,
      ].concat(['--out-dir', out]),
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')).rows[0].submitsPerToken as number;
  };
  // Two layers: two passes each, the logits' pass and its copy to the host.
  assert.equal(run('1'), 6);
  assert.equal(run('64'), 1);
  const bad = spawnSync(process.execPath, [cli, 'bench', 'model', '--batch-passes', '0'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--batch-passes must be a positive integer/);
});

test('bench model --weights q4_0 on WebGPU: the matrices stay Q4_0, their bytes reported; a bad format refused', async (t) => {
  if (!(await webgpuDevice())) return t.skip('no WebGPU adapter');
  const out = join(dir, 'weights-q4_0');
  const args = [
    'bench',
    'model',
    '--shape',
    'tiny',
    '--layers',
    '1',
    '--contexts',
    '96',
    '--decode',
    '4',
    '--chunk',
    '64',
  ];
  const run = (weights: string) =>
    spawnSync(
      process.execPath,
      [cli, ...args, '--method', 'flash', '--backend', 'webgpu', '--weights', weights, '--out-dir', out],
      {
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
  const r = run('q4_0');
  assert.equal(r.status, 0, r.stderr);
  const row = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')).rows[0];
  assert.equal(row.status, 'ok', JSON.stringify(row));
  assert.equal(row.weights, 'q4_0');
  // One layer of the tiny shape: 7 matrices of 128 x (128..256) and the tied embedding (512 x 128) as Q4_0 planes
  // (0.625 bytes a weight) beside three f32 norms.
  const matrices = 128 * 128 * 2 + 64 * 128 * 2 + 256 * 128 * 3 + 512 * 128;
  assert.equal(row.weightBytes, matrices * 0.625 + 3 * 128 * 4);
  assert.ok(
    row.matmul.some((m: string) => m.includes('Q4_0 weights')),
    row.matmul.join('\n'),
  );
  assert.match(readFileSync(join(out, 'model.md'), 'utf8'), /\| longctx \| flash \| f16 \| q4_0 \| 96 \|/);
  const bad = run('q3_k');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--weights must be one of f32, f16, q4_0, q4_k, q5_k, q6_k, got 'q3_k'/);
});
