// `longctx eval-mass --needle passkey`: the DSA indexer's top-k and CCA's cores as retrieval of the asked value
// at the answer position, per layer (src/eval/needle-eval.ts; the needle section of docs/DSA-MASS.md).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ccaParamsFromSpec } from '../attention/cca.js';
import { parseMethodSpec } from '../attention/spec.js';
import { InputError, SpecError } from '../errors.js';
import type { TaskContext } from '../eval/case.js';
import { loadCorpus } from '../eval/corpus.js';
import { Haystack } from '../eval/haystack.js';
import {
  needleRetrieval,
  type NeedleCcaOption,
  type NeedleEvalOptions,
  type NeedleProgress,
} from '../eval/needle-eval.js';
import { needleMarkdown } from '../eval/needle-report.js';
import { NEEDLE_TASKS } from '../eval/tasks/needle.js';
import { loadTemplates } from '../eval/templates.js';
import { loadModel } from '../model/load/load.js';
import { parseRopeSpec } from '../model/positions/rope-scaling.js';
import { acquireDevice } from '../runtime/device.js';
import { backendOption, intList, numberOption, parse } from './args.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url)); // dist/src/cli/ -> the repository

export const EVAL_NEEDLE_USAGE = `usage: longctx eval-mass --needle passkey|multikey|multivalue|multiquery [--model test/fixtures/passkey-2k]
                        [--contexts 2048,4096] [--cases 8] [--seed 1] [--budgets 64,256] [--pairs 4,16]
                        [--cca group=16,window=1024]... [--rope model|yarn:factor=16,original=2048]
                        [--backend cpu|webgpu|auto] [--chunk 512] [--data DIR] [--template NAME|FILE.json]
                        [--out FILE.json (and FILE.md)]
  Needle cases from the eval's task generator (the prompts of \`longctx eval --seed S\`), each prefilled with
  exact attention; at the answer position, per layer: are all / any of the asked value's tokens inside the
  oracle's, each indexer's and dsa:topk=k's keys (share of cases, Wilson 95%), the exact mass on them and the
  share each keeps, and for each --cca the mass on the core holding the needle and on the raw window, exact
  and under CCA's own pooled softmax, and whether its most attended core holds the needle.`;

function ccaOption(text: string): NeedleCcaOption {
  const spec = parseMethodSpec(text.startsWith('cca') ? text : `cca:${text}`);
  if (spec.name !== 'cca') throw new SpecError(`--cca takes CCA's parameters (group=G,window=W), got '${text}'`);
  const p = ccaParamsFromSpec(spec);
  return { name: `cca:group=${p.group},window=${p.window}`, group: p.group, window: p.window };
}

export async function evalNeedleCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    needle: { type: 'string' },
    model: { type: 'string' },
    contexts: { type: 'string' },
    cases: { type: 'string' },
    seed: { type: 'string' },
    budgets: { type: 'string' },
    pairs: { type: 'string' },
    cca: { type: 'string', multiple: true },
    rope: { type: 'string' },
    backend: { type: 'string' },
    chunk: { type: 'string' },
    data: { type: 'string' },
    template: { type: 'string' },
    out: { type: 'string' },
  });
  const task = String(v.needle);
  if (!NEEDLE_TASKS.some((t) => t.name === task))
    throw new InputError(`--needle takes a needle task (${NEEDLE_TASKS.map((t) => t.name).join(', ')}), got '${task}'`);
  const cases = numberOption(v, 'cases') ?? 8;
  if (!Number.isInteger(cases) || cases < 1) throw new InputError('--cases must be a positive integer');
  const seed = numberOption(v, 'seed') ?? 1;
  const loaded = loadModel(String(v.model ?? ROOT + 'test/fixtures/passkey-2k'));
  const rope = typeof v.rope === 'string' && v.rope !== 'model' ? v.rope : undefined;
  const model = rope ? { ...loaded, config: { ...loaded.config, rope: parseRopeSpec(rope) } } : loaded;
  // P above half the head dim is every pair: name each indexer by the pairs it really uses, once.
  const half = model.config.headDim / 2;
  const pairs = [...new Set(intList(v, 'pairs', [4, 16]).map((P) => Math.min(P, half)))];
  const ccaSpecs = (v.cca as unknown as string[] | undefined) ?? ['group=16,window=1024'];
  const o: NeedleEvalOptions = {
    task,
    contexts: intList(v, 'contexts', [2048, 4096]),
    cases,
    seed,
    budgets: intList(v, 'budgets', [64, 256]),
    pairs,
    cca: ccaSpecs.map(ccaOption),
    chunk: numberOption(v, 'chunk') ?? 512,
  };
  const corpus = loadCorpus(typeof v.data === 'string' ? v.data : undefined);
  const ctx: TaskContext = {
    corpus,
    tokenizer: model.tokenizer,
    haystack: new Haystack(corpus.filler, model.tokenizer),
    templates: loadTemplates(typeof v.template === 'string' ? v.template : undefined),
    bos: model.tokenizer.bosId,
  };
  const out = typeof v.out === 'string' ? v.out : undefined;
  const device = await acquireDevice(v.backend === undefined ? 'cpu' : backendOption(v));
  const t0 = performance.now();
  const setting = (p: NeedleProgress) =>
    `Model ${model.source.replace(ROOT, '')} (context ${model.config.contextLength} in its config), RoPE ` +
    `${rope ?? "the model's own"}; task ${task}, ${cases} cases per context, seed ${seed}; exact attention on ` +
    `${device.backend} (${device.name}); indexer:P = ${p.indexer.replace(/\d+ of/, 'P of')}; prefill ` +
    `${p.prefillSeconds.toFixed(0)} s in all.`;
  const report = (p: NeedleProgress) => {
    const md = needleMarkdown(p, setting(p));
    if (p.done.length === o.contexts.length) process.stdout.write(md + '\n');
    if (out) {
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out.replace(/\.json$/, '') + '.md', md + '\n');
      const json = { model: model.source, rope: rope ?? 'model', device: device.name, options: o, ...p };
      writeFileSync(out, JSON.stringify(json, null, 1));
    }
    process.stderr.write(`context ${p.done.at(-1)} measured after ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  };
  try {
    await needleRetrieval(device, model, ctx, o, {
      onCase: (r, s) =>
        process.stderr.write(
          `${r.context} case ${r.index}: value at ${r.span.join('-')}, prefill ${s.toFixed(1)} s, ` +
            `first token ${r.firstToken ? 'right' : 'wrong'}\n`,
        ),
      onContext: report,
    });
  } finally {
    device.destroy();
  }
}
