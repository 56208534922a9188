// BABILong-style (Kuratov et al. 2024): a bAbI story's facts (Weston et al. 2015, tasks qa1-qa5: one, two and
// three supporting facts, two- and three-argument relations) spread in order through filler, then its question.
import type { CaseCoordinates, QaCase, TaskContext, TaskGenerator } from '../case.js';
import { answerBudget } from '../case.js';
import { InputError } from '../../errors.js';
import { Rng } from '../rng.js';
import { fill } from '../templates.js';

function babiCase(task: number, ctx: TaskContext, c: CaseCoordinates): QaCase {
  const rng = new Rng(c.seed);
  // Long stories (qa3 runs to a hundred facts) do not fit short prompts: draw until one fills at most half.
  const questions = ctx.corpus.babi.get(task)!;
  let q = rng.pick(questions);
  let facts = q.facts.map((fact) => ctx.haystack.encode(' ' + fact));
  for (let tries = 0; facts.reduce((a, f) => a + f.length, 0) > c.length / 2; tries++) {
    if (tries === 200) throw new InputError(`qa${task}: no story fits half of ${c.length} tokens`);
    q = rng.pick(questions);
    facts = q.facts.map((fact) => ctx.haystack.encode(' ' + fact));
  }
  const depths = facts.map(() => rng.next()).sort((a, b) => a - b);
  const inserts = facts.map((ids, i) => ({ depth: depths[i], ids }));
  const tail = ctx.haystack.encode(fill(ctx.templates.babiQuestion, { question: q.question }));
  const built = ctx.haystack.build(c.length, inserts, tail, rng, ctx.bos);
  const answers = q.answer.split(',');
  return {
    ...c,
    kind: 'qa',
    turns: [{ ids: built.ids, answers, maxNewTokens: answerBudget(ctx, answers) }],
    insertAt: built.insertAt,
    fillerCut: built.fillerCut,
    fillerTokens: built.fillerTokens,
  };
}

export const BABI_TASKS: TaskGenerator[] = [1, 2, 3, 4, 5].map((n) => ({
  name: `qa${n}`,
  about: `bAbI qa${n} facts in filler (BABILong)`,
  usesDepth: false,
  make: (ctx, c) => babiCase(n, ctx, c),
}));
