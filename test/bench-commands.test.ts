// `longctx bench dsa`, `longctx bench star` and `longctx eval-mass` end to end at small sizes: they run, write
// what they say, and what they measure holds (Star and Ring across hosts equal one process; no selector keeps
// more attention mass than the oracle; a budget that covers every key keeps all of it).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { webgpuDevice } from './support.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'longctx-bench-'));
const run = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? tmpdir() },
  });

const gpu = await webgpuDevice();
after(() => gpu?.destroy());

describe('bench commands', () => {
  test(
    'bench dsa: prefill and decode rows with every part timed, dsa.json and dsa.md',
    {
      skip: gpu ? false : 'no WebGPU adapter',
    },
    () => {
      const out = join(dir, 'dsa');
      const args = ['--lengths', '512', '--heads', '4', '--kv-heads', '1', '--head-dim', '64', '--topk', '64'];
      const r = run('bench', 'dsa', ...args, '--reps', '1', '--out-dir', out);
      assert.equal(r.status, 0, r.stderr);
      const report = JSON.parse(readFileSync(join(out, 'dsa.json'), 'utf8'));
      assert.deepEqual(
        report.rows.map((x: { mode: string; seqLen: number }) => `${x.mode} ${x.seqLen}`),
        ['prefill 512', 'decode 512'],
      );
      for (const row of report.rows) {
        assert.equal(row.error, undefined);
        for (const key of ['indexerMs', 'selectionMs', 'attentionMs', 'ms', 'flashMs'])
          assert.ok(Number.isFinite(row[key]) && row[key] >= 0, `${row.mode} ${key} = ${row[key]}`);
      }
      assert.ok(Number.isFinite(report.rows[1].cacheStepMs), 'decode through the cache is timed');
      assert.match(readFileSync(join(out, 'dsa.md'), 'utf8'), /\| decode \| 0\.5K \|/);
    },
  );

  test('bench dsa refuses a bad precision with one line', () => {
    const r = run('bench', 'dsa', '--precision', 'int4');
    assert.equal(r.status, 2);
    assert.equal(r.stderr, "longctx: InputError: --precision must be int8 or float, got 'int4'\n");
  });

  test('bench star --verify: Star and Ring over 2 host processes equal one process', () => {
    const out = join(dir, 'star');
    const args = ['--hosts', '2', '--lengths', '256', '--heads', '2', '--head-dim', '32', '--dtype', 'f32'];
    const r = run('bench', 'star', '--backend', 'cpu', ...args, '--query', '32', '--verify', '--out-dir', out);
    assert.equal(r.status, 0, r.stderr);
    const rows = JSON.parse(readFileSync(join(out, 'star.json'), 'utf8'));
    assert.deepEqual(
      rows.map((x: { method: string }) => x.method),
      ['star:block=16,anchor=16,query=32', 'ring'],
    );
    for (const row of rows) {
      const diff = Number(/max \|dO\| vs one process (\S+)/.exec(row.check)?.[1]);
      assert.ok(diff <= 1e-5, `${row.method}: ${row.check}`);
      assert.equal(row.hostMs.length, 2);
    }
    assert.match(readFileSync(join(out, 'star.md'), 'utf8'), /^\| hosts \| length \| method \|/);
  });

  // dsa:P always keeps 4 sinks and the last 64 keys, so the oracle bounds it from B = 68 on.
  test('eval-mass: the oracle bounds every selector, and a budget over all keys keeps all the mass', () => {
    const out = join(dir, 'mass', 'mass.json');
    const r = run('eval-mass', '--contexts', '128,256', '--samples', '8', '--budgets', '80,1024', '--out', out);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    const layers = 5; // stories260K
    assert.equal(report.rows.length, 2 * 2 * layers);
    const selectors = ['indexer:4', 'dsa:4', 'indexer:2', 'dsa:2', 'recent', 'sinks+recent', 'random'];
    for (const row of report.rows) {
      for (const s of selectors) {
        assert.ok(row[s] >= 0 && row[s] <= row.oracle + 1e-6, `${s} ${row[s]} > oracle ${row.oracle}`);
        if (row.budget >= row.context) assert.ok(Math.abs(row[s] - 1) < 1e-5, `${s} at B >= C: ${row[s]}`);
      }
      assert.ok(row.oracle <= 1 + 1e-9);
    }
    const md = readFileSync(join(dir, 'mass', 'mass.md'), 'utf8');
    assert.match(md, /^# Share of exact attention mass/);
    assert.equal(md.split('\n').filter((l) => /^\| (128|256) \|/.test(l)).length, report.rows.length);
  });
});
