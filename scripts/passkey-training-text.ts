// Training text for `longctx train-indexer` that holds what the indexer must learn to find: passkey prompts as
// `longctx eval` makes them (the passkey task's generator, src/eval/tasks/needle.ts), each followed by its answer,
// written as text files of one prompt each. A prompt is shorter than half the training context, so every window
// train-indexer cuts (context - 1 tokens at a random offset) holds at least one whole prompt: a question, its
// answer and the statement it asks about. The seed is the split: `longctx eval` uses 1 (dev) and 2 (test), so the
// default 3 shares no case with either (the filler and the key words are drawn from the same corpus).
//   node dist/scripts/passkey-training-text.js --model test/fixtures/passkey-2k --out DIR [--count 400]
//     [--length 960] [--seed 3]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { TaskContext } from '../src/eval/case.js';
import { loadCorpus } from '../src/eval/corpus.js';
import { Haystack } from '../src/eval/haystack.js';
import { hashSeed } from '../src/eval/rng.js';
import { taskByName } from '../src/eval/tasks/index.js';
import { loadTemplates } from '../src/eval/templates.js';
import { loadModel } from '../src/model/load/load.js';

const { values: v } = parseArgs({
  options: {
    model: { type: 'string' },
    out: { type: 'string' },
    count: { type: 'string', default: '400' },
    length: { type: 'string', default: '960' },
    seed: { type: 'string', default: '3' },
  },
});
if (!v.model || !v.out) throw new Error('usage: passkey-training-text --model M --out DIR [--count N] [--length L]');
const model = loadModel(v.model);
const corpus = loadCorpus();
const ctx: TaskContext = {
  corpus,
  tokenizer: model.tokenizer,
  haystack: new Haystack(corpus.filler, model.tokenizer),
  templates: loadTemplates(undefined),
  bos: model.tokenizer.bosId,
};
const task = taskByName('passkey');
const count = Number(v.count);
const length = Number(v.length);
const seed = Number(v.seed);
mkdirSync(v.out, { recursive: true });
let tokens = 0;
for (let index = 0; index < count; index++) {
  const c = task.make(ctx, { task: 'passkey', length, index, seed: hashSeed(seed, 'passkey', length, '-', index) });
  if (c.kind !== 'qa') throw new Error('the passkey task made a non-question case');
  const turn = c.turns[0];
  // The prompt without its BOS (train-indexer puts one before every window), then the answer as the model says it.
  const ids = turn.ids[0] === ctx.bos ? turn.ids.slice(1) : turn.ids;
  const text = `${model.tokenizer.decode(ids)} ${turn.answers[0]}.`;
  tokens += ids.length;
  writeFileSync(join(v.out, `passkey-${String(index).padStart(5, '0')}.txt`), text);
}
console.log(`${count} passkey prompts of ~${length} tokens (seed ${seed}, ${tokens} prompt tokens) in ${v.out}`);
