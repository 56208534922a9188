// `longctx generate --save-session F` then `--session F`: the saved context restored from its caches answers as
// the library's loadSession does; a truncated file, another model or another method is one typed line, exit 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel, loadSession } from '../src/index.js';
import { decodeSessionFile } from '../src/api/session-file.js';
import { reencodeGguf } from './gguf-builder.js';
import { FIXTURE_GGUF, fixtureBytes } from './model-support.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'longctx-session-cli-'));
const run = (...args: string[]) =>
  spawnSync(process.execPath, [cli, 'generate', '--backend', 'cpu', ...args], { encoding: 'utf8', timeout: 120_000 });
const DOC = 'Once upon a time, there was a little girl named Lily. She loved to play outside.';

test('generate --save-session, then --session: the context comes back from its caches', async () => {
  const file = join(dir, 'doc.session');
  const saved = run('--model', FIXTURE_GGUF, '--prompt', DOC, '--max-tokens', '0', '--save-session', file);
  assert.equal(saved.status, 0, saved.stderr);
  assert.match(saved.stderr, /saved \d+ tokens to .* with the KV caches/);
  const asked = run('--model', FIXTURE_GGUF, '--session', file, '--prompt', ' One day', '--max-tokens', '16');
  assert.equal(asked.status, 0, asked.stderr);
  // Read layer by layer while the layer before restores, not read whole first.
  assert.match(
    asked.stderr,
    /tokens restored from its caches \(read layer by layer beside the restore: [\d.]+ s reading/,
  );
  const model = await loadModel(FIXTURE_GGUF, { device: 'cpu' });
  try {
    const session = await loadSession(model, file, { contextSize: 128 });
    const expected = await session.generate(' One day', { maxTokens: 16 }).complete();
    assert.equal(asked.stdout, `${expected.text}\n`);
    assert.ok(expected.text.length > 10);
  } finally {
    model.dispose();
  }
  // Through a pipe (no size, no seeking) the file is read whole, and answers the same.
  const piped = spawnSync(
    'bash',
    [
      '-c',
      'cat "$0" | exec "$@"',
      file,
      process.execPath,
      cli,
      'generate',
      '--backend',
      'cpu',
      '--model',
      FIXTURE_GGUF,
      '--session',
      '/dev/stdin',
      '--prompt',
      ' One day',
      '--max-tokens',
      '16',
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(piped.status, 0, piped.stderr);
  assert.match(piped.stderr, /tokens restored from its caches\n/);
  assert.equal(piped.stdout, asked.stdout);
  // The context grows: saved again after 4 more tokens (the last one sampled, not yet fed), from the caches.
  const before = decodeSessionFile(readFileSync(file), file).header.tokenCount;
  const again = run(
    '--model',
    FIXTURE_GGUF,
    '--session',
    file,
    '--prompt',
    '',
    '--max-tokens',
    '4',
    '--save-session',
    file,
  );
  assert.equal(again.status, 0, again.stderr);
  const after = decodeSessionFile(readFileSync(file), file);
  assert.equal(after.header.tokenCount, before + 3);
  assert.ok(after.saved, 'the caches were saved again');
});

test('a truncated session, another model or another method: one typed line, exit 2', () => {
  const file = join(dir, 'short.session');
  assert.equal(run('--model', FIXTURE_GGUF, '--prompt', DOC, '--max-tokens', '0', '--save-session', file).status, 0);
  const bytes = readFileSync(file);
  const cut = join(dir, 'cut.session');
  writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
  const q8 = join(dir, 'q8.gguf');
  writeFileSync(
    q8,
    reencodeGguf(fixtureBytes(), () => 8),
  );
  for (const [args, pattern] of [
    [['--model', FIXTURE_GGUF, '--session', cut], /^longctx: InputError: .*truncated/],
    [['--model', q8, '--session', file], /^longctx: SessionMismatchError: .* was saved with model /],
    [
      ['--model', FIXTURE_GGUF, '--session', file, '--attention', 'dense'],
      /^longctx: SessionMismatchError: .*attention/,
    ],
    [['--model', FIXTURE_GGUF, '--session', join(dir, 'none.session')], /^longctx: InputError: cannot read session/],
  ] as const) {
    const r = run(...args, '--prompt', ' Then', '--max-tokens', '4');
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
