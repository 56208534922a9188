// `longctx eval`: long-context tasks generated from text (data/) and the model's tokenizer, scored on exact
// answers, over a grid of configurations (attention method x RoPE scaling x positional method) and lengths.
// Results go to --out as they finish (results.jsonl: a rerun resumes), then report.json, report.md and SVGs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { loadCorpus } from '../eval/corpus.js';
import { Haystack } from '../eval/haystack.js';
import { readCasesFile } from '../eval/cases-file.js';
import { buildReport, reportMarkdown, reportSvgs } from '../eval/report.js';
import { type EvalConfig, type EvalGrid, runEval } from '../eval/runner.js';
import { loadTemplates } from '../eval/templates.js';
import { TASKS } from '../eval/tasks/index.js';
import type { TaskContext } from '../eval/case.js';
import { loadModel } from '../model/load/load.js';
import { acquireDevice } from '../runtime/device.js';
import { backendOption, intList, numberOption, parse, required } from './args.js';

export const EVAL_USAGE = `usage: longctx eval --model F [--tasks T,...] [--lengths 1K,2K,...] [--depths 0,25,50,75,100]
                    [--cases-per N] [--seed S] [--attention SPEC]... [--rope SPEC]... [--positions SPEC]...
                    [--cases FILE.jsonl] [--template NAME|FILE.json] [--out DIR] [--backend cpu|webgpu|auto] [--storage f32|f16]
                    [--chunk N] [--data DIR] [--no-bos] [--title TEXT] [--budget-seconds S] [--shard i/n]
  Tasks (default passkey): ${TASKS.map((t) => t.name).join(', ')}.
  Every (attention, rope, positions) combination runs over every task, length and depth; --cases-per cases
  each (default 10), seeded by --seed (default 1; use different seeds for dev and test splits).
  --depths puts the asked needle at those percentages (a length x depth grid); without it each case draws
  its depths as train_passkey.py's sample() does. --rope model keeps the model's own scaling (default);
  --positions none (default) | self-extend:window=W,group=G | chunked:chunk=S,local=W | remap:window=W,topk=K.
  --storage f16 (WebGPU): weights and KV caches in half precision, the tensor-core kernels where the device has
  them (about 10x faster on an H200 at 32K); named in the configuration (storage=f16). Default f32.
  --cases FILE.jsonl adds {"prompt", "answer"} lines, run under every configuration.
  --template passkey-2k (default) | ruler | FILE.json (fields over the default; see src/eval/templates.ts).
  --out DIR (default eval-out): results.jsonl (a rerun skips finished cases), report.json, report.md, *.svg.
  Cases run round robin (case 0 of every cell, then case 1, ...); --budget-seconds starts none after S seconds;
  --shard i/n runs every n-th (parallel processes, each with its own --out); --cases-per 0 only reports.`;

function shardOption(text: unknown): { index: number; count: number } | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(String(text));
  if (!m || Number(m[1]) >= Number(m[2])) throw new InputError(`--shard must be i/n with 0 <= i < n, got '${text}'`);
  return { index: Number(m[1]), count: Number(m[2]) };
}

function listOption(v: Record<string, unknown>, name: string, fallback: string[]): string[] {
  const x = v[name];
  if (x === undefined) return fallback;
  const list = (Array.isArray(x) ? x : [x]).map(String);
  if (list.some((s) => s.trim() === '')) throw new InputError(`--${name} must not be empty`);
  return list;
}

