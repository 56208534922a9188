// Eval task generators (src/eval): deterministic given a seed, each prompt within 1% of the requested token
// length (exact by construction), the answer present exactly once where it should be, needles at their
// depth; scoring and Wilson intervals; --cases and --template input.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../src/errors.js';
import { loadCorpus } from '../src/eval/corpus.js';
import { Haystack } from '../src/eval/haystack.js';
import { loadTemplates } from '../src/eval/templates.js';
import { TASKS, taskByName } from '../src/eval/tasks/index.js';
import { answerRecall, wilsonInterval } from '../src/eval/score.js';
import { readCasesFile } from '../src/eval/cases-file.js';
import { hashSeed } from '../src/eval/rng.js';
import type { QaCase, TaskContext } from '../src/eval/case.js';
import { loadModel } from '../src/model/load/load.js';
import { FIXTURE_GGUF } from './model-support.js';

const PASSKEY_DIR = fileURLToPath(new URL('../../test/fixtures/passkey-2k/', import.meta.url));
const corpus = loadCorpus();
const models = { 'passkey-2k': loadModel(PASSKEY_DIR), stories260K: loadModel(FIXTURE_GGUF) };
const contextOf = (name: keyof typeof models, template?: string): TaskContext => {
  const m = models[name];
  return {
    corpus,
    tokenizer: m.tokenizer,
    haystack: new Haystack(corpus.filler, m.tokenizer),
    templates: loadTemplates(template),
    bos: m.tokenizer.bosId,
  };
};
const count = (text: string, needle: string) => text.split(needle).length - 1;

describe('eval corpus', () => {
  it('holds back four KJV books from the filler, and reads bAbI qa1-qa5', () => {
    assert.ok(corpus.heldBack.startsWith('Isaiah 1\n'));
    assert.ok(!corpus.filler.includes('\nIsaiah 1\n') && !corpus.filler.includes('\nEzekiel 48\n'));
    assert.ok(corpus.filler.includes('\nDaniel 1\n') && corpus.filler.includes('DEVIL'));
    for (let t = 1; t <= 5; t++) assert.equal(corpus.babi.get(t)!.length, 1000, `qa${t}`);
    const q = corpus.babi.get(1)![0];
    assert.deepEqual([q.question, q.answer], ['Where is John?', 'hallway']);
  });
});

