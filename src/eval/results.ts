// One finished case as a line of results.jsonl, appended as soon as it finishes: a killed run keeps every
// case it finished, and a rerun over the same folder skips them (the key names the case and configuration).
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { InputError } from '../errors.js';

export interface CaseResult {
  key: string;
  config: string;
  attention: string;
  rope: string;
  positions: string;
  task: string;
  length: number;
  depth: number | null;
  index: number;
  seed: number;
  /** Share of the answers found (0..1); `correct` when all were. */
  score: number;
  correct: boolean;
  answers: string[];
  output: string;
  promptTokens: number;
  seconds: number;
  cacheBytes: number;
  /** Where it ran (the device's name). */
  device?: string;
  /** Language modelling: [position, loss in nats]. */
  losses?: [number, number][];
}

export function resultKey(
  config: string,
  task: string,
  length: number,
  depth: number | undefined,
  index: number,
  seed: number,
) {
  return [config, task, length, depth ?? '-', index, seed].join('|');
}

export function readResults(path: string): CaseResult[] {
  if (!existsSync(path)) return [];
  const rows: CaseResult[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      rows.push(JSON.parse(line) as CaseResult);
    } catch (e) {
      // A run killed mid-write leaves at most a torn last line: drop it (the case reruns), refuse anything else.
      if (i < lines.length - 2) throw new InputError(`${path} line ${i + 1} is not JSON: ${(e as Error).message}`);
    }
  });
  return rows;
}

export function appendResult(path: string, row: CaseResult): void {
  appendFileSync(path, JSON.stringify(row) + '\n');
}
