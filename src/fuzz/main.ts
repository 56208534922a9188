#!/usr/bin/env node
// `npm run fuzz -- --cases 10000 [--seed 1] [--from 0] [--jobs 2] [--kinds gguf,hf,npy] [--save DIR]`:
// the fuzzer for release checks; exits 1 on any finding and prints how to replay each one.
import { parseArgs } from 'node:util';
import { FUZZ_KINDS, type FuzzKind } from './cases.js';
import { runFuzz } from './runner.js';

const { values } = parseArgs({
  options: {
    cases: { type: 'string' },
    seed: { type: 'string' },
    from: { type: 'string' },
    jobs: { type: 'string' },
    kinds: { type: 'string' },
    save: { type: 'string' },
    'per-case-ms': { type: 'string' },
  },
});
const int = (v: string | undefined, fallback: number): number => {
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`fuzz: expected a non-negative integer, got '${v}'\n`);
    process.exit(2);
  }
  return n;
};
const kinds = (values.kinds?.split(',') ?? [...FUZZ_KINDS]) as FuzzKind[];
if (kinds.some((k) => !FUZZ_KINDS.includes(k) && k !== 'canary')) {
  process.stderr.write(`fuzz: --kinds takes ${FUZZ_KINDS.join(', ')}\n`);
  process.exit(2);
}
const seed = int(values.seed, 1);
const summary = await runFuzz({
  seed,
  cases: int(values.cases, 1000),
  from: int(values.from, 0),
  jobs: int(values.jobs, 2) || 1,
  kinds,
  save: values.save,
  perCaseMs: values['per-case-ms'] ? int(values['per-case-ms'], 5000) : undefined,
  onProgress: (done, failures) => {
    if (done % 500 === 0) process.stderr.write(`fuzz: ${done} cases, ${failures} findings\n`);
  },
});
process.stdout.write(
  `fuzz: ${summary.cases} cases in ${summary.seconds.toFixed(1)} s: ${summary.accepted} accepted, refused ` +
    `${JSON.stringify(summary.refused)}, ${summary.failures.length} findings\n`,
);
for (const f of summary.failures)
  process.stdout.write(
    `  case ${f.index} (${f.what ?? '?'}): ${f.reason}\n    replay: npm run fuzz -- --seed ${seed} --from ` +
      `${f.index} --cases 1 --jobs 1 --save fuzz-case\n`,
  );
process.exit(summary.failures.length ? 1 : 0);
