// CI's fuzz step: a fixed-seed sample of 1,200 cases (GGUF, Hugging Face directories, .npy) in batched
// child processes under a memory cap, each case with a time budget. Fails on any crash, hang, out-of-memory
// or untyped error, listing how to replay it (`npm run fuzz -- --seed 1 --from I --cases 1`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from '../src/fuzz/runner.js';
import { fuzzCase } from '../src/fuzz/cases.js';
import { dropDawnWarnings } from '../src/cli/quiet-dawn.js';

test('fuzz: 1,200 fixed-seed cases, no crash, hang, OOM or untyped error', { timeout: 300_000 }, async () => {
  const summary = await runFuzz({ seed: 1, cases: 1200, jobs: 2, perCaseMs: 5_000 });
  process.stderr.write(
    `fuzz: ${summary.cases} cases in ${summary.seconds.toFixed(1)} s; ${summary.accepted} accepted, refused ${JSON.stringify(summary.refused)}\n`,
  );
  assert.equal(summary.cases, 1200);
  assert.deepEqual(summary.failures, []);
  // The sample exercises both sides: inputs refused by type, and mutated inputs that still load and run.
  assert.ok(summary.accepted > 50, `${summary.accepted} accepted`);
  assert.ok((summary.refused.InputError ?? 0) > 500);
});

test('fuzz cases are a pure function of (seed, index)', () => {
  for (const i of [0, 1, 2, 17]) {
    const [a, b] = [fuzzCase(3, i), fuzzCase(3, i)];
    assert.deepEqual(a, b);
  }
  assert.notDeepEqual(fuzzCase(3, 5), fuzzCase(4, 5));
});

test('the runner names a hanging, out-of-memory, aborting or untyped case, and goes on to the next', async () => {
  // Canary cases 0-4: hang, oom, abort, untyped, fine; twice over.
  const summary = await runFuzz({
    seed: 1,
    cases: 10,
    jobs: 1,
    heapMiB: 64,
    kinds: ['canary'],
    perCaseMs: 1_000,
    graceMs: 1_000,
  });
  assert.equal(summary.cases, 10);
  assert.equal(summary.accepted, 2, 'the fine canaries ran');
  const reasons = summary.failures.map((f) => `${f.index} ${f.reason.split(/[:(]/)[0].trim()}`);
  assert.deepEqual(reasons, [
    '0 hang',
    '1 out of memory under the cap',
    '2 crash',
    '3 untyped TypeError',
    '5 hang',
    '6 out of memory under the cap',
    '7 crash',
    '8 untyped TypeError',
  ]);
});

test("Dawn's two warnings are dropped from stderr, nothing else", () => {
  const w = (n: string) =>
    `Warning: maxDynamic${n}BuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n`;
  const r1 = dropDawnWarnings('', `${w('Uniform')}real line\n${w('Storage')}Warn`);
  assert.equal(r1.out, 'real line\n');
  const r2 = dropDawnWarnings(r1.pending, 'ing: something else\nprogress\r');
  assert.equal(r2.out, 'Warning: something else\nprogress\r');
  assert.equal(r2.pending, '');
});
