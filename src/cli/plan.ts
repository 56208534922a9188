// `longctx plan`: memory of a model at a context length with a chosen attention method, before running it.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { loadModel, loadModelConfig } from '../model/load/load.js';
import { formatPlan, planModel, type IndexerPlan } from '../model/plan.js';
import { SafetensorsStore } from '../model/load/safetensors.js';
import { hfIndexerNames, INDEXER_FILE } from '../model/load/hf-weights.js';
import type { LoadedModel } from '../model/types.js';
import { intList, parse, required } from './args.js';

export const PLAN_USAGE = `longctx plan --model F --context N [--attention SPEC] [--batch 1] [--dtype f32|f16] [--chunk N] [--device P] [--json]
  --model F        a .gguf file, a Hugging Face directory, or a config.json alone (weights then estimated)
  --context N      tokens (e.g. 131072 or 128K)
  --attention SPEC any method of the attend grammar, or hybrid:every=E,window=W (default flash)
  --dtype          KV cache and activations: f32 (default, as generate's --storage) or f16
  --device P       the device whose kernels to name: tensor-cores (default), lavapipe, portable, cpu
  --chunk N        prefill rows per step (default as a run on the device: 2048 on tensor cores, else 512)
  prints weights (a trained DSA indexer apart, with its index keys), KV cache per layer method, peak prefill
  activations, the total, and per layer method the kernel the planner picks for a prefill chunk and a
  decoding step, with its reason`;

const isIndexer = (name: string) => /\.indexer\./.test(name);

/** Weight bytes from the files' headers where there are files: safetensors entries (a trained indexer apart,
 * whether in model.safetensors or the indexer.safetensors beside it), or the GGUF's size. */
function weightBytesOf(path: string): { bytes?: number; source?: string; indexer?: IndexerPlan } {
  const st = statSync(path);
  if (st.isDirectory()) {
    const hasWeights =
      existsSync(join(path, 'model.safetensors.index.json')) || existsSync(join(path, 'model.safetensors'));
    if (!hasWeights) return {};
    const store = SafetensorsStore.openDirectory(path);
    const size = (s: SafetensorsStore, names: string[]) =>
      names.reduce((sum, n) => sum + (s.entry(n)!.end - s.entry(n)!.begin), 0);
    const bytes = size(
      store,
      store.names.filter((n) => !isIndexer(n)),
    );
    let ix = store;
    if (!store.names.some(isIndexer) && existsSync(join(path, INDEXER_FILE)))
      ix = SafetensorsStore.openFile(join(path, INDEXER_FILE));
    const names = ix.names.filter(isIndexer);
    const shape = (name: string) => ix.entry(name)?.shape ?? [];
    const layers = new Set(names.map((n) => n.split('.')[2])).size;
    const indexer: IndexerPlan | undefined = names.length
      ? {
          layers,
          heads: shape(hfIndexerNames(0).proj)[0] ?? 0,
          dim: shape(hfIndexerNames(0).wk)[0] ?? 0,
          weightBytes: size(ix, names),
          inWeights: false,
          source: ix === store ? 'in the safetensors' : INDEXER_FILE,
        }
      : undefined;
    return { bytes, source: 'safetensors headers', indexer };
  }
  if (path.toLowerCase().endsWith('.gguf')) return { bytes: st.size, source: 'GGUF file size' };
  return {};
}

/** A GGUF's trained indexer (blk.N.indexer.*), from the model as loaded. */
function ggufIndexer(model: LoadedModel): IndexerPlan | undefined {
  const layers = model.weights.layers.map((l) => l.indexer).filter((x) => x !== undefined);
  if (!layers.length) return undefined;
  const bytes = layers.flatMap((ix) => Object.values(ix)).reduce((s, t) => s + (t?.bytes.byteLength ?? 0), 0);
  return {
    layers: layers.length,
    heads: layers[0].proj.shape[0],
    dim: layers[0].wk.shape[0],
    weightBytes: bytes,
    inWeights: true,
    source: 'blk.N.indexer.* in the GGUF',
  };
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
  // Without --chunk, the device's default (2048 where its matmuls take tensor-core tiles, else 512), as a run takes.
  const [chunk] = intList(values, 'chunk', []);
  // The default is generate's --storage default (f32), so that plan predicts what generate allocates.
  const dtype = (values.dtype as string | undefined) ?? 'f32';
  if (dtype !== 'f16' && dtype !== 'f32') throw new InputError(`--dtype must be f16 or f32, got '${dtype}'`);
  const gguf = model.toLowerCase().endsWith('.gguf') ? loadModel(model) : undefined;
  const config = gguf ? gguf.config : loadModelConfig(model);
  const weights = weightBytesOf(model);
  const indexer = gguf ? ggufIndexer(gguf) : weights.indexer;
  const plan = planModel(config, {
    context,
    batch,
    chunk,
    dtype,
    attention: (values.attention as string | undefined) ?? 'flash',
    weightBytes: weights.bytes,
    weightSource: weights.source,
    device: values.device as string | undefined,
    indexer,
  });
  process.stdout.write(
    values.json ? JSON.stringify({ model, config, ...plan }, null, 2) + '\n' : formatPlan(plan, config, model) + '\n',
  );
}
