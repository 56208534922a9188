// `--model PATH`: a GGUF file, or (issue 7's other loader) a Hugging Face directory.
import { existsSync, statSync } from 'node:fs';
import { InputError, UnsupportedError } from '../errors.js';
import { loadGguf } from './gguf.js';
import type { LoadedModel } from './types.js';

export function loadModel(path: string): LoadedModel {
  if (!existsSync(path)) throw new InputError(`model ${path} does not exist`);
  if (statSync(path).isDirectory()) {
    // TODO(issue 7, safetensors loader): config.json + *.safetensors + tokenizer.json.
    throw new UnsupportedError(`${path} is a directory; Hugging Face directories are not wired into loadModel yet (pass a .gguf file)`);
  }
  return loadGguf(path);
}
