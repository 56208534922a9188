// npm test's reporter (test/reporter.ts) drops Dawn's two warnings from a test file's stderr and nothing else,
// with tap's output otherwise unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import reporter from './reporter.js';

test("the tests' reporter drops Dawn's warnings from test files' stderr, split across chunks too", async () => {
  const warn = (n: string) =>
    `Warning: maxDynamic${n}BuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n`;
  const stderr = (message: string) => ({ type: 'test:stderr', data: { file: 'a.test.js', message } });
  async function* events() {
    yield stderr(`${warn('Uniform')}${warn('Storage').slice(0, 30)}`);
    yield stderr(`${warn('Storage').slice(30)}a real line\n`);
    yield stderr('Warning: something else\n');
  }
  let out = '';
  for await (const chunk of reporter(events())) out += String(chunk);
  assert.doesNotMatch(out, /artificially reduced/);
  assert.match(out, /# a real line/);
  assert.match(out, /# Warning: something else/);
});
