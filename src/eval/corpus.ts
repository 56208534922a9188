// The texts tasks are built from (data/, see data/README.md): haystack filler from the KJV and The Devil's
// Dictionary, four KJV books held back for the language-modelling task (never filler in the same run), and
// the bAbI qa1-qa5 stories. Read once per run.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../errors.js';

/** Books the language-modelling task reads (about 662 KB: 190K tokens of passkey-2k's tokenizer). */
export const HELD_BACK_BOOKS = ['Isaiah', 'Jeremiah', 'Lamentations', 'Ezekiel'] as const;

export interface BabiQuestion {
  /** The story's facts before the question, in order. */
  facts: string[];
  question: string;
  answer: string;
}

export interface Corpus {
  /** KJV without the held-back books, then The Devil's Dictionary. */
  filler: string;
  /** The held-back books, in order. */
  heldBack: string;
  /** Lower-case words of 4-9 letters from the filler, sorted and distinct: keys, variable names, list words. */
  words: string[];
  /** bAbI test questions per task number 1-5. */
  babi: Map<number, BabiQuestion[]>;
}

/** data/ beside the package (dist/src/eval -> the repository root). */
export function defaultDataDir(): string {
  return fileURLToPath(new URL('../../../data/', import.meta.url));
}

/** Splits the KJV at its book headings ("Genesis 1" on a line of its own): [book, text][] in order. */
export function kjvBooks(kjv: string): [string, string][] {
  const starts: [string, number][] = [];
  for (const m of kjv.matchAll(/^(\S[^\n]*?) 1\n/gm)) starts.push([m[1], m.index]);
  return starts.map(([name, at], i) => [name, kjv.slice(at, i + 1 < starts.length ? starts[i + 1][1] : kjv.length)]);
}

export function parseBabi(text: string): BabiQuestion[] {
  const out: BabiQuestion[] = [];
  let facts: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+) (.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === '1') facts = [];
    // Question lines end with answer and supporting fact ids, tab-separated (this copy of qa1 uses '|').
    const [sentence, answer] = m[2].split(/\t|\|/);
    if (answer === undefined) facts.push(sentence.trim());
    else out.push({ facts: facts.slice(), question: sentence.trim(), answer: answer.trim() });
  }
  return out;
}

export function loadCorpus(dir = defaultDataDir()): Corpus {
  const read = (name: string) => {
    const path = join(dir, name);
    if (!existsSync(path)) throw new InputError(`eval data ${path} is missing (see data/README.md)`);
    return readFileSync(path, 'utf8');
  };
  const books = kjvBooks(read('kjv.txt'));
  const held = new Set<string>(HELD_BACK_BOOKS);
  if (books.filter(([b]) => held.has(b)).length !== held.size)
    throw new InputError(`kjv.txt lacks one of the held-back books ${HELD_BACK_BOOKS.join(', ')}`);
  const filler = books
    .filter(([b]) => !held.has(b))
    .map(([, t]) => t)
    .join('')
    .concat('\n', read('devils_dictionary.txt'));
  const heldBack = books
    .filter(([b]) => held.has(b))
    .map(([, t]) => t)
    .join('');
  const words = [...new Set(filler.toLowerCase().split(/\s+/))].filter((w) => /^[a-z]{4,9}$/.test(w)).sort();
  const babi = new Map<number, BabiQuestion[]>();
  const babiDir = join(dir, 'babi');
  for (let task = 1; task <= 5; task++) {
    const file = existsSync(babiDir) && readdirSync(babiDir).find((f) => f.startsWith(`qa${task}_`));
    if (!file) throw new InputError(`bAbI task ${task} is missing from ${babiDir}`);
    babi.set(task, parseBabi(read(join('babi', file))));
  }
  return { filler, heldBack, words, babi };
}
