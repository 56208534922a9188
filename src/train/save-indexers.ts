// Where a trained indexer goes: into a copy of a GGUF model (blk.N.indexer.*), or for a Hugging Face directory
// into an indexer.safetensors that the HF loader picks up from the model directory (model.layers.N.indexer.*).
import { statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { INDEXER_FILE } from '../model/load/hf-weights.js';
import { indexerTensors } from './indexer-params.js';
import { rawF32, writeGgufWithTensors, writeSafetensors } from './indexer-files.js';
import type { IndexerTrainingState } from './trainer.js';

/** The default output: `<model>-indexer.gguf` beside a GGUF, `<dir>/indexer.safetensors` in a HF directory. */
export function defaultIndexerOut(modelPath: string): string {
  return statSync(modelPath).isDirectory()
    ? join(modelPath, INDEXER_FILE)
    : modelPath.replace(/\.gguf$/i, '') + '-indexer.gguf';
}

export function saveTrainedIndexers(modelPath: string, s: IndexerTrainingState, out: string): void {
  const hf = statSync(modelPath).isDirectory();
  if (!hf && resolve(out) === resolve(modelPath))
    throw new InputError(`--out ${out} is the model itself: write the trained copy to another file`);
  const tensors = s.params.flatMap((p, layer) =>
    Object.values(indexerTensors(s.geometry, p, hf ? 'hf' : 'gguf', layer)),
  );
  if (!hf) {
    writeGgufWithTensors(modelPath, out, tensors);
    return;
  }
  if (basename(out) !== INDEXER_FILE || resolve(dirname(out)) !== resolve(modelPath))
    process.stderr.write(
      `note: the HF loader picks up ${join(modelPath, INDEXER_FILE)}; copy ${out} there to use it\n`,
    );
  writeSafetensors(out, tensors.map(rawF32), { format: 'pt', producer: 'longctx train-indexer' });
}
