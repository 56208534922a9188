// `longctx eval-mass`: the share of exact attention mass that DSA's training-free indexer and other key
// selectors keep, per layer, on real text (src/eval/dsa-mass.ts; the figures of docs/DSA-MASS.md).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dsaAttentionMass, dsaMassMarkdown, type DsaMassOptions, type DsaMassProgress } from '../eval/dsa-mass.js';
import { loadModel } from '../model/load/load.js';
import { acquireDevice } from '../runtime/device.js';
import { backendOption, intList, parse } from './args.js';
import { EVAL_NEEDLE_USAGE, evalNeedleCommand } from './eval-needle.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url)); // dist/src/cli/ -> the repository

export const EVAL_MASS_USAGE = `usage: longctx eval-mass [--contexts 4096,8192,16384] [--samples 256] [--budgets 128,512] [--pairs 4,2]
                        [--backend cpu|webgpu|auto] [--chunk 512] [--text data/kjv-head.txt]
                        [--model test/fixtures/stories260K/stories260K.gguf] [--out FILE.json (and FILE.md)]
  Prefills the text with exact attention, then for sampled queries in the last quarter of each context
  sums the exact attention mass inside each selector's B keys: oracle, indexer:P, dsa:P, recent,
  sinks+recent, random. The table is rewritten after each context.
${EVAL_NEEDLE_USAGE}`;

export async function evalMassCommand(argv: string[]): Promise<void> {
  // The needle mode measures retrieval of one known span instead of the mass of sampled queries: its own options.
  if (argv.some((a) => a === '--needle' || a.startsWith('--needle='))) return evalNeedleCommand(argv);
  const v = parse(argv, {
    contexts: { type: 'string' },
    samples: { type: 'string' },
    budgets: { type: 'string' },
    pairs: { type: 'string' },
    backend: { type: 'string' },
    chunk: { type: 'string' },
    text: { type: 'string' },
    model: { type: 'string' },
    out: { type: 'string' },
  });
  const o: DsaMassOptions = {
    contexts: intList(v, 'contexts', [4096, 8192, 16384]),
    samples: intList(v, 'samples', [256])[0],
    budgets: intList(v, 'budgets', [128, 512]),
    pairs: intList(v, 'pairs', [4, 2]),
    chunk: intList(v, 'chunk', [512])[0],
  };
  const text = String(v.text ?? ROOT + 'data/kjv-head.txt');
  const model = loadModel(String(v.model ?? ROOT + 'test/fixtures/stories260K/stories260K.gguf'));
  const backendChoice = v.backend === undefined ? 'cpu' : backendOption(v);
  const ids = [model.config.bosTokenId ?? 1, ...model.tokenizer.encode(readFileSync(text, 'utf8'))];
  const out = typeof v.out === 'string' ? v.out : undefined;
  const device = await acquireDevice(backendChoice);
  const backend = device.backend;
  const t0 = performance.now();
  const report = (p: DsaMassProgress) => {
    const setting =
      `model ${model.source} (context ${model.config.contextLength} in its config); text ${text.replace(ROOT, '')}; ` +
      `indexer:P = ${p.indexer.replace(/\d+ of/, 'P of')}; backend ${backend}`;
    const md = dsaMassMarkdown(p, o.samples, setting);
    if (p.done.length === o.contexts.length) process.stdout.write(md + '\n');
    if (out) {
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out.replace(/\.json$/, '') + '.md', md + '\n');
      const { indexer, prefillSeconds, rows } = p;
      const json = { model: model.source, text, indexer, backend, samples: o.samples, prefillSeconds, rows };
      writeFileSync(out, JSON.stringify(json, null, 1));
    }
    process.stderr.write(`context ${p.done.at(-1)} measured after ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  };
  try {
    const onPrefill = (s: number) =>
      process.stderr.write(
        `prefill of ${Math.max(...o.contexts)} tokens with exact attention on ${backend}: ${s.toFixed(1)} s\n`,
      );
    const p = await dsaAttentionMass(device, model, ids, o, { onPrefill, onContext: report });
    if (p.done.length === 0) process.stdout.write('no contexts measured\n');
  } finally {
    device.destroy();
  }
}
