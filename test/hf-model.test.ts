// Hugging Face model directories: safetensors (f32, f16, bf16; shards), name mapping, tokenizer.json, and
// malformed files, all on tiny models written by test/hf-fixture.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, truncateSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, UnsupportedError } from '../src/errors.js';
import { loadModel, loadModelConfig } from '../src/model/load/load.js';
import { SafetensorsFile } from '../src/model/load/safetensors.js';
import { HuggingFaceTokenizer } from '../src/model/load/hf-tokenizer.js';
import type { LoadedModel, WeightTensor } from '../src/model/types.js';
import {
  safetensorsBytes,
  tinyConfigJson,
  tinyTokenizerJson,
  writeTinyModel,
  TINY,
  type FixtureTensor,
} from './hf-fixture.js';

function sameTensor(got: WeightTensor | undefined, want: FixtureTensor): void {
  assert.ok(got, `${want.name} loaded`);
  assert.deepEqual([...got.shape], want.shape, want.name);
  assert.equal(got.dtype, want.dtype.toLowerCase(), want.name);
  assert.deepEqual(Buffer.from(got.bytes), Buffer.from(want.bytes), `${want.name} bytes`);
}

function checkAll(model: LoadedModel, tensors: FixtureTensor[]): void {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const w = model.weights;
  sameTensor(w.tokenEmbedding, byName.get('model.embed_tokens.weight')!);
  sameTensor(w.outputNorm, byName.get('model.norm.weight')!);
  if (byName.has('lm_head.weight')) sameTensor(w.output, byName.get('lm_head.weight')!);
  else assert.equal(w.output, undefined);
  assert.equal(w.layers.length, TINY.layers);
  w.layers.forEach((l, i) => {
    const p = `model.layers.${i}.`;
    sameTensor(l.attnNorm, byName.get(`${p}input_layernorm.weight`)!);
    sameTensor(l.wq, byName.get(`${p}self_attn.q_proj.weight`)!);
    sameTensor(l.wk, byName.get(`${p}self_attn.k_proj.weight`)!);
    sameTensor(l.wv, byName.get(`${p}self_attn.v_proj.weight`)!);
    sameTensor(l.wo, byName.get(`${p}self_attn.o_proj.weight`)!);
    sameTensor(l.ffnNorm, byName.get(`${p}post_attention_layernorm.weight`)!);
    sameTensor(l.wGate, byName.get(`${p}mlp.gate_proj.weight`)!);
    sameTensor(l.wUp, byName.get(`${p}mlp.up_proj.weight`)!);
    sameTensor(l.wDown, byName.get(`${p}mlp.down_proj.weight`)!);
    for (const [key, proj] of [
      ['bq', 'q'],
      ['bk', 'k'],
      ['bv', 'v'],
    ] as const) {
      const want = byName.get(`${p}self_attn.${proj}_proj.bias`);
      if (want) sameTensor(l[key], want);
      else assert.equal(l[key], undefined);
    }
  });
}

function inputError(pattern: RegExp): (e: unknown) => boolean {
  return (e) => e instanceof InputError && pattern.test((e as Error).message);
}

describe('HF model directory', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`loads ${dtype} weights byte for byte, untied`, () => {
      const { dir, tensors } = writeTinyModel({ dtype });
      const model = loadModel(dir);
      assert.equal(model.config.architecture, 'llama');
      assert.equal(model.config.ropeLayout, 'half');
      assert.deepEqual(model.config.rope, {
        kind: 'llama3',
        factor: 8,
        originalContext: 64,
        lowFreqFactor: 1,
        highFreqFactor: 4,
      });
      checkAll(model, tensors);
    });
  }

  it('tied embeddings: no output matrix', () => {
    const { dir, tensors } = writeTinyModel({ tied: true });
    const model = loadModel(dir);
    assert.equal(model.config.tiedEmbeddings, true);
    checkAll(model, tensors);
  });

  it('sharded with model.safetensors.index.json', () => {
    const { dir, tensors } = writeTinyModel({ shards: 3, dtype: 'BF16' });
    checkAll(loadModel(dir), tensors);
  });

  it('Qwen2 biases, transformers 5 rope_parameters', () => {
    const { dir, tensors } = writeTinyModel({ architecture: 'qwen2', ropeParameters: true, tied: true });
    const model = loadModel(dir);
    assert.equal(model.config.attentionBias, true);
    assert.equal(model.config.ropeTheta, 50000);
    assert.equal(model.config.rope.kind, 'llama3');
    checkAll(model, tensors);
    assert.ok(model.weights.layers[1].bv);
  });

  it('planning reads the config alone: a directory or its config.json', () => {
    const { dir } = writeTinyModel();
    unlinkSync(join(dir, 'model.safetensors'));
    assert.equal(loadModelConfig(dir).hiddenSize, TINY.hidden);
    assert.equal(loadModelConfig(join(dir, 'config.json')).layers, TINY.layers);
    assert.throws(() => loadModel(dir), inputError(/no \*\.safetensors/));
  });
});

