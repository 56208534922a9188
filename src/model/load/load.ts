// `--model PATH` -> LoadedModel: a directory in Hugging Face's layout (config.json, *.safetensors with or
// without model.safetensors.index.json, tokenizer.json), or a .gguf file. loadModelConfig reads only what
// planning needs: a config.json alone is enough there.
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InputError } from '../../errors.js';
import { checkFiniteWeights } from './finite.js';
import { loadGguf } from './gguf.js';
import { readHfConfig } from './hf-config.js';
import { HuggingFaceTokenizer } from './hf-tokenizer.js';
import { hfWeights } from './hf-weights.js';
import { SafetensorsStore } from './safetensors.js';
import type { LoadedModel, ModelConfig } from '../types.js';

function kindOf(path: string): 'dir' | 'file' {
  if (!existsSync(path)) throw new InputError(`model ${path} does not exist`);
  return statSync(path).isDirectory() ? 'dir' : 'file';
}

/** The model at `path`, its weights checked to be finite (a NaN or infinity is refused, naming the tensor). */
export function loadModel(path: string): LoadedModel {
  const model = loadUnchecked(path);
  checkFiniteWeights(model.weights, model.source);
  return model;
}

function loadUnchecked(path: string): LoadedModel {
  if (kindOf(path) === 'dir') return loadHfModel(path);
  if (path.toLowerCase().endsWith('.gguf')) return loadGguf(path);
  throw new InputError(
    `model ${path}: expected a .gguf file or a Hugging Face directory (config.json, *.safetensors, tokenizer.json)`,
  );
}

export function loadHfModel(dir: string): LoadedModel {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath))
    throw new InputError(
      `${dir}: no config.json (a Hugging Face model directory has config.json, *.safetensors and tokenizer.json)`,
    );
  const config = readHfConfig(configPath);
  const tokenizer = HuggingFaceTokenizer.fromDirectory(dir, {
    bosTokenId: config.bosTokenId,
    eosTokenId: config.eosTokenId,
  });
  // The embedding may be padded beyond the tokenizer (Qwen2: 151936 rows, 151665 tokens), never the reverse.
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new InputError(
      `${dir}: tokenizer.json has ${tokenizer.vocabSize} tokens but config.json's vocab_size is ${config.vocabSize}`,
    );
  }
  const weights = hfWeights(SafetensorsStore.openDirectory(dir), config);
  return { config, weights, tokenizer, source: dir };
}

/** The config alone, for planning: a HF directory, its config.json, or a .gguf file. */
export function loadModelConfig(path: string): ModelConfig {
  if (kindOf(path) === 'dir') return readHfConfig(join(path, 'config.json'));
  if (basename(path).toLowerCase().endsWith('.json')) return readHfConfig(path);
  return loadModel(path).config;
}
