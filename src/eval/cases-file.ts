// `--cases FILE.jsonl`: prompts made elsewhere, one JSON object a line: {"prompt": "...", "answer": "..." or
// ["...", ...]}, optionally "tokens" (the length to group it under; else its token count).
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import type { QaCase, TaskContext } from './case.js';
import { answerBudget } from './case.js';

export function readCasesFile(path: string, ctx: TaskContext): QaCase[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InputError(`cannot read --cases ${path}: ${(e as Error).message}`);
  }
  const out: QaCase[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let row: { prompt?: unknown; answer?: unknown; tokens?: unknown };
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new InputError(`--cases ${path} line ${i + 1}: not JSON (${(e as Error).message})`);
    }
    const answers = typeof row.answer === 'string' ? [row.answer] : row.answer;
    if (typeof row.prompt !== 'string' || !Array.isArray(answers) || !answers.every((a) => typeof a === 'string'))
      throw new InputError(`--cases ${path} line ${i + 1}: expected {"prompt": string, "answer": string | string[]}`);
    const ids = [...(ctx.bos === undefined ? [] : [ctx.bos]), ...ctx.tokenizer.encode(row.prompt)];
    const length = typeof row.tokens === 'number' && Number.isInteger(row.tokens) ? row.tokens : ids.length;
    out.push({
      kind: 'qa',
      task: 'cases',
      length,
      index: out.length,
      seed: 0,
      turns: [{ ids, answers: answers as string[], maxNewTokens: answerBudget(ctx, answers as string[]) }],
    });
  });
  if (out.length === 0) throw new InputError(`--cases ${path} holds no cases`);
  return out;
}
