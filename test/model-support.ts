// Test support for the model tests: the stories260K fixture (copied from ../shared/fixtures).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const FIXTURE_DIR = fileURLToPath(new URL('../../test/fixtures/stories260K/', import.meta.url));
export const FIXTURE_GGUF = FIXTURE_DIR + 'stories260K.gguf';
export const fixtureBytes = (): Buffer => readFileSync(FIXTURE_GGUF);
export const expectedIds = (): number[] =>
  JSON.parse(readFileSync(FIXTURE_DIR + 'expected_greedy_ids_200.txt', 'utf8'));
export const expectedText = (): string => readFileSync(FIXTURE_DIR + 'expected_greedy_200.txt', 'utf8');