describe('HF tokenizer.json (byte-level BPE)', () => {
  const tok = new HuggingFaceTokenizer(tinyTokenizerJson(), { bos_token: '<s>', eos_token: { content: '</s>' } });

  it('encodes with the merges, no special tokens added', () => {
    // "hello" -> he, ll -> hell -> hello (261); " world" -> Ġw, or -> Ġwor (264), l, d.
    assert.deepEqual(tok.encode('hello world'), [261, 264, 108, 100]);
    assert.deepEqual(tok.encode(''), []);
    assert.deepEqual(tok.encode('<s>hello'), [256, 261]);
  });

  it('decodes, and gives the bytes of each token', () => {
    assert.equal(tok.decode([261, 264, 108, 100]), 'hello world');
    assert.deepEqual([...tok.tokenBytes(262)], [32, 119]);
    assert.deepEqual([...tok.tokenBytes(10)], [10]);
    assert.deepEqual([...tok.tokenBytes(0xe9)], [0xe9]);
    assert.equal(new TextDecoder().decode(tok.tokenBytes(257)), '</s>');
    // Bytes of a multi-byte character, token by token, rebuild the text.
    const ids = tok.encode('née');
    const bytes = ids.flatMap((id) => [...tok.tokenBytes(id)]);
    assert.equal(new TextDecoder().decode(Uint8Array.from(bytes)), 'née');
    assert.throws(() => tok.tokenBytes(9999), InputError);
    assert.throws(() => tok.tokenBytes(-1), InputError);
  });

  it('vocab size and special ids', () => {
    assert.equal(tok.vocabSize, 265);
    assert.equal(tok.bosId, 256);
    assert.equal(tok.eosId, 257);
    const plain = new HuggingFaceTokenizer(tinyTokenizerJson(), {}, { bosTokenId: 256, eosTokenId: 257 });
    assert.equal(plain.bosId, 256);
    assert.throws(() => new HuggingFaceTokenizer({ model: {} }), InputError);
  });
});

