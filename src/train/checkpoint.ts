// Training checkpoints that resume: one safetensors file with every layer's float64 parameters and AdamW moments
// and, in its metadata, the step reached and the settings that must not change on resume (the geometry, the
// seed, the context, the step count and batch: the data order and the schedule depend on them).
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import type { LoadedModel } from '../model/types.js';
import { SafetensorsFile } from '../model/load/safetensors.js';
import { writeSafetensors, type RawTensor } from './indexer-files.js';
import { indexerGeometry, paramLayout } from './indexer-params.js';
import type { IndexerTrainingState, TrainIndexerOptions } from './trainer.js';

/** Settings a resumed run must share with the checkpoint. */
function fixedSettings(o: TrainIndexerOptions): Record<string, number> {
  return { heads: o.heads, dim: o.dim, seed: o.seed, context: o.context, steps: o.steps, batch: o.batch };
}

export function saveCheckpoint(path: string, s: IndexerTrainingState, o: TrainIndexerOptions, model: string): void {
  const tensors: RawTensor[] = s.params.flatMap((p, i) => [
    { name: `layer.${i}.params`, dtype: 'F64' as const, shape: [p.length], data: p },
    { name: `layer.${i}.adam_m`, dtype: 'F64' as const, shape: [p.length], data: s.optim[i].m },
    { name: `layer.${i}.adam_v`, dtype: 'F64' as const, shape: [p.length], data: s.optim[i].v },
  ]);
  writeSafetensors(path, tensors, {
    step: String(s.step),
    model,
    settings: JSON.stringify(fixedSettings(o)),
  });
}

export function loadCheckpoint(path: string, model: LoadedModel, o: TrainIndexerOptions): IndexerTrainingState {
  const f = SafetensorsFile.open(path);
  const step = Number(f.metadata.step);
  if (!Number.isInteger(step) || step < 0)
    throw new InputError(`${path}: not an indexer checkpoint (no step in its metadata)`);
  const saved = JSON.parse(f.metadata.settings ?? '{}') as Record<string, number>;
  for (const [k, v] of Object.entries(fixedSettings(o)))
    if (saved[k] !== v)
      throw new InputError(
        `${path}: the checkpoint was made with --${k} ${saved[k]}, this run has ${v}; resume with the same value`,
      );
  const geometry = indexerGeometry(model.config, o.heads, o.dim);
  const size = paramLayout(geometry).size;
  const bytes = readFileSync(path);
  const vector = (name: string): Float64Array => {
    const e = f.entries.get(name);
    if (!e || e.dtype !== 'F64' || e.shape.join() !== String(size))
      throw new InputError(`${path}: tensor ${name} is missing or not F64 [${size}] (a checkpoint of another model?)`);
    return new Float64Array(bytes.buffer.slice(bytes.byteOffset + e.begin, bytes.byteOffset + e.end));
  };
  const layers = model.config.layers;
  const params = Array.from({ length: layers }, (_, i) => vector(`layer.${i}.params`));
  const optim = Array.from({ length: layers }, (_, i) => ({
    m: vector(`layer.${i}.adam_m`),
    v: vector(`layer.${i}.adam_v`),
  }));
  return { step, geometry, params, optim };
}
