// Fuzz cases, each a pure function of (seed, index): a mutated GGUF (bytes in its header region, or the
// value of a metadata key or a tensor-info field found by name), a mutated Hugging Face directory (one of
// config.json, tokenizer.json, tokenizer_config.json, the safetensors header or bytes, the shard index),
// or a mutated .npy (its header text, version, length or data).
import { parseGguf } from '../model/load/gguf-reader.js';
import { mutateBytes, writeInt } from './bytes.js';
import { INTERESTING_INTS, INTERESTING_JSON, Random } from './random.js';
import { ggufSeedBytes, npySeed } from './seeds.js';
import {
  safetensorsFile,
  safetensorsHeader,
  tensorBytes,
  tinyConfigJson,
  tinyTensors,
  tinyTokenizerJson,
} from './tiny-hf-model.js';

/** 'canary' cases hang, exhaust memory or abort on purpose: they test the runner, never in a default run. */
export type FuzzKind = 'gguf' | 'hf' | 'npy' | 'canary';
export const FUZZ_KINDS: readonly FuzzKind[] = ['gguf', 'hf', 'npy'];

export type FuzzCase =
  | { kind: 'gguf'; bytes: Uint8Array; what: string }
  | { kind: 'npy'; bytes: Uint8Array; what: string }
  | { kind: 'canary'; what: 'hang' | 'oom' | 'abort' | 'untyped' | 'fine' }
  /** Files by name; a value of null is a folder where a file should be. */
  | { kind: 'hf'; files: Record<string, Uint8Array | null>; what: string };

type Json = Record<string, any>;
const text = (s: string) => new TextEncoder().encode(s);
const json = (x: unknown) => text(JSON.stringify(x));

/** Case `index` of a run with `seed`: kinds in turn, so any sample covers all three. */
export function fuzzCase(seed: number, index: number, kinds: readonly FuzzKind[] = FUZZ_KINDS): FuzzCase {
  const random = Random.forCase(seed, index);
  const kind = kinds[index % kinds.length];
  if (kind === 'gguf') return ggufCase(random);
  if (kind === 'npy') return npyCase(random);
  if (kind === 'canary') return { kind, what: (['hang', 'oom', 'abort', 'untyped', 'fine'] as const)[index % 5] };
  return hfCase(random);
}

let ggufLayout: { dataOffset: number; keys: string[]; tensors: string[] } | undefined;

function ggufCase(random: Random): FuzzCase {
  const seed = ggufSeedBytes();
  if (!seed) return npyCase(random); // an installed package has no GGUF fixture
  ggufLayout ??= (() => {
    const g = parseGguf(seed, 'seed');
    return { dataOffset: g.dataOffset, keys: [...g.metadata.keys()], tensors: g.tensors.map((t) => t.name) };
  })();
  const bytes = new Uint8Array(seed);
  const mode = random.int(3);
  if (mode === 0) {
    // The value of a named metadata key: right after its name and its u32 type.
    const key = random.pick(ggufLayout.keys);
    const at = seed.indexOf(Buffer.from(key)) + key.length;
    const value = random.pick(INTERESTING_INTS);
    if (random.chance(0.3))
      writeInt(bytes, at, random.int(14), 4); // the type
    else if (random.chance(0.5)) writeInt(bytes, at + 4, value, 4);
    else new DataView(bytes.buffer).setFloat32(at + 4, random.pick([0, -1, 1e-30, 1e30, Number.NaN, Infinity]), true);
    return { kind: 'gguf', bytes, what: `metadata ${key}` };
  }
  if (mode === 1) {
    // A tensor info: name, u32 dims, u64 dims..., u32 type, u64 offset.
    const name = random.pick(ggufLayout.tensors);
    const infoStart = seed.indexOf(Buffer.from(name), seed.indexOf(Buffer.from(ggufLayout.keys.at(-1)!)));
    const at = infoStart + name.length + random.pick([0, 4, 12, 20, 24, 28]);
    writeInt(bytes, at, random.pick(INTERESTING_INTS), random.chance(0.5) ? 4 : 8);
    return { kind: 'gguf', bytes, what: `tensor info of ${name}` };
  }
  return { kind: 'gguf', bytes: mutateBytes(random, bytes, [0, ggufLayout.dataOffset]), what: 'header bytes' };
}

const NPY_SHAPES = [
  '(4,,16,8)',
  '(0x4, 2)',
  '(4.0, 2)',
  '()',
  '(-1,)',
  '(99999999999999999999,)',
  '(2, 3',
  '4, 2',
  '(2**40, 2**40)',
  '(1,1,1,1,1,1)',
  '(0, 4, 4)',
];

function npyCase(random: Random): FuzzCase {
  const bytes = npySeed(random);
  if (random.chance(0.5)) {
    const start = 10;
    const len = bytes[8] | (bytes[9] << 8);
    let header = String.fromCharCode(...bytes.subarray(start, start + len));
    const edit = random.int(5);
    if (edit === 0) header = header.replace(/\([^)]*\)/, random.pick(NPY_SHAPES));
    else if (edit === 1)
      header = header.replace(/'<f[24]'/, random.pick(["'<f8'", "'>f4'", "'<i4'", "'|u1'", "''", "'<f4"]));
    else if (edit === 2) header = header.replace('False', random.pick(['True', 'false', '0', 'None']));
    else if (edit === 3) header = header.replace('}', random.pick(["'extra': 1, }", '} junk', "'shape': (1,), }", '']));
    else header = header.replace("'descr'", random.pick(["'descr '", 'descr', "'fortran_order'"]));
    const out = new Uint8Array(10 + header.length + (bytes.length - start - len));
    out.set(bytes.subarray(0, 10));
    new DataView(out.buffer).setUint16(8, header.length, true);
    for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i) & 0xff;
    out.set(bytes.subarray(start + len), 10 + header.length);
    return { kind: 'npy', bytes: out, what: `header edit ${edit}` };
  }
  return { kind: 'npy', bytes: mutateBytes(random, bytes, [0, 12]), what: 'bytes' };
}

