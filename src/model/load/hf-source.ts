// A Hugging Face model from the files of its directory picked in a browser (config.json, tokenizer.json,
// tokenizer_config.json, *.safetensors, model.safetensors.index.json): the same parsers and checks as the
// Node loader (parseHfConfig, HuggingFaceTokenizer, safetensors' parseHeader, hfWeights), each file read
// through a ByteSource in pieces: its header first, then its tensors in runs of at most PIECE_BYTES.
import { InputError } from '../../errors.js';
import type { ByteSource } from './byte-source.js';
import { PIECE_BYTES } from './gguf-source.js';
import { parseHfConfig } from './hf-config.js';
import { HuggingFaceTokenizer } from './hf-tokenizer.js';
import { hfWeights, type TensorStore } from './hf-weights.js';
import { parseHeader, type SafetensorsEntry } from './safetensors.js';
import type { LoadedModel, WeightDType, WeightTensor } from '../types.js';

const SUPPORTED: Record<string, WeightDType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

async function json(src: ByteSource): Promise<Record<string, unknown>> {
  const text = new TextDecoder().decode(await src.read(0, src.size));
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new InputError(`${src.name} is not JSON: ${(e as Error).message}`);
  }
}

async function safetensorsEntries(src: ByteSource): Promise<Map<string, SafetensorsEntry>> {
  if (src.size < 8) throw new InputError(`${src.name}: ${src.size} bytes is too short for a safetensors file`);
  const length = new DataView((await src.read(0, 8)).slice().buffer).getBigUint64(0, true);
  if (length > BigInt(src.size - 8) || length > BigInt(MAX_HEADER_BYTES))
    throw new InputError(`${src.name}: header length ${length} runs past the end of the file (${src.size} bytes)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(await src.read(8, Number(length))));
  } catch (e) {
    throw new InputError(`${src.name}: header is not JSON (${(e as Error).message})`);
  }
  return parseHeader(header, src.name, 8 + Number(length), src.size)[0];
}

/** Every tensor of the files, read in runs; a store hfWeights reads from synchronously. */
async function readTensors(files: ByteSource[], onBytes: (n: number) => void, signal?: AbortSignal) {
  const tensors = new Map<string, WeightTensor>();
  const entries = new Map<string, SafetensorsEntry>();
  for (const src of files) {
    const own = [...(await safetensorsEntries(src)).values()].sort((a, b) => a.begin - b.begin);
    for (let i = 0; i < own.length; ) {
      signal?.throwIfAborted();
      let j = i + 1;
      while (j < own.length && own[j].end - own[i].begin <= PIECE_BYTES) j++;
      const piece = await src.read(own[i].begin, own[j - 1].end - own[i].begin);
      for (const e of own.slice(i, j)) {
        if (entries.has(e.name)) throw new InputError(`tensor '${e.name}' is in two of the files`);
        entries.set(e.name, e);
        const dtype = SUPPORTED[e.dtype];
        if (dtype)
          tensors.set(e.name, {
            name: e.name,
            shape: e.shape,
            dtype,
            bytes: piece.subarray(e.begin - own[i].begin, e.end - own[i].begin),
          });
      }
      onBytes(own[j - 1].end - own[i].begin);
      i = j;
    }
  }
  return { tensors, entries };
}

export async function readHfSources(
  files: readonly ByteSource[],
  o: { onProgress?: (p: { loadedBytes: number; totalBytes: number }) => void; signal?: AbortSignal } = {},
): Promise<LoadedModel> {
  const byName = new Map(files.map((f) => [f.name.replace(/^.*\//, ''), f]));
  const dir = files[0]?.name.includes('/') ? files[0].name.replace(/\/[^/]*$/, '') : 'the picked files';
  const need = (name: string) => {
    const f = byName.get(name);
    if (!f) throw new InputError(`${dir}: no ${name} among the picked files (pick the whole model directory)`);
    return f;
  };
  const config = parseHfConfig(await json(need('config.json')), `${dir}/config.json`);
  const tokenizerConfig = byName.has('tokenizer_config.json') ? await json(byName.get('tokenizer_config.json')!) : {};
  const tokenizer = new HuggingFaceTokenizer(
    await json(need('tokenizer.json')),
    tokenizerConfig,
    { bosTokenId: config.bosTokenId, eosTokenId: config.eosTokenId },
    `${dir}/tokenizer.json`,
  );
  if (tokenizer.vocabSize > config.vocabSize)
    throw new InputError(
      `${dir}: tokenizer.json has ${tokenizer.vocabSize} tokens but config.json's vocab_size is ${config.vocabSize}`,
    );
  const shards = files.filter((f) => f.name.endsWith('.safetensors'));
  if (shards.length === 0) throw new InputError(`${dir}: no *.safetensors among the picked files`);
  const total = shards.reduce((s, f) => s + f.size, 0);
  let loaded = 0;
  const { tensors, entries } = await readTensors(
    shards,
    (n) => o.onProgress?.({ loadedBytes: (loaded += n), totalBytes: total }),
    o.signal,
  );
  const store: TensorStore = {
    dir,
    has: (name) => entries.has(name),
    entry: (name) => entries.get(name),
    read: (names) => {
      const out = new Map<string, WeightTensor>();
      for (const n of names) {
        const t = tensors.get(n);
        if (!t)
          throw new InputError(
            `${dir}: tensor '${n}' is ${entries.get(n)?.dtype ?? 'missing'}; supported: F32, F16, BF16`,
          );
        out.set(n, t);
      }
      return out;
    },
  };
  return { config, weights: hfWeights(store, config, (s) => s), tokenizer, source: dir };
}
