// session-bench on the tiny random model (CPU, 512-token context) through a child process: one row per
// method, flash, CCA and DSA restored from their saved caches with the same first token as after the prefill, a file of
// some bytes, that file removed at the end, and a bad argument a typed one-line error (exit 2).
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = join(import.meta.dirname, '../src/cli/session-bench.js');

it('session-bench: flash restores from caches with the same first token, and removes its file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'longctx-session-bench-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bench.session');
  const json = join(dir, 'out.json');
  const args = ['--random', 'tiny', '--backend', 'cpu', '--context', '512', '--attention', 'flash'];
  const r = spawnSync(
    process.execPath,
    [
      CLI,
      ...args,
      '--attention',
      'cca:group=4,window=16',
      '--attention',
      'dsa:topk=32',
      '--file',
      file,
      '--json',
      json,
    ],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\| flash \| 449 \|/);
  const out = JSON.parse(readFileSync(json, 'utf8'));
  assert.equal(out.rows.length, 3);
  const [flash, cca, dsa] = out.rows;
  assert.equal(flash.restoredFrom, 'caches');
  assert.equal(flash.sameFirstToken, true);
  assert.ok(flash.fileBytes > 0);
  for (const row of [cca, dsa]) {
    assert.equal(row.restoredFrom, 'caches', row.attention);
    assert.equal(row.sameFirstToken, true);
  }
  // CCA keeps 512 / 4 cores and a ring of 19 rows where flash keeps 449: its file is the smaller.
  assert.ok(cca.fileBytes < flash.fileBytes / 2, `${cca.fileBytes} vs ${flash.fileBytes}`);
  assert.equal(existsSync(file), false);
  const bad = spawnSync(process.execPath, [CLI, ...args, '--context', '100'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^session-bench: --context must be more than 128 tokens/);
});
