// `longctx plan`: memory of a model at a context length with a chosen attention method, before running it.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { loadModelConfig } from '../model/load/load.js';
import { formatPlan, planModel } from '../model/plan.js';
import { SafetensorsStore } from '../model/load/safetensors.js';
import { intList, parse, required } from './args.js';

export const PLAN_USAGE = `longctx plan --model F --context N [--attention SPEC] [--batch 1] [--dtype f32|f16] [--chunk 512] [--device P] [--json]
  --model F        a .gguf file, a Hugging Face directory, or a config.json alone (weights then estimated)
  --context N      tokens (e.g. 131072 or 128K)
  --attention SPEC any method of the attend grammar, or hybrid:every=E,window=W (default flash)
  --dtype          KV cache and activations: f32 (default, as generate's --storage) or f16
  --device P       the device whose kernels to name: tensor-cores (default), lavapipe, portable, cpu
  prints weights, KV cache per layer method, peak prefill activations, the total, and per layer method the
  kernel the planner picks for a prefill chunk and a decoding step, with its reason`;

/** Weight bytes from the files' headers where there are files: safetensors entries, or the GGUF's size. */
function weightBytesOf(path: string): { bytes?: number; source?: string } {
  const st = statSync(path);
  if (st.isDirectory()) {
    const hasWeights =
      existsSync(join(path, 'model.safetensors.index.json')) || existsSync(join(path, 'model.safetensors'));
    if (!hasWeights) return {};
    const store = SafetensorsStore.openDirectory(path);
    const bytes = store.names.reduce((s, n) => s + (store.entry(n)!.end - store.entry(n)!.begin), 0);
    return { bytes, source: 'safetensors headers' };
  }
  if (path.toLowerCase().endsWith('.gguf')) return { bytes: st.size, source: 'GGUF file size' };
  return {};
}

export async function planCommand(argv: string[]): Promise<void> {
  const values = parse(argv, {
    model: { type: 'string' },
    context: { type: 'string' },
    attention: { type: 'string' },
    batch: { type: 'string' },
    dtype: { type: 'string' },
    chunk: { type: 'string' },
    json: { type: 'boolean' },
    device: { type: 'string' },
  });
  const model = required(values, 'model');
  const [context, ...more] = intList(values, 'context', []);
  if (context === undefined || more.length) throw new InputError('--context takes one length (e.g. 131072 or 128K)');
  const [batch] = intList(values, 'batch', [1]);
  const [chunk] = intList(values, 'chunk', [512]);
  // The default is generate's --storage default (f32), so that plan predicts what generate allocates.
  const dtype = (values.dtype as string | undefined) ?? 'f32';
  if (dtype !== 'f16' && dtype !== 'f32') throw new InputError(`--dtype must be f16 or f32, got '${dtype}'`);
  const config = loadModelConfig(model);
  const weights = weightBytesOf(model);
  const plan = planModel(config, {
    context,
    batch,
    chunk,
    dtype,
    attention: (values.attention as string | undefined) ?? 'flash',
    weightBytes: weights.bytes,
    weightSource: weights.source,
    device: values.device as string | undefined,
  });
  process.stdout.write(
    values.json ? JSON.stringify({ model, config, ...plan }, null, 2) + '\n' : formatPlan(plan, config, model) + '\n',
  );
}
