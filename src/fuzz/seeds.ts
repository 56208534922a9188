// Valid inputs the mutators start from: a tiny Hugging Face directory (built by tiny-hf-model.ts, the one
// builder the tests use too: config.json, model.safetensors, tokenizer.json, tokenizer_config.json, and a
// sharded variant with its index), .npy arrays, and the stories260K GGUF from the repository's fixtures
// (a real llama2.c model converted by llama.cpp).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeNpy } from '../io/npy.js';
import { tensor } from '../tensor.js';
import type { Random } from './random.js';

export function npySeed(random: Random): Uint8Array {
  const shape = [1 + random.int(3), 1 + random.int(9), 1 + random.int(17)];
  const n = shape.reduce((a, b) => a * b, 1);
  const dtype = random.chance(0.5) ? 'f32' : 'f16';
  const data = dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
  return encodeNpy(tensor(shape, dtype, data));
}

const STORIES = fileURLToPath(new URL('../../../test/fixtures/stories260K/stories260K.gguf', import.meta.url));
let ggufSeed: Buffer | undefined;

/** The GGUF seed (undefined outside a checkout, where test fixtures are not installed). */
export function ggufSeedBytes(): Buffer | undefined {
  if (ggufSeed === undefined && existsSync(STORIES)) ggufSeed = readFileSync(STORIES);
  return ggufSeed;
}
