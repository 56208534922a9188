// config.json of Llama, Qwen2 and Mistral, as transformers 4 and 5 write them, -> ModelConfig.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InputError, SpecError, UnsupportedError } from '../src/errors.js';
import { parseHfConfig } from '../src/model/load/hf-config.js';
import { yarnMscale } from '../src/model/positions/rope-scaling.js';

// Llama 3.2 1B's config.json as transformers 4 writes it.
const llama32 = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_size: 2048,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  vocab_size: 128256,
};

describe('HF config.json', () => {
  it('Llama 3.2 (transformers 4): llama3 RoPE, tied, eos list', () => {
    const c = parseHfConfig(llama32);
    assert.deepEqual(c, {
      architecture: 'llama',
      vocabSize: 128256,
      hiddenSize: 2048,
      intermediateSize: 8192,
      layers: 16,
      heads: 32,
      kvHeads: 8,
      headDim: 64,
      rmsNormEps: 1e-5,
      ropeTheta: 500000,
      ropeLayout: 'half',
      contextLength: 131072,
      tiedEmbeddings: true,
      attentionBias: false,
      bosTokenId: 128000,
      eosTokenId: 128001,
      rope: { kind: 'llama3', factor: 32, originalContext: 8192, lowFreqFactor: 1, highFreqFactor: 4 },
    });
  });

  it('transformers 5: rope_parameters carries theta and scaling', () => {
    const { rope_scaling: _s, rope_theta: _t, ...rest } = llama32;
    const c = parseHfConfig({
      ...rest,
      rope_parameters: {
        rope_type: 'llama3',
        rope_theta: 500000.0,
        factor: 32.0,
        high_freq_factor: 4.0,
        low_freq_factor: 1.0,
        original_max_position_embeddings: 8192,
      },
    });
    assert.equal(c.ropeTheta, 500000);
    assert.deepEqual(c.rope, {
      kind: 'llama3',
      factor: 32,
      originalContext: 8192,
      lowFreqFactor: 1,
      highFreqFactor: 4,
    });
    const plain = parseHfConfig({ ...rest, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } });
    assert.equal(plain.ropeTheta, 1e6);
    assert.deepEqual(plain.rope, { kind: 'none' });
  });

  it('Qwen2: biases on by default, head dim from hidden / heads, yarn with original context', () => {
    const c = parseHfConfig({
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      hidden_size: 896,
      intermediate_size: 4864,
      num_attention_heads: 14,
      num_hidden_layers: 24,
      num_key_value_heads: 2,
      max_position_embeddings: 32768,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000.0,
      tie_word_embeddings: true,
      vocab_size: 151936,
      bos_token_id: 151643,
      eos_token_id: 151645,
      rope_scaling: { type: 'yarn', factor: 4.0, original_max_position_embeddings: 32768 },
    });
    assert.equal(c.architecture, 'qwen2');
    assert.equal(c.headDim, 64);
    assert.equal(c.attentionBias, true);
    assert.deepEqual(c.rope, { kind: 'yarn', factor: 4, originalContext: 32768, betaFast: 32, betaSlow: 1 });
  });

  it('Mistral: defaults, untied, linear and dynamic scaling', () => {
    const base = {
      model_type: 'mistral',
      hidden_size: 4096,
      intermediate_size: 14336,
      num_attention_heads: 32,
      num_hidden_layers: 32,
      num_key_value_heads: 8,
      vocab_size: 32000,
    };
    const c = parseHfConfig(base);
    assert.equal(c.architecture, 'mistral');
    assert.equal(c.tiedEmbeddings, false);
    assert.equal(c.attentionBias, false);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.contextLength, 131072);
    assert.equal(c.headDim, 128);
    assert.deepEqual(parseHfConfig({ ...base, rope_scaling: { type: 'linear', factor: 2.0 } }).rope, {
      kind: 'linear',
      factor: 2,
    });
    assert.deepEqual(
      parseHfConfig({ ...base, max_position_embeddings: 4096, rope_scaling: { rope_type: 'dynamic', factor: 2.0 } })
        .rope,
      {
        kind: 'ntk',
        factor: 2,
        dynamic: true,
        originalContext: 4096,
      },
    );
  });

  it('YaRN: explicit attention factor, and mscale / mscale_all_dim', () => {
    const base = { ...llama32, rope_scaling: undefined };
    const a = parseHfConfig({
      ...base,
      rope_scaling: {
        rope_type: 'yarn',
        factor: 8,
        attention_factor: 1.5,
        beta_fast: 16,
        beta_slow: 2,
        original_max_position_embeddings: 4096,
      },
    });
    assert.deepEqual(a.rope, {
      kind: 'yarn',
      factor: 8,
      originalContext: 4096,
      betaFast: 16,
      betaSlow: 2,
      attentionFactor: 1.5,
    });
    const m = parseHfConfig({
      ...base,
      rope_scaling: { rope_type: 'yarn', factor: 40, mscale: 1.0, mscale_all_dim: 0.707 },
    });
    assert.ok(m.rope.kind === 'yarn');
    assert.equal(m.rope.originalContext, 131072);
    assert.equal(m.rope.attentionFactor, yarnMscale(40, 1) / yarnMscale(40, 0.707));
  });

  it('missing and invalid fields are InputErrors naming the field', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...llama32, hidden_size: undefined }, /hidden_size is missing/],
      [{ ...llama32, num_attention_heads: 0 }, /num_attention_heads must be a positive integer/],
      [{ ...llama32, num_key_value_heads: 5 }, /not a multiple/],
      [{ ...llama32, vocab_size: '128256' }, /vocab_size must be a positive integer/],
      [{ ...llama32, head_dim: 63 }, /odd/],
      [{ ...llama32, head_dim: undefined, hidden_size: 2050 }, /not a multiple of num_attention_heads/],
      [{ ...llama32, rope_theta: 'big' }, /rope_theta/],
      [{ ...llama32, rope_scaling: { rope_type: 'llama3', factor: 8 } }, /original_max_position_embeddings is missing/],
      [{ ...llama32, rope_scaling: 'llama3' }, /rope_scaling must be an object/],
      [{ ...llama32, tie_word_embeddings: 'yes' }, /tie_word_embeddings/],
      [{ ...llama32, eos_token_id: [-1] }, /eos_token_id/],
      [{ ...llama32, bos_token_id: 999999 }, /outside the vocabulary/],
      [{ ...llama32, model_type: undefined, architectures: undefined }, /what model/],
    ];
    for (const [json, message] of cases)
      assert.throws(
        () => parseHfConfig(json),
        (e: unknown) => e instanceof InputError && message.test((e as Error).message),
        String(message),
      );
    assert.throws(() => parseHfConfig([]), InputError);
    assert.throws(() => parseHfConfig(null), InputError);
  });

  it('numbers out of range (eps, RoPE base and factors) are SpecErrors, as on the command line and in GGUF', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...llama32, rms_norm_eps: 0 }, /rms_norm_eps must be a positive number, got 0/],
      [{ ...llama32, rms_norm_eps: -1e-5 }, /rms_norm_eps/],
      [{ ...llama32, rope_theta: 0 }, /rope_theta must be a number above 1, got 0/],
      [{ ...llama32, rope_scaling: { rope_type: 'linear', factor: 0.5 } }, /factor must be at least 1/],
      [{ ...llama32, rope_scaling: { rope_type: 'linear', factor: -2 } }, /factor must be a positive number/],
      [{ ...llama32, rope_scaling: { ...llama32.rope_scaling, high_freq_factor: 1 } }, /must exceed low_freq_factor/],
    ];
    for (const [json, message] of cases)
      assert.throws(
        () => parseHfConfig(json),
        (e: unknown) => e instanceof SpecError && message.test((e as Error).message),
        String(message),
      );
    // Not a number at all: the file is malformed, an InputError.
    assert.throws(
      () => parseHfConfig({ ...llama32, rms_norm_eps: 'small' }),
      (e) => !(e instanceof SpecError),
    );
  });

  it('unknown architectures and RoPE types are UnsupportedErrors', () => {
    assert.throws(() => parseHfConfig({ ...llama32, model_type: 'gpt2' }), UnsupportedError);
    assert.throws(
      () => parseHfConfig({ ...llama32, rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [1] } }),
      UnsupportedError,
    );
  });
});
