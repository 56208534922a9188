// The model a CLI bench runs: a GGUF/safetensors file (--model F) or random weights of the 1B shape or a tiny
// one (--random 1b|tiny) that take text through one token per byte, so serve-bench and session-bench time
// the same shapes without weights on the machine.
import { InputError } from '../errors.js';
import { loadModel, type Model, modelFromWeights } from '../api/model.js';
import { LLAMA_3_2_1B_SHAPE, randomModel } from '../model/load/random-model.js';
import type { LoadedModel, Tokenizer } from '../model/types.js';
import { backendOption } from './args.js';

/** One token per byte: lets a random-weight model take text prompts. */
export const byteTokenizer = (vocabSize: number): Tokenizer => ({
  vocabSize,
  bosId: 256,
  encode: (text) => [...new TextEncoder().encode(text)],
  decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids.filter((i) => i < 256))),
  // Every id prints one letter, so a random model's stream always carries text.
  tokenBytes: (id) => Uint8Array.of(97 + (id % 26)),
});

export const TINY = {
  ...LLAMA_3_2_1B_SHAPE,
  vocabSize: 512,
  hiddenSize: 64,
  intermediateSize: 128,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 16,
};

/** The model `--model F` or `--random 1b|tiny` names, on `--backend` with `--storage f16|f32`. */
export async function benchModel(v: Record<string, unknown>): Promise<Model> {
  const device = backendOption(v);
  if (v.storage !== undefined && v.storage !== 'f16' && v.storage !== 'f32')
    throw new InputError(`--storage must be f16 or f32, got '${v.storage}'`);
  const storage = v.storage === 'f16' ? 'f16' : 'f32';
  if (typeof v.model === 'string') return loadModel(v.model, { device, storage });
  const shape = v.random === '1b' ? LLAMA_3_2_1B_SHAPE : v.random === 'tiny' ? TINY : undefined;
  if (!shape) throw new InputError('give --model F or --random 1b|tiny');
  const m = randomModel(shape, 1);
  const loaded: LoadedModel = { ...m, tokenizer: byteTokenizer(shape.vocabSize) };
  return modelFromWeights(loaded, { device, storage });
}
