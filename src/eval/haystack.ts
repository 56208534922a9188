// Prompts assembled at the token level, as train_passkey.py's sample() does: filler token ids cut from a
// random line of the corpus, with the tokenised statements spliced in at chosen depths, then the question.
// Token lengths are therefore exact (BOS + filler + inserts + question = the requested length).
import { InputError } from '../errors.js';
import type { Tokenizer } from '../model/types.js';
import type { Rng } from './rng.js';

export interface Insert {
  /** Where in the filler, 0 (start) .. 1 (end, just before the question). */
  depth: number;
  ids: number[];
}

export interface BuiltPrompt {
  ids: number[];
  /** Where each insert starts in ids. */
  insertAt: number[];
  /** Where each insert was cut into the filler (0..fillerTokens): its depth in tokens. */
  fillerCut: number[];
  fillerTokens: number;
}

export class Haystack {
  private charsPerToken = 0;
  private readonly cache = new Map<string, number[]>();

  constructor(
    readonly text: string,
    readonly tokenizer: Tokenizer,
  ) {}

  /** Token ids of a short string, cached (needles, words and questions repeat). */
  encode(s: string): number[] {
    let ids = this.cache.get(s);
    if (!ids) {
      ids = this.tokenizer.encode(s);
      if (this.cache.size < 100_000) this.cache.set(s, ids);
    }
    return ids;
  }

  /** n consecutive filler tokens starting at a random line of the text. */
  tokens(n: number, rng: Rng, text = this.text): number[] {
    if (n <= 0) return [];
    // The ratio comes from the filler alone, whatever text is asked for, so a case never depends on which
    // case ran before it.
    if (this.charsPerToken === 0) {
      const probe = this.text.slice(0, 20000);
      this.charsPerToken = probe.length / Math.max(1, this.tokenizer.encode(probe).length);
    }
    let chars = Math.ceil(n * this.charsPerToken * 1.2) + 256;
    if (chars >= text.length) throw new InputError(`the filler text is too short for ${n} tokens`);
    const at = rng.int(0, text.length - chars - 1);
    const lineStart = text.lastIndexOf('\n', at) + 1;
    for (;;) {
      const ids = this.tokenizer.encode(text.slice(lineStart, lineStart + chars));
      // The last token may be cut mid-word by the slice: drop one to stay on text the tokenizer saw whole.
      if (ids.length > n) return ids.slice(0, n);
      if (lineStart + chars >= text.length) throw new InputError(`the filler text is too short for ${n} tokens`);
      chars = Math.min(text.length - lineStart, Math.ceil(chars * 1.5));
    }
  }

  /**
   * BOS (if any) + filler with the inserts at their depths + tail, exactly `length` tokens. Inserts at the same
   * depth keep their order. Returns the ids and where each insert starts.
   */
  build(length: number, inserts: Insert[], tail: number[], rng: Rng, bos?: number): BuiltPrompt {
    const head = bos === undefined ? [] : [bos];
    const used = head.length + tail.length + inserts.reduce((a, x) => a + x.ids.length, 0);
    const budget = length - used;
    if (budget < 0)
      throw new InputError(
        `a ${length}-token prompt cannot hold this task's ${used} tokens of statements and question`,
      );
    const filler = this.tokens(budget, rng);
    const order = inserts.map((x, i) => ({ ...x, i, cut: Math.round(Math.min(1, Math.max(0, x.depth)) * budget) }));
    order.sort((a, b) => a.cut - b.cut || a.i - b.i);
    const ids = head.slice();
    const insertAt = new Array<number>(inserts.length);
    const fillerCut = new Array<number>(inserts.length);
    let prev = 0;
    for (const x of order) {
      for (let j = prev; j < x.cut; j++) ids.push(filler[j]);
      prev = x.cut;
      insertAt[x.i] = ids.length;
      fillerCut[x.i] = x.cut;
      for (const id of x.ids) ids.push(id);
    }
    for (let j = prev; j < budget; j++) ids.push(filler[j]);
    for (const id of tail) ids.push(id);
    return { ids, insertAt, fillerCut, fillerTokens: budget };
  }
}