describe('malformed safetensors -> InputError, nothing allocated from unchecked sizes', () => {
  const good = (): FixtureTensor[] => [
    { name: 'a', dtype: 'F32', shape: [2, 3], bytes: new Uint8Array(24).fill(1) },
    { name: 'b', dtype: 'F16', shape: [4], bytes: new Uint8Array(8).fill(2) },
  ];
  const dir = writeTinyModel().dir;
  const file = (name: string, bytes: Uint8Array): string => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const withHeader = (header: unknown, dataBytes: number): Uint8Array => {
    const json = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + json.length + dataBytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    return out;
  };

  it('reads a well-formed file', () => {
    const f = SafetensorsFile.open(file('ok.safetensors', safetensorsBytes(good())));
    assert.deepEqual([...f.read(['b']).get('b')!.bytes], [2, 2, 2, 2, 2, 2, 2, 2]);
  });

  it('truncated file', () => {
    const path = file('trunc.safetensors', safetensorsBytes(good()));
    truncateSync(path, readFileSync(path).length - 3);
    assert.throws(() => SafetensorsFile.open(path), inputError(/trunc\.safetensors.*tensor 'b'.*outside/));
    truncateSync(path, 5);
    assert.throws(() => SafetensorsFile.open(path), inputError(/too short/));
  });

  it('header length beyond the file, or absurd', () => {
    const bytes = safetensorsBytes(good());
    new DataView(bytes.buffer).setBigUint64(0, 1n << 40n, true);
    assert.throws(() => SafetensorsFile.open(file('hdr.safetensors', bytes)), inputError(/runs past the end/));
    new DataView(bytes.buffer).setBigUint64(0, 0xffffffffffffffffn, true);
    assert.throws(() => SafetensorsFile.open(file('hdr2.safetensors', bytes)), inputError(/runs past the end/));
  });

  it('offsets out of range, reversed, overlapping', () => {
    const cases: [unknown, RegExp][] = [
      [{ a: { dtype: 'F32', shape: [2], data_offsets: [0, 800] } }, /outside the 8 data bytes/],
      [{ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, /outside/],
      [{ a: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } }, /not \[begin, end\]/],
      [
        {
          a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
          b: { dtype: 'F32', shape: [1], data_offsets: [2, 6] },
        },
        /overlap/,
      ],
    ];
    cases.forEach(([header, pattern], i) =>
      assert.throws(
        () => SafetensorsFile.open(file(`off${i}.safetensors`, withHeader(header, 8))),
        inputError(pattern),
      ),
    );
  });

  it('absurd or inconsistent shapes', () => {
    const cases: [unknown, RegExp][] = [
      [
        { a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } },
        /needs 4835703278458516698824704 bytes/,
      ],
      [{ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, /needs 12 bytes/],
      [{ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 8] } }, /not a list of non-negative integers/],
      [{ a: { dtype: 'F32', shape: 'big', data_offsets: [0, 8] } }, /not a list/],
      [{ a: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, /unknown dtype/],
      [{ a: 7 }, /not an object/],
      [[1, 2], /header must be a JSON object/],
    ];
    cases.forEach(([header, pattern], i) =>
      assert.throws(
        () => SafetensorsFile.open(file(`shape${i}.safetensors`, withHeader(header, 8))),
        inputError(pattern),
      ),
    );
    const notJson = withHeader({}, 0);
    notJson[8] = 0x7b;
    notJson[9] = 0x7b;
    assert.throws(() => SafetensorsFile.open(file('json.safetensors', notJson)), inputError(/not JSON/));
  });

  it('unsupported dtypes are UnsupportedErrors when read', () => {
    const f = SafetensorsFile.open(
      file('i8.safetensors', withHeader({ a: { dtype: 'I8', shape: [8], data_offsets: [0, 8] } }, 8)),
    );
    assert.throws(() => f.read(['a']), UnsupportedError);
  });

  it('a model whose tensors do not fit its config, or miss one', () => {
    const shapes = writeTinyModel();
    const cfg = tinyConfigJson();
    writeFileSync(join(shapes.dir, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 32 }));
    assert.throws(
      () => loadModel(shapes.dir),
      inputError(/gate_proj\.weight' has shape \[24, 16\], the config implies \[32, 16\]/),
    );
    const qwen = writeTinyModel();
    writeFileSync(
      join(qwen.dir, 'config.json'),
      JSON.stringify({ ...cfg, model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'] }),
    );
    assert.throws(() => loadModel(qwen.dir), inputError(/missing tensor 'model\.layers\.0\.self_attn\.q_proj\.bias'/));
    const tied = writeTinyModel({ tied: true });
    writeFileSync(join(tied.dir, 'config.json'), JSON.stringify(cfg));
    assert.throws(() => loadModel(tied.dir), inputError(/lm_head\.weight.*not tied/));
  });

  it('an index that points outside the directory or at a file without the tensor', () => {
    const { dir: d } = writeTinyModel({ shards: 2 });
    const indexPath = join(d, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8'));
    writeFileSync(
      indexPath,
      JSON.stringify({
        ...index,
        weight_map: { ...index.weight_map, 'model.norm.weight': '../elsewhere.safetensors' },
      }),
    );
    assert.throws(() => loadModel(d), inputError(/not a \.safetensors file beside the index/));
    writeFileSync(
      indexPath,
      JSON.stringify({
        ...index,
        weight_map: { ...index.weight_map, 'model.norm.weight': 'model-00001-of-00002.safetensors' },
      }),
    );
    assert.throws(() => loadModel(d), inputError(/should be in model-00001/));
    writeFileSync(indexPath, '{"weight_map": 3}');
    assert.throws(() => loadModel(d), inputError(/no weight_map/));
  });

  it('paths that are not models', () => {
    assert.throws(() => loadModel(join(dir, 'nope')), inputError(/does not exist/));
    assert.throws(() => loadModel(join(dir, 'config.json')), inputError(/expected a \.gguf file/));
  });
});
