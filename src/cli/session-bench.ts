// Time to first token of a question about a long document: prefilling the document again against loading
// the session saved after its prefill. Per method: prefill + the question's first token (full TTFT), save
// (seconds, bytes), dispose, loadSession + the same question's first token (TTFT from the session). The
// document fills the context less 64 tokens of room for BOS and the question; a short warm-up per method first
// keeps pipeline compilation out of both times.
//   node dist/src/cli/session-bench.js --model F | --random 1b|tiny  [--backend webgpu] [--storage f16]
//        [--context 128K] [--attention SPEC]... [--file PATH] [--json out.json]
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import type { Model } from '../api/model.js';
import { loadSession } from '../api/load-session.js';
import { benchModel } from './random-text-model.js';
import { formatBytes } from '../io/limits.js';
import { intList, parse } from './args.js';

const ROOM = 64;
const QUESTION = '\nQuestion: what is the name?';
const SENTENCE = 'The keeper of the lighthouse wrote the tide and the wind in the log each night. ';

interface Row {
  attention: string;
  documentTokens: number;
  fullTtftSeconds: number;
  saveSeconds: number;
  fileBytes: number;
  loadSeconds: number;
  /** Of loadSeconds: reading and checking the file, then the new session and its restore. */
  readSeconds: number;
  restoreSeconds: number;
  sessionTtftSeconds: number;
  restoredFrom: string;
  speedup: number;
  sameFirstToken: boolean;
}

/** Text of about `tokens` tokens: the sentence repeated, cut at a token. */
function documentOf(model: Model, tokens: number): string {
  const unit = model.tokenizer.encode(SENTENCE);
  const ids = Array.from({ length: tokens }, (_, i) => unit[i % unit.length]);
  return model.tokenizer.decode(ids);
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;

async function firstToken(session: Awaited<ReturnType<Model['createSession']>>): Promise<number> {
  const r = await session.generate(QUESTION, { maxTokens: 1, stopAtEos: false }).complete();
  if (r.ids.length !== 1) throw new InputError(`the question gave ${r.ids.length} tokens, not 1`);
  return r.ids[0];
}

/** A short prefill and question first, so neither timed run pays for compiling the method's pipelines. */
async function warmUp(model: Model, attention: string, contextSize: number, doc: string): Promise<void> {
  const s = await model.createSession({ contextSize, attention });
  try {
    await s.prefill(doc.slice(0, 2 * ROOM));
    await firstToken(s);
  } finally {
    s.dispose();
  }
}

async function benchOne(model: Model, attention: string, contextSize: number, doc: string, file: string) {
  await warmUp(model, attention, contextSize, doc);
  const a = await model.createSession({ contextSize, attention });
  let t0 = performance.now();
  let first: number;
  let documentTokens: number;
  let saveSeconds: number;
  let fileBytes: number;
  let fullTtftSeconds: number;
  try {
    await a.prefill(doc);
    const prefillSeconds = seconds(t0);
    documentTokens = a.tokenCount;
    // Saved before the question (the file holds the document alone), timed apart from the TTFT.
    t0 = performance.now();
    fileBytes = await a.save(file);
    saveSeconds = seconds(t0);
    t0 = performance.now();
    first = await firstToken(a);
    fullTtftSeconds = prefillSeconds + seconds(t0);
  } finally {
    a.dispose();
  }
  t0 = performance.now();
  const timings: { readSeconds?: number; restoreSeconds?: number } = {};
  const b = await loadSession(model, file, { timings });
  try {
    const loadSeconds = seconds(t0);
    const again = await firstToken(b);
    const sessionTtftSeconds = seconds(t0);
    const row: Row = {
      attention,
      documentTokens,
      fullTtftSeconds,
      saveSeconds,
      fileBytes,
      loadSeconds,
      readSeconds: timings.readSeconds ?? Number.NaN,
      restoreSeconds: timings.restoreSeconds ?? Number.NaN,
      sessionTtftSeconds,
      restoredFrom: b.restoredFrom ?? 'replay',
      speedup: fullTtftSeconds / sessionTtftSeconds,
      sameFirstToken: again === first,
    };
    return row;
  } finally {
    b.dispose();
  }
}

async function main(argv: string[]): Promise<void> {
  const v = parse(argv, {
    model: { type: 'string' },
    random: { type: 'string' },
    backend: { type: 'string' },
    storage: { type: 'string' },
    context: { type: 'string' },
    attention: { type: 'string', multiple: true },
    file: { type: 'string' },
    json: { type: 'string' },
  });
  const contexts = intList(v, 'context', [128 * 1024]);
  if (contexts.length !== 1) throw new InputError('--context takes one size (e.g. 128K)');
  const contextSize = contexts[0];
  if (contextSize <= 2 * ROOM)
    throw new InputError(`--context must be more than ${2 * ROOM} tokens, got ${contextSize}`);
  const methods = (v.attention as unknown as string[] | undefined) ?? ['flash'];
  if (methods.some((m) => m.trim() === '')) throw new InputError('--attention needs a method spec (e.g. flash)');
  if (v.file !== undefined && (typeof v.file !== 'string' || v.file === ''))
    throw new InputError('--file needs a path');
  const file = (v.file as string | undefined) ?? join(tmpdir(), `longctx-session-bench-${process.pid}.session`);
  const model = await benchModel(v);
  const rows: Row[] = [];
  try {
    const doc = documentOf(model, contextSize - ROOM);
    for (const attention of methods) rows.push(await benchOne(model, attention, contextSize, doc, file));
  } finally {
    rmSync(file, { force: true });
    model.dispose();
  }
  const f = (x: number) => x.toFixed(3);
  process.stdout.write(
    `session vs prefill on ${model.device.name}, ${model.source}, context ${contextSize}\n\n` +
      '| attention | document tokens | full TTFT (s) | save (s) | file | load (s) | of which read / restore (s) ' +
      '| TTFT from session (s) | restored from | full / session | same first token |\n' +
      `|${' --- |'.repeat(11)}\n` +
      rows
        .map(
          (r) =>
            `| ${r.attention} | ${r.documentTokens} | ${f(r.fullTtftSeconds)} | ${f(r.saveSeconds)} | ${formatBytes(r.fileBytes)} ` +
            `| ${f(r.loadSeconds)} | ${f(r.readSeconds)} / ${f(r.restoreSeconds)} | ${f(r.sessionTtftSeconds)} ` +
            `| ${r.restoredFrom} | ${r.speedup.toFixed(1)}x | ${r.sameFirstToken} |`,
        )
        .join('\n') +
      '\n',
  );
  if (typeof v.json === 'string')
    writeFileSync(
      v.json,
      JSON.stringify({ device: model.device.name, source: model.source, contextSize, rows }, null, 2),
    );
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`session-bench: ${e.message}\n`);
    process.exit(e instanceof InputError ? 2 : 1);
  },
);
