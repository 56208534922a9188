// One fuzz batch in its own process (spawned by runner.ts under a memory cap): runs cases [from, to) in
// order, announcing each before it starts and reporting it when done, with synchronous writes, so that
// when this process hangs, crashes or runs out of memory the runner knows which case did it.
import { writeSync } from 'node:fs';
import { fuzzCase, type FuzzKind } from './cases.js';
import { runCase, writeCase } from './target.js';

export interface BatchSpec {
  seed: number;
  from: number;
  to: number;
  /** A case slower than this is a finding even when it finishes. */
  perCaseMs: number;
  kinds: FuzzKind[];
  /** Scratch folder for the case's files (Hugging Face directories). */
  scratch: string;
  /** Write each case's files here (to replay a finding by hand). */
  save?: string;
}

async function main(spec: BatchSpec): Promise<void> {
  for (let i = spec.from; i < spec.to; i++) {
    writeSync(1, `S ${i}\n`);
    const c = fuzzCase(spec.seed, i, spec.kinds);
    if (spec.save) writeCase(c, `${spec.save}/case-${i}`);
    const t0 = performance.now();
    let outcome = await runCase(c, spec.scratch);
    const ms = performance.now() - t0;
    if (outcome.ok && ms > spec.perCaseMs)
      outcome = { ok: false, error: `slow: ${ms.toFixed(0)} ms, over the ${spec.perCaseMs} ms per case` };
    writeSync(1, `R ${i} ${JSON.stringify({ ...outcome, what: `${c.kind}: ${c.what}`, ms: Math.round(ms) })}\n`);
  }
  writeSync(1, 'END\n');
}

main(JSON.parse(process.argv[2]) as BatchSpec).then(
  () => process.exit(0),
  (e: Error) => {
    writeSync(2, `fuzz child failed: ${e.stack ?? e}\n`);
    process.exit(70);
  },
);