describe('task generators', () => {
  for (const name of ['passkey-2k', 'stories260K'] as const) {
    const ctx = contextOf(name);
    for (const length of name === 'passkey-2k' ? [1024, 4096] : [512, 2048])
      for (const task of TASKS)
        it(`${task.name} at ${length} (${name}): deterministic, ${length} tokens +-1%, answers where they belong`, () => {
          const coords = {
            task: task.name,
            length,
            depth: task.usesDepth ? 25 : undefined,
            index: 3,
            seed: hashSeed(7, task.name, length),
          };
          const a = task.make(ctx, coords);
          const b = task.make(contextOf(name), coords);
          assert.deepEqual(a, b, 'the same coordinates make the same case');
          const other = task.make(ctx, { ...coords, seed: coords.seed + 1 });
          assert.notDeepEqual(a, other, 'another seed makes another case');
          if (a.kind === 'lm') {
            assert.equal(a.ids.length, length);
            assert.ok(
              a.positions.length >= 16 &&
                a.positions.every((p, i) => p >= 1 && p < length && (i === 0 || p > a.positions[i - 1])),
            );
            const text = ctx.tokenizer.decode(a.ids);
            assert.ok(corpus.heldBack.includes(text.slice(20, 400)), 'language modelling reads held-back text');
            return;
          }
          const total = a.turns.reduce((s, t) => s + t.ids.length, 0);
          assert.ok(Math.abs(total - length) <= length * 0.01, `${total} tokens for ${length}`);
          assert.equal(a.turns[0].ids[0], ctx.bos);
          const prompt = ctx.tokenizer.decode(a.turns.flatMap((t) => t.ids));
          const answers = a.turns.flatMap((t) => t.answers);
          if (['passkey', 'multikey', 'multivalue', 'multiquery'].includes(task.name)) {
            for (const ans of answers) assert.equal(count(prompt, ans), 1, `${ans} once in the haystack`);
            // Depth is a share of the filler: the asked statement is cut in at 25% of it.
            const { fillerCut, fillerTokens } = a as QaCase;
            assert.ok(fillerCut!.includes(Math.round(0.25 * fillerTokens!)), `a needle at 25%: ${fillerCut}`);
          } else if (task.name === 'vt') {
            const value = /assigned the value (\d+)/.exec(prompt)![1];
            assert.equal(count(prompt, `= ${value}.`), 1, 'the value is assigned once');
            assert.ok(prompt.includes(`VAR ${answers[0]} = ${value}.`));
            for (let i = 1; i < answers.length; i++)
              assert.equal(count(prompt, `VAR ${answers[i]} = VAR ${answers[i - 1]}.`), 1);
          } else if (task.name === 'cwe' || task.name === 'fwe') {
            const words = prompt.slice(0, prompt.lastIndexOf(' Question:')).split(/\s+/).slice(1);
            const freq = (w: string) => words.filter((x) => x === w).length;
            const least = Math.min(...answers.map(freq));
            const others = words.filter((w) => /^[a-z]+$/.test(w) && !answers.includes(w));
            assert.ok(
              others.every((w) => freq(w) < least),
              'the answers are strictly the most frequent words',
            );
          } else {
            // bAbI: the answer word is in the story (facts present, in order), the question at the end.
            assert.ok(prompt.trimEnd().endsWith('Answer:'));
            assert.ok(answers.every((x) => prompt.includes(x)));
          }
        });
  }

  it('passkey: 1-4 statements, one asked, as sample() makes them', () => {
    const ctx = contextOf('passkey-2k');
    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const c = taskByName('passkey').make(ctx, {
        task: 'passkey',
        length: 1024,
        index: i,
        seed: hashSeed(1, i),
      }) as QaCase;
      const text = ctx.tokenizer.decode(c.turns[0].ids);
      const n = count(text, ' The pass key for ') - 1; // the question repeats the phrase once
      seen.add(n);
      assert.match(text, / What is the pass key for [a-z]+\? The pass key for [a-z]+ is$/);
      assert.match(c.turns[0].answers[0], /^\d{7}$/);
    }
    assert.deepEqual([...seen].sort(), [1, 2, 3, 4]);
  });

  it('templates: the ruler preset and a JSON file change the phrasing; a bad field is one InputError', () => {
    const ruler = contextOf('passkey-2k', 'ruler');
    const c = taskByName('passkey').make(ruler, { task: 'passkey', length: 1024, index: 0, seed: 5 }) as QaCase;
    assert.ok(ruler.tokenizer.decode(c.turns[0].ids).includes('special magic number'));
    const dir = mkdtempSync(join(tmpdir(), 'longctx-eval-'));
    writeFileSync(join(dir, 't.json'), JSON.stringify({ needle: ' The code of {key} is {value}.' }));
    const mine = contextOf('passkey-2k', join(dir, 't.json'));
    const d = taskByName('passkey').make(mine, { task: 'passkey', length: 1024, index: 0, seed: 5 }) as QaCase;
    assert.ok(mine.tokenizer.decode(d.turns[0].ids).includes(`is ${d.turns[0].answers[0]}.`));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ neddle: 'x' }));
    assert.throws(() => loadTemplates(join(dir, 'bad.json')), InputError);
  });

  it('--cases reads {prompt, answer} lines and refuses malformed ones', () => {
    const ctx = contextOf('passkey-2k');
    const cases = readCasesFile(join(PASSKEY_DIR, 'cases-2k.jsonl'), ctx);
    assert.equal(cases.length, 3);
    assert.ok(cases.every((c) => c.turns[0].ids.length > 2000 && /^\d{7}$/.test(c.turns[0].answers[0])));
    const dir = mkdtempSync(join(tmpdir(), 'longctx-eval-'));
    writeFileSync(join(dir, 'bad.jsonl'), '{"prompt": "x"}\n');
    assert.throws(() => readCasesFile(join(dir, 'bad.jsonl'), ctx), InputError);
  });
});

describe('scoring', () => {
  it('answers match as whole words, case-insensitively', () => {
    assert.equal(answerRecall(' 4821930.', ['4821930']), 1);
    assert.equal(answerRecall(' 94821930.', ['4821930']), 0);
    assert.equal(answerRecall('the Hallway', ['hallway', 'kitchen']), 0.5);
  });
  it('Wilson intervals', () => {
    const [lo, hi] = wilsonInterval(88, 100);
    assert.ok(Math.abs(lo - 0.8018) < 1e-3 && Math.abs(hi - 0.93) < 1e-3, `${lo} ${hi}`);
    assert.deepEqual(wilsonInterval(0, 0), [0, 1]);
    assert.ok(wilsonInterval(0, 10)[0] === 0 && Math.abs(wilsonInterval(0, 10)[1] - 0.2775) < 1e-3);
  });
});
