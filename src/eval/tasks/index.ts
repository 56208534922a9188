// Every task by name.
import { InputError } from '../../errors.js';
import type { TaskGenerator } from '../case.js';
import { BABI_TASKS } from './babi.js';
import { LM_TASK } from './lm.js';
import { NEEDLE_TASKS } from './needle.js';
import { RULER_TASKS } from './ruler.js';

export const TASKS: TaskGenerator[] = [...NEEDLE_TASKS, ...RULER_TASKS, ...BABI_TASKS, LM_TASK];

export function taskByName(name: string): TaskGenerator {
  const t = TASKS.find((x) => x.name === name);
  if (!t) throw new InputError(`unknown eval task '${name}'; tasks: ${TASKS.map((x) => x.name).join(', ')}, cases`);
  return t;
}
