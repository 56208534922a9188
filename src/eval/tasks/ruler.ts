// RULER-style synthetic tasks (Hsieh et al. 2024, "RULER: What's the real context size of your long-context
// language models?"):
// - vt, variable tracking: a chain "VAR A = 12345. VAR B = VAR A. ..." (4 hops) and a distractor chain spread
//   in order through filler; the answer is every name of the asked chain;
// - cwe, common-word extraction: a list of words where a few common ones repeat far more often than the rest;
//   the answer is the common words;
// - fwe, frequent-word extraction: coded words drawn from a Zeta(2) law; the answer is the 3 most frequent.
import type { CaseCoordinates, QaCase, TaskContext, TaskGenerator } from '../case.js';
import { answerBudget } from '../case.js';
import { InputError } from '../../errors.js';
import { Rng } from '../rng.js';
import { fill } from '../templates.js';

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const HOPS = 4;

function randomName(rng: Rng, alphabet: string, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[rng.int(0, alphabet.length - 1)];
  return s;
}

function variableTracking(ctx: TaskContext, c: CaseCoordinates): QaCase {
  // RULER's 4 hops and a distractor chain where they fit in half the prompt; fewer for short prompts.
  for (const [hops, chains] of [
    [HOPS, 2],
    [HOPS, 1],
    [2, 1],
  ]) {
    const made = variableChains(ctx, c, hops, chains);
    if (made) return made;
  }
  throw new InputError(`vt: a ${c.length}-token prompt cannot hold a 2-hop chain of assignments`);
}

function variableChains(ctx: TaskContext, c: CaseCoordinates, hops: number, nChains: number): QaCase | undefined {
  const rng = new Rng(c.seed);
  const names = new Set<string>();
  while (names.size < nChains * (hops + 1)) names.add(randomName(rng, LETTERS, 5));
  const all = [...names];
  const chains = Array.from({ length: nChains }, (_, i) => all.slice(i * (hops + 1), (i + 1) * (hops + 1)));
  const values = [String(rng.int(10000, 49999)), String(rng.int(50000, 99999))];
  const t = ctx.templates;
  const inserts = chains.flatMap((chain, ci) => {
    // Each chain's statements at ascending depths, so every assignment follows the one it copies.
    const depths = chain.map(() => rng.next()).sort((a, b) => a - b);
    return chain.map((name, i) => ({
      depth: depths[i],
      ids: ctx.haystack.encode(
        i === 0 ? fill(t.assignValue, { name, value: values[ci] }) : fill(t.assignName, { name, other: chain[i - 1] }),
      ),
    }));
  });
  if (inserts.reduce((a, x) => a + x.ids.length, 0) > c.length / 2) return undefined;
  const tail = ctx.haystack.encode(fill(t.variablesQuestion, { value: values[0], count: hops + 1 }));
  const built = ctx.haystack.build(c.length, inserts, tail, rng, ctx.bos);
  const answers = chains[0];
  return {
    ...c,
    kind: 'qa',
    turns: [{ ids: built.ids, answers, maxNewTokens: answerBudget(ctx, answers) }],
    insertAt: built.insertAt,
    fillerCut: built.fillerCut,
    fillerTokens: built.fillerTokens,
  };
}

