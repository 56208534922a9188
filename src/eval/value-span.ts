// Where a value's tokens sit inside a tokenised statement: the tokens whose decoded characters overlap the
// value's characters. A byte-level BPE merges a value's leading space into its first digits (" 12" "3" ...),
// so the span is the value's own tokens, that space included, and never the words around it.
import { InputError } from '../errors.js';
import type { Tokenizer } from '../model/types.js';

/** [from, to) in `ids` of the tokens covering the last occurrence of `value` in their decoded text. */
export function valueTokenSpan(tokenizer: Tokenizer, ids: readonly number[], value: string): [number, number] {
  const text = tokenizer.decode(ids);
  const at = text.lastIndexOf(value);
  if (at < 0 || value === '') throw new InputError(`'${value}' is not in the decoded statement '${text}'`);
  const end = at + value.length;
  let from = -1;
  let to = -1;
  let before = 0; // decoded characters of ids[0..i)
  for (let i = 0; i < ids.length; i++) {
    const after = tokenizer.decode(ids.slice(0, i + 1)).length;
    if (after > at && before < end) {
      if (from < 0) from = i;
      to = i + 1;
    }
    before = after;
  }
  if (from < 0) throw new InputError(`no token of the statement covers '${value}'`);
  return [from, to];
}