export async function evalCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    model: { type: 'string' },
    tasks: { type: 'string' },
    lengths: { type: 'string' },
    depths: { type: 'string' },
    'cases-per': { type: 'string' },
    seed: { type: 'string' },
    attention: { type: 'string', multiple: true },
    rope: { type: 'string', multiple: true },
    positions: { type: 'string', multiple: true },
    cases: { type: 'string' },
    template: { type: 'string' },
    out: { type: 'string' },
    backend: { type: 'string' },
    storage: { type: 'string' },
    chunk: { type: 'string' },
    data: { type: 'string' },
    'no-bos': { type: 'boolean' },
    title: { type: 'string' },
    'budget-seconds': { type: 'string' },
    shard: { type: 'string' },
  });
  const casesPer = numberOption(v, 'cases-per') ?? 10;
  if (!Number.isInteger(casesPer) || casesPer < 0) throw new InputError('--cases-per must be a non-negative integer');
  const seed = numberOption(v, 'seed') ?? 1;
  if (!Number.isInteger(seed)) throw new InputError('--seed must be an integer');
  const chunk = numberOption(v, 'chunk') ?? 512;
  if (!Number.isInteger(chunk) || chunk < 1) throw new InputError('--chunk must be a positive integer');
  const storage = (v.storage as string | undefined) ?? 'f32';
  if (storage !== 'f32' && storage !== 'f16') throw new InputError(`--storage must be f32 or f16, got '${storage}'`);
  const depthList = typeof v.depths === 'string' ? v.depths.split(',').map((s) => Number(s.trim())) : [];
  if (depthList.some((d) => !Number.isFinite(d) || d < 0 || d > 100))
    throw new InputError(`--depths must be percentages 0..100, got '${v.depths}'`);
  const tasks = typeof v.tasks === 'string' ? v.tasks.split(',').map((s) => s.trim()) : ['passkey'];
  const lengths = intList(v, 'lengths', [1024, 2048]);
  const configs: EvalConfig[] = [];
  for (const attention of listOption(v, 'attention', ['flash']))
    for (const rope of listOption(v, 'rope', ['model']))
      for (const positions of listOption(v, 'positions', ['none']))
        configs.push({ attention, rope, positions, ...(storage === 'f16' ? { storage } : {}) });

  const model = loadModel(required(v, 'model'));
  const corpus = loadCorpus(typeof v.data === 'string' ? v.data : undefined);
  const bos = v['no-bos'] ? undefined : model.tokenizer.bosId;
  const ctx: TaskContext = {
    corpus,
    tokenizer: model.tokenizer,
    haystack: new Haystack(corpus.filler, model.tokenizer),
    templates: loadTemplates(typeof v.template === 'string' ? v.template : undefined),
    bos,
  };
  const extraCases = typeof v.cases === 'string' ? readCasesFile(v.cases, ctx) : undefined;
  const grid: EvalGrid = {
    configs,
    tasks: casesPer > 0 ? tasks : [],
    lengths,
    depths: depthList,
    casesPerCell: casesPer,
    seed,
    extraCases,
  };
  const longest = Math.max(...lengths, ...(extraCases ?? []).map((c) => c.turns.reduce((a, t) => a + t.ids.length, 0)));
  const outDir = typeof v.out === 'string' ? v.out : 'eval-out';
  mkdirSync(outDir, { recursive: true });
  const device = await acquireDevice(backendOption(v));
  if (storage === 'f16' && !device.gpu)
    throw new InputError(
      '--storage f16 is for WebGPU: the CPU backend keeps weights and caches in f32 (drop --storage)',
    );
  try {
    process.stderr.write(
      `eval: ${model.source} on ${device.name}; ${configs.length} configuration(s), tasks ${grid.tasks.join(', ') || '-'}` +
        `${extraCases ? ` + ${extraCases.length} --cases` : ''}, lengths ${lengths.join(', ')}, seed ${seed}; results in ${outDir}\n`,
    );
    const rows = await runEval(model, device, grid, ctx, {
      outDir,
      chunk,
      maxTokens: longest + 512,
      budgetSeconds: numberOption(v, 'budget-seconds'),
      shard: shardOption(v.shard),
    });
    const report = buildReport(rows, {
      title: typeof v.title === 'string' ? v.title : 'longctx eval',
      // The devices the results ran on (a report-only run may be elsewhere).
      device: [...new Set(rows.map((r) => r.device ?? device.name))].join(' + ') || device.name,
      model: model.source,
      seed,
    });
    writeFileSync(join(outDir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
    const md = reportMarkdown(report);
    writeFileSync(join(outDir, 'report.md'), md);
    for (const [name, svg] of reportSvgs(report)) writeFileSync(join(outDir, name), svg);
    process.stdout.write(md);
  } finally {
    device.destroy();
  }
}