/** Fills `budget` tokens with words drawn by `draw`, space-separated; returns ids and the count per word. */
function wordList(
  ctx: TaskContext,
  budget: number,
  draw: () => string,
): { ids: number[]; counts: Map<string, number> } {
  const ids: number[] = [];
  const counts = new Map<string, number>();
  for (;;) {
    const word = draw();
    const w = ctx.haystack.encode(' ' + word);
    if (ids.length + w.length > budget) break;
    for (const id of w) ids.push(id);
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  return { ids, counts };
}

function listCase(
  ctx: TaskContext,
  c: CaseCoordinates,
  rng: Rng,
  tail: number[],
  draw: () => string,
  answersOf: (counts: Map<string, number>) => string[] | undefined,
): QaCase {
  const head = ctx.bos === undefined ? [] : [ctx.bos];
  const budget = c.length - head.length - tail.length;
  for (let attempt = 0; attempt < 20; attempt++) {
    const { ids, counts } = wordList(ctx, budget, draw);
    const answers = answersOf(counts);
    if (!answers) continue;
    const pad = ctx.haystack.tokens(budget - ids.length, rng);
    const prompt = [...head, ...pad, ...ids, ...tail];
    return { ...c, kind: 'qa', turns: [{ ids: prompt, answers, maxNewTokens: answerBudget(ctx, answers) }] };
  }
  throw new InputError(`${c.task} at ${c.length} tokens: no draw had a clear answer in 20 tries (too short?)`);
}

/** The top `count` words when they are strictly more frequent than the next one, else undefined (a tie). */
function clearTop(counts: Map<string, number>, count: number): string[] | undefined {
  const sorted = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  if (sorted.length <= count || sorted[count - 1][1] <= sorted[count][1]) return undefined;
  return sorted.slice(0, count).map(([w]) => w);
}

function commonWords(ctx: TaskContext, c: CaseCoordinates): QaCase {
  const rng = new Rng(c.seed);
  const count = c.length < 1024 ? 3 : 10;
  const tail = ctx.haystack.encode(fill(ctx.templates.commonWordsQuestion, { count }));
  const words = rng.sample(ctx.corpus.words, Math.min(ctx.corpus.words.length, 4000));
  const common = words.slice(0, count);
  const rare = words.slice(count);
  // RULER: common words 30 times, the others 3 times; shorter lists keep the ratio at 10:1 (or 4:1).
  const perEntry = 2.5;
  const entries = Math.max(1, (c.length - tail.length) / perEntry);
  const commonShare = 0.3;
  const commonTimes = Math.max(4, Math.min(30, Math.floor((entries * commonShare) / count)));
  const bag: string[] = [];
  for (const w of common) for (let i = 0; i < commonTimes; i++) bag.push(w);
  const rareTimes = Math.max(1, Math.floor(commonTimes / 10));
  for (let i = 0; bag.length < entries * 1.5 && i < rare.length; i++)
    for (let j = 0; j < rareTimes; j++) bag.push(rare[i]);
  rng.shuffle(bag);
  // Drawn in order; past the bag's end, fresh rare words once each (the list's exact length is not known
  // before tokenising; clearTop checks that the common words still lead).
  let next = 0;
  return listCase(
    ctx,
    c,
    rng,
    tail,
    () => bag[next++] ?? rng.pick(rare),
    (counts) => clearTop(counts, count),
  );
}

function frequentWords(ctx: TaskContext, c: CaseCoordinates): QaCase {
  const rng = new Rng(c.seed);
  const count = 3;
  const tail = ctx.haystack.encode(fill(ctx.templates.frequentWordsQuestion, { count }));
  const vocab = new Set<string>();
  while (vocab.size < 800) vocab.add(randomName(rng, 'abcdefghijklmnopqrstuvwxyz', rng.int(3, 5)));
  const coded = [...vocab];
  // Zeta(2) truncated to the vocabulary, by inverse CDF over the normalised weights 1/r^2.
  const weights = coded.map((_, r) => 1 / (r + 1) ** 2);
  const total = weights.reduce((a, b) => a + b, 0);
  const cdf: number[] = [];
  weights.reduce((acc, w) => (cdf.push((acc + w) / total), acc + w), 0);
  const draw = () => {
    const u = rng.next();
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return coded[lo];
  };
  return listCase(ctx, c, rng, tail, draw, (counts) => clearTop(counts, count));
}

export const RULER_TASKS: TaskGenerator[] = [
  {
    name: 'vt',
    about: 'variable tracking: a 4-hop chain of assignments and a distractor chain',
    usesDepth: false,
    make: variableTracking,
  },
  { name: 'cwe', about: 'common-word extraction from a word list', usesDepth: false, make: commonWords },
  { name: 'fwe', about: 'frequent-word extraction (Zeta(2) coded words)', usesDepth: false, make: frequentWords },
];
