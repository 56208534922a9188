// Runs one fuzz case through what the CLI would do with it: load (and for models, generate two tokens
// greedily on the CPU; for arrays, attend to themselves). A typed LongctxError is a pass (the input was
// refused as it should be); any other exception is a finding.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attention } from '../attention/attention.js';
import { uniformSchedule } from '../attention/sparse.js';
import { LongctxError } from '../errors.js';
import { parseNpy } from '../io/npy.js';
import { createDecoder } from '../model/forward/create-decoder.js';
import { generate, promptTokens } from '../model/generation/generate.js';
import { checkFiniteWeights } from '../model/load/finite.js';
import { ggufModel } from '../model/load/gguf.js';
import { loadModel } from '../model/load/load.js';
import type { LoadedModel } from '../model/types.js';
import { cpuDevice } from '../runtime/device.js';
import { numel } from '../tensor.js';
import type { FuzzCase } from './cases.js';

export type Outcome = { ok: true; refused?: string } | { ok: false; error: string };

/** Writes a case's files under `dir` (a folder for null entries); returns the path to load. */
export function writeCase(c: FuzzCase, dir: string): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  if (c.kind === 'canary') return dir;
  if (c.kind === 'hf') {
    for (const [name, bytes] of Object.entries(c.files)) {
      if (bytes === null) mkdirSync(join(dir, name));
      else writeFileSync(join(dir, name), bytes);
    }
    return dir;
  }
  const file = join(dir, c.kind === 'gguf' ? 'case.gguf' : 'case.npy');
  writeFileSync(file, c.bytes);
  return file;
}

async function decodeTwo(model: LoadedModel): Promise<void> {
  checkFiniteWeights(model.weights, model.source);
  const decoder = await createDecoder(cpuDevice, model, uniformSchedule('flash'), { maxTokens: 8, chunk: 4 });
  try {
    const ids = promptTokens(model.tokenizer, 'he wor', model.tokenizer.bosId !== undefined);
    await generate(decoder, model.tokenizer, ids, { maxTokens: 2, temperature: 0 });
  } finally {
    decoder.destroy();
  }
}

function canary(what: string): void {
  const hold: unknown[] = [];
  if (what === 'hang') for (;;);
  if (what === 'oom') for (;;) hold.push(new Array(1 << 20).fill(what));
  if (what === 'abort') process.abort();
  if (what === 'untyped') throw new TypeError('a canary that throws untyped');
}

export async function runCase(c: FuzzCase, scratch: string): Promise<Outcome> {
  try {
    if (c.kind === 'gguf')
      await decodeTwo(ggufModel(Buffer.from(c.bytes.buffer, c.bytes.byteOffset, c.bytes.byteLength), 'case.gguf'));
    else if (c.kind === 'hf') await decodeTwo(loadModel(writeCase(c, scratch)));
    else if (c.kind === 'canary') canary(c.what);
    else {
      const t = parseNpy(c.bytes, 'case.npy');
      if (t.shape.length === 3 && numel(t.shape) <= 1 << 16 && t.shape[1] > 0)
        await attention(cpuDevice, t, t, t, 'flash');
    }
    return { ok: true };
  } catch (e) {
    if (e instanceof LongctxError) return { ok: true, refused: e.name };
    const err = e as Error;
    const where = err?.stack?.split('\n').slice(0, 3).join(' | ') ?? String(e);
    return { ok: false, error: `untyped ${err?.name ?? typeof e}: ${where}` };
  }
}
