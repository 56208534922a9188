// The text an indexer trains on: one file, or every .txt / .md file of a directory in name order, split by
// characters into a training part and a held-back tail (the last `heldBack` share) that training never reads.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import type { Tokenizer } from '../model/types.js';

export interface TrainingText {
  train: number[];
  heldBack: number[];
  /** The files read and where the split fell, for the report. */
  description: string;
}

export function readTrainingText(
  path: string,
  tokenizer: Tokenizer,
  heldBack: number,
  maxChars?: number,
): TrainingText {
  if (!existsSync(path)) throw new InputError(`--data ${path} does not exist`);
  if (!(heldBack >= 0 && heldBack < 1)) throw new InputError(`--held-back must be in [0, 1), got ${heldBack}`);
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => /\.(txt|md)$/.test(f))
        .sort()
        .map((f) => join(path, f))
    : [path];
  if (files.length === 0) throw new InputError(`--data ${path}: a directory with no .txt or .md files`);
  let text = files.map((f) => readFileSync(f, 'utf8')).join('\n\n');
  if (maxChars !== undefined && text.length > maxChars) text = text.slice(0, maxChars);
  const cut = Math.floor(text.length * (1 - heldBack));
  return {
    train: tokenizer.encode(text.slice(0, cut)),
    heldBack: heldBack > 0 ? tokenizer.encode(text.slice(cut)) : [],
    description:
      `${files.length === 1 ? files[0] : `${files.length} files of ${path}`}: characters 0..${cut} train, ` +
      `${cut}..${text.length} held back`,
  };
}
