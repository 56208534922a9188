// The fuzz runner: cases [from, from + cases) of a seed, split over `jobs` lanes; each lane runs batches
// of cases in child processes capped in memory (V8's old space, and `ulimit -v` where a shell exists).
// A case fails when it throws an untyped error, is slower than its budget (the child says so), hangs
// (no report within the budget plus a grace: the runner kills the child), or crashes the child (a signal,
// V8 out of memory). After a kill or a crash the lane goes on with the next case in a fresh child.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BatchSpec } from './child.js';
import { FUZZ_KINDS, type FuzzKind } from './cases.js';

export interface FuzzOptions {
  seed: number;
  cases: number;
  from?: number;
  jobs?: number;
  /** Cases per child process. */
  batch?: number;
  perCaseMs?: number;
  /** Hard kill this long after the per-case budget. */
  graceMs?: number;
  heapMiB?: number;
  /** Address-space cap of a child (ulimit -v), where /bin/sh exists. */
  addressSpaceMiB?: number;
  kinds?: FuzzKind[];
  save?: string;
  onProgress?: (done: number, failures: number) => void;
}

export interface FuzzFailure {
  index: number;
  reason: string;
  what?: string;
}

export interface FuzzSummary {
  cases: number;
  failures: FuzzFailure[];
  /** Cases loaded (and run) without error, and refusals by error class. */
  accepted: number;
  refused: Record<string, number>;
  seconds: number;
}

const CHILD = fileURLToPath(new URL('./child.js', import.meta.url));

interface BatchResult {
  /** First case not reported (== to when the batch finished). */
  next: number;
  failure?: FuzzFailure;
}

function runBatch(
  spec: BatchSpec,
  o: Required<Pick<FuzzOptions, 'perCaseMs' | 'graceMs' | 'heapMiB' | 'addressSpaceMiB'>>,
  summary: FuzzSummary,
  report: () => void,
): Promise<BatchResult> {
  const node = [process.execPath, `--max-old-space-size=${o.heapMiB}`, CHILD, JSON.stringify(spec)];
  const child = existsSync('/bin/sh')
    ? spawn('/bin/sh', ['-c', `ulimit -v ${o.addressSpaceMiB * 1024} 2>/dev/null; exec "$@"`, 'sh', ...node], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(node[0], node.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let current = spec.from;
  let started = false;
  let stderr = '';
  let buffer = '';
  let timer: NodeJS.Timeout | undefined;
  let hung = false;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, o.perCaseMs + o.graceMs);
  };
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (t: string) => (stderr = (stderr + t).slice(-4000)));
  child.stdout!.setEncoding('utf8');
  const failures: FuzzFailure[] = [];
  child.stdout!.on('data', (t: string) => {
    buffer += t;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.startsWith('S ')) {
        current = Number(line.slice(2));
        started = true;
        arm();
      } else if (line.startsWith('R ')) {
        const space = line.indexOf(' ', 2);
        const index = Number(line.slice(2, space));
        const r = JSON.parse(line.slice(space + 1)) as { ok: boolean; refused?: string; error?: string; what: string };
        if (!r.ok) failures.push({ index, reason: r.error!, what: r.what });
        else if (r.refused) summary.refused[r.refused] = (summary.refused[r.refused] ?? 0) + 1;
        else summary.accepted++;
        current = index + 1;
        started = false;
        summary.cases++;
        report();
      }
    }
  });
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      summary.failures.push(...failures);
      if (current >= spec.to) return resolve({ next: spec.to });
      const oom = /heap out of memory|Allocation failed|std::bad_alloc|Cannot allocate memory/.test(stderr);
      const why = hung
        ? `hang: no report within ${o.perCaseMs + o.graceMs} ms`
        : oom
          ? `out of memory under the cap (${stderr.trim().split('\n').pop()})`
          : `crash: ${signal ?? `exit code ${code}`}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
      summary.cases++;
      report();
      resolve({
        next: current + 1,
        failure: { index: current, reason: started || hung ? why : `child failed before case ${current}: ${why}` },
      });
    });
  });
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzSummary> {
  const t0 = performance.now();
  const o = {
    perCaseMs: opts.perCaseMs ?? 5_000,
    graceMs: opts.graceMs ?? 10_000,
    heapMiB: opts.heapMiB ?? 512,
    addressSpaceMiB: opts.addressSpaceMiB ?? 4096,
  };
  const from = opts.from ?? 0;
  const jobs = Math.max(1, opts.jobs ?? 2);
  const batch = opts.batch ?? 250;
  const summary: FuzzSummary = { cases: 0, failures: [], accepted: 0, refused: {}, seconds: 0 };
  const report = () => opts.onProgress?.(summary.cases, summary.failures.length);
  const scratchRoot = mkdtempSync(join(tmpdir(), 'longctx-fuzz-'));
  const per = Math.ceil(opts.cases / jobs);
  try {
    await Promise.all(
      Array.from({ length: jobs }, async (_, lane) => {
        const end = Math.min(from + opts.cases, from + (lane + 1) * per);
        let next = from + lane * per;
        while (next < end) {
          const to = Math.min(end, next + batch);
          const spec: BatchSpec = {
            seed: opts.seed,
            from: next,
            to,
            perCaseMs: o.perCaseMs,
            kinds: opts.kinds ?? [...FUZZ_KINDS],
            scratch: join(scratchRoot, `lane-${lane}`),
            save: opts.save,
          };
          const r = await runBatch(spec, o, summary, report);
          if (r.failure) summary.failures.push(r.failure);
          next = r.next;
        }
      }),
    );
  } finally {
    rmSync(scratchRoot, { recursive: true, force: true });
  }
  summary.failures.sort((a, b) => a.index - b.index);
  summary.seconds = (performance.now() - t0) / 1000;
  return summary;
}
