// What a task generator makes: a case is a pure function of its coordinates (task, length, depth, index,
// seed). A question-answering case is one or more turns (multi-query asks again after the model's own
// answer); a language-modelling case is a text and the positions whose next-token loss is measured.
import type { Corpus } from './corpus.js';
import type { Haystack } from './haystack.js';
import type { Templates } from './templates.js';
import type { Tokenizer } from '../model/types.js';

export interface Turn {
  /** Tokens fed before generating (the first turn's start with BOS). */
  ids: number[];
  /** Strings the generated text must contain, each as a whole word. */
  answers: string[];
  maxNewTokens: number;
}

export interface CaseCoordinates {
  task: string;
  /** Requested prompt length in tokens (BOS and question included). */
  length: number;
  /** Needle depth in percent, for the tasks that take one. */
  depth?: number;
  index: number;
  seed: number;
}

export interface QaCase extends CaseCoordinates {
  kind: 'qa';
  turns: Turn[];
  /** Where, in the first turn's ids, each inserted statement starts (checks and plots). */
  insertAt?: number[];
  /** [from, to) in the first turn's ids of each asked value's tokens (needle tasks), asked order. */
  answerSpans?: [number, number][];
  /** Where each statement was cut into the filler, and the filler's length (depth = cut / tokens). */
  fillerCut?: number[];
  fillerTokens?: number;
}

export interface LmCase extends CaseCoordinates {
  kind: 'lm';
  ids: number[];
  /** Ascending positions p: the loss of ids[p] given ids[0..p). */
  positions: number[];
}

export type EvalCase = QaCase | LmCase;

export interface TaskContext {
  corpus: Corpus;
  tokenizer: Tokenizer;
  haystack: Haystack;
  templates: Templates;
  bos?: number;
}

export interface TaskGenerator {
  readonly name: string;
  readonly about: string;
  /** Takes a depth grid (needle tasks). */
  readonly usesDepth: boolean;
  make(ctx: TaskContext, c: CaseCoordinates): EvalCase;
}

/** Generation budget for answers: their tokens plus a little slack for punctuation and separators. */
export function answerBudget(ctx: TaskContext, answers: string[], separator = ', '): number {
  return ctx.haystack.encode(' ' + answers.join(separator)).length + 3;
}
