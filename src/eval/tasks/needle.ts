// Needle in a haystack (Kamradt 2023; RULER's niah variants, Hsieh et al. 2024), in the model's phrasing:
// - passkey: train_passkey.py's sample(): 1-4 statements "The pass key for X is N." at random depths, one of
//   them asked (with a depth grid, the asked one sits at the requested depth, the others anywhere);
// - multikey: one asked among 8 keys (7 distractors);
// - multivalue: one key with 4 values, all asked;
// - multiquery: 4 keys, 2 asked one after another (the second after the model's own first answer).
import type { CaseCoordinates, QaCase, TaskContext, TaskGenerator, Turn } from '../case.js';
import { answerBudget } from '../case.js';
import { Rng } from '../rng.js';
import { fill } from '../templates.js';
import { valueTokenSpan } from '../value-span.js';

interface NeedlePlan {
  keys: number;
  valuesPerKey: number;
  asked: number;
}

const code = (rng: Rng) => String(rng.int(1_000_000, 9_999_999));

function makeNeedleCase(ctx: TaskContext, c: CaseCoordinates, plan: (rng: Rng) => NeedlePlan): QaCase {
  const rng = new Rng(c.seed);
  const { keys: nKeys, valuesPerKey, asked } = plan(rng);
  const keys = rng.sample(ctx.corpus.words, nKeys);
  const values = keys.map(() => {
    const set = new Set<string>();
    while (set.size < valuesPerKey) set.add(code(rng));
    return [...set];
  });
  const askedKeys = rng.sample([...keys.keys()], asked);
  const t = ctx.templates;
  const inserts = keys.flatMap((key, k) =>
    values[k].map((value, j) => ({
      // The first asked key's first value goes to the requested depth; every other statement anywhere.
      depth: c.depth !== undefined && k === askedKeys[0] && j === 0 ? c.depth / 100 : rng.next(),
      ids: ctx.haystack.encode(fill(t.needle, { key, value })),
    })),
  );
  const insertOf = (k: number, j: number) => k * valuesPerKey + j;
  const question = (k: number) =>
    ctx.haystack.encode(fill(valuesPerKey > 1 ? t.valuesQuestion : t.question, { key: keys[k] }));
  const tails = askedKeys.map(question);
  const later = tails.slice(1).reduce((a, x) => a + x.length, 0);
  const built = ctx.haystack.build(c.length - later, inserts, tails[0], rng, ctx.bos);
  const turns: Turn[] = askedKeys.map((k, i) => ({
    ids: i === 0 ? built.ids : tails[i],
    answers: values[k],
    // A turn with another after it stops where its answer " N." ends, so the next question follows it as in
    // training (seq += question; seq += answer; seq += next question); the last turn keeps some slack.
    maxNewTokens:
      i + 1 < askedKeys.length ? ctx.haystack.encode(` ${values[k].join(', ')}.`).length : answerBudget(ctx, values[k]),
  }));
  // Each asked value's own tokens in the prompt (what a retrieval measurement looks for; eval/needle-*.ts).
  const answerSpans = askedKeys.flatMap((k) =>
    values[k].map((value, j): [number, number] => {
      const [from, to] = valueTokenSpan(ctx.tokenizer, inserts[insertOf(k, j)].ids, value);
      const at = built.insertAt[insertOf(k, j)];
      return [at + from, at + to];
    }),
  );
  return {
    ...c,
    kind: 'qa',
    turns,
    answerSpans,
    insertAt: built.insertAt,
    fillerCut: built.fillerCut,
    fillerTokens: built.fillerTokens,
  };
}

function needleTask(name: string, about: string, plan: (rng: Rng) => NeedlePlan): TaskGenerator {
  return { name, about, usesDepth: true, make: (ctx, c) => makeNeedleCase(ctx, c, plan) };
}

export const NEEDLE_TASKS: TaskGenerator[] = [
  needleTask('passkey', "passkey-2k's own format: 1-4 pass keys in filler, one asked", (rng) => ({
    keys: rng.int(1, 4),
    valuesPerKey: 1,
    asked: 1,
  })),
  needleTask('multikey', 'one key asked among 8 (7 distractors)', () => ({ keys: 8, valuesPerKey: 1, asked: 1 })),
  needleTask('multivalue', 'one key with 4 values, all asked', () => ({ keys: 1, valuesPerKey: 4, asked: 1 })),
  needleTask('multiquery', '4 keys, 2 asked in turn', () => ({ keys: 4, valuesPerKey: 1, asked: 2 })),
];
