// The phrasing of every task, so a model is asked in its own words (`--template`). The default is
// passkey-2k's training format (train_passkey.py: " The pass key for X is N." and " What is the pass key for
// X? The pass key for X is"); 'ruler' is RULER's niah wording. A JSON file may override any field.
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';

export interface Templates {
  /** A needle in the haystack: {key}, {value}. Leading space included: it is spliced between filler tokens. */
  needle: string;
  /** Asks one needle's value: {key}. The prompt ends here; the model's answer follows. */
  question: string;
  /** Asks every value of a key (multi-value): {key}. */
  valuesQuestion: string;
  /** Variable tracking: a value assigned to a name, and a name assigned to a name. */
  assignValue: string;
  assignName: string;
  /** {value}, {count}: names the chain that holds {value}. */
  variablesQuestion: string;
  /** {count}: the most common words of the list. */
  commonWordsQuestion: string;
  frequentWordsQuestion: string;
  /** BABILong: {question}. Facts are spliced as ` {fact}`. */
  babiQuestion: string;
}

export const TEMPLATE_PRESETS: Record<string, Templates> = {
  'passkey-2k': {
    needle: ' The pass key for {key} is {value}.',
    question: ' What is the pass key for {key}? The pass key for {key} is',
    valuesQuestion: ' What are all the pass keys for {key}? The pass keys for {key} are',
    assignValue: ' VAR {name} = {value}.',
    assignName: ' VAR {name} = VAR {other}.',
    variablesQuestion:
      ' Question: which {count} variables are assigned the value {value} above? Answer: the variables assigned the value {value} are',
    commonWordsQuestion:
      ' Question: what are the {count} most common words in the list above? Answer: the {count} most common words are',
    frequentWordsQuestion:
      ' Question: what are the {count} most frequent coded words in the text above? Answer: the {count} most frequent coded words are',
    babiQuestion: ' Question: {question} Answer:',
  },
};
TEMPLATE_PRESETS.ruler = {
  ...TEMPLATE_PRESETS['passkey-2k'],
  needle: ' One of the special magic numbers for {key} is: {value}.',
  question:
    ' What is the special magic number for {key} mentioned in the provided text?' +
    ' The special magic number for {key} mentioned in the provided text is',
  valuesQuestion:
    ' What are all the special magic numbers for {key} mentioned in the provided text?' +
    ' The special magic numbers for {key} mentioned in the provided text are',
};

/** A preset name, or a JSON file of fields over the default preset. */
export function loadTemplates(spec: string | undefined): Templates {
  const base = TEMPLATE_PRESETS['passkey-2k'];
  if (spec === undefined) return base;
  if (Object.hasOwn(TEMPLATE_PRESETS, spec)) return TEMPLATE_PRESETS[spec];
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(spec, 'utf8'));
  } catch (e) {
    throw new InputError(
      `--template ${spec}: neither a preset (${Object.keys(TEMPLATE_PRESETS).join(', ')}) nor a readable JSON file: ${(e as Error).message}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new InputError(`--template ${spec}: expected a JSON object of template fields`);
  const out: Templates = { ...base };
  for (const [k, v] of Object.entries(parsed)) {
    if (!Object.hasOwn(base, k))
      throw new InputError(`--template ${spec}: unknown field '${k}'; fields: ${Object.keys(base).join(', ')}`);
    if (typeof v !== 'string') throw new InputError(`--template ${spec}: field '${k}' must be a string`);
    out[k as keyof Templates] = v;
  }
  return out;
}

/** Replaces {name} placeholders; a placeholder without a value is an error (a template typo). */
export function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    if (!Object.hasOwn(values, name))
      throw new InputError(`template '${template}' uses {${name}}, which it cannot have`);
    return String(values[name]);
  });
}