/** Sets, deletes or adds a field somewhere in a JSON object (depth-first, a random path). */
function mutateJson(random: Random, root: Json, keys: string[] = []): void {
  let node: any = root;
  for (let depth = 0; depth < 3 && typeof node === 'object' && node !== null && random.chance(0.5); depth++) {
    const children = Object.keys(node).filter((k) => typeof node[k] === 'object' && node[k] !== null);
    if (!children.length) break;
    node = node[random.pick(children)];
  }
  if (typeof node !== 'object' || node === null) return;
  const names = Object.keys(node);
  const key = names.length && random.chance(0.8) ? random.pick(names) : random.pick([...keys, 'x']);
  if (random.chance(0.15)) delete node[key];
  else node[key] = random.pick(INTERESTING_JSON);
}

function hfCase(random: Random): FuzzCase {
  const tensors = tinyTensors({ seed: 1 + random.int(1 << 30) });
  const config = tinyConfigJson();
  const tokenizer = tinyTokenizerJson() as Json;
  const header = safetensorsHeader(tensors);
  const data = tensorBytes(tensors);
  const files: Record<string, Uint8Array | null> = {
    'tokenizer_config.json': json({ bos_token: '<s>', eos_token: '</s>' }),
  };
  let what: string;
  const target = random.int(6);
  if (target === 0) {
    mutateJson(random, config, ['num_hidden_layers', 'head_dim', 'rope_scaling', 'rope_parameters', 'vocab_size']);
    if (random.chance(0.3))
      config.rope_scaling = {
        rope_type: random.pick(['linear', 'yarn', 'llama3', 'dynamic', 'x']),
        factor: random.pick(INTERESTING_JSON),
      };
    what = 'config.json';
  } else if (target === 1) {
    const vocab = tokenizer.model.vocab as Json;
    const pieces = Object.keys(vocab);
    const edit = random.int(5);
    if (edit === 0) vocab[random.pick(pieces)] = random.pick(INTERESTING_JSON);
    else if (edit === 1) vocab[random.pick(pieces)] = vocab[random.pick(pieces)];
    else if (edit === 2)
      tokenizer.added_tokens.push({
        id: random.pick(INTERESTING_INTS),
        content: random.pick(['<x>', 'a', '']),
        special: random.chance(0.5),
      });
    else if (edit === 3) tokenizer.model.merges.push(random.pick(['a', 'x y z', '', 'Ġ Ġ', 'he ll']));
    else mutateJson(random, tokenizer, ['model', 'added_tokens', 'decoder', 'pre_tokenizer']);
    what = `tokenizer.json edit ${edit}`;
  } else if (target === 2) {
    const name = random.pick(Object.keys(header).filter((k) => k !== '__metadata__'));
    const entry = header[name] as Json;
    const field = random.pick(['dtype', 'shape', 'data_offsets', 'rename', 'delete']);
    if (field === 'rename') {
      header[`${name}.x`] = entry;
      delete header[name];
    } else if (field === 'delete') delete header[name];
    else if (field === 'dtype') entry.dtype = random.pick(['F16', 'BF16', 'F64', 'I8', 'Q4', 'f32', 7]);
    else if (field === 'shape')
      entry.shape = random.pick([[], [0], [2 ** 40, 2 ** 40], [-1], [1.5], 'x', [...entry.shape].reverse()]);
    else
      entry.data_offsets = entry.data_offsets.map((o: number) =>
        random.chance(0.5) ? o + random.pick([-4, -1, 1, 4, 2 ** 40]) : o,
      );
    what = `safetensors header ${field}`;
  } else what = '';
  let weights = safetensorsFile(header, data);
  if (target === 3) {
    weights = random.chance(0.5)
      ? safetensorsFile(header, data, random.pick([-1, 1, -8, 8, 2 ** 40, -(2 ** 20)]))
      : mutateBytes(random, weights, [0, 8 + JSON.stringify(header).length]);
    what = 'safetensors bytes';
  }
  files['config.json'] = json(config);
  files['tokenizer.json'] = json(tokenizer);
  if (target === 4) {
    // Two shards and an index whose weight_map is mutated.
    const half = Math.floor(tensors.length / 2);
    const [a, b] = [tensors.slice(0, half), tensors.slice(half)];
    files['model-00001-of-00002.safetensors'] = safetensorsFile(safetensorsHeader(a), tensorBytes(a));
    files['model-00002-of-00002.safetensors'] = safetensorsFile(safetensorsHeader(b), tensorBytes(b));
    const map: Json = {};
    a.forEach((t) => (map[t.name] = 'model-00001-of-00002.safetensors'));
    b.forEach((t) => (map[t.name] = 'model-00002-of-00002.safetensors'));
    const victim = random.pick(tensors).name;
    map[victim] = random.pick([
      '../x.safetensors',
      'model-00003-of-00002.safetensors',
      7,
      null,
      '',
      'model-00001-of-00002.safetensors',
    ]);
    files['model.safetensors.index.json'] = json(
      random.chance(0.2) ? { weight_map: random.pick(INTERESTING_JSON) } : { weight_map: map },
    );
    what = 'shard index';
  } else if (target === 5) {
    files['model.safetensors'] = null; // a folder where the weights should be
    what = 'model.safetensors is a folder';
  } else files['model.safetensors'] = weights;
  if (target === 0 && random.chance(0.2)) files['config.json'] = mutateBytes(random, files['config.json']!);
  return { kind: 'hf', files, what };
}
