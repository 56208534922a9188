// `longctx plan`: KV-cache, activation and weight bytes worked out by hand for a Llama-3.2-1B shape.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpecError } from '../src/errors.js';
import { parseHfConfig } from '../src/model/load/hf-config.js';
import { parameterCount, planModel } from '../src/model/plan.js';
import { tinyConfigJson, writeTinyModel, TINY } from './hf-fixture.js';

const llama1b = parseHfConfig({
  model_type: 'llama',
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64,
  vocab_size: 128256,
  tie_word_embeddings: true,
});
const MiB = 1024 * 1024;

describe('plan', () => {
  it('names the kernel of each layer method for prefill and decoding, with the reason, per device profile', () => {
    const flash = planModel(llama1b, { context: 131072, attention: 'flash' }).groups[0].kernels!;
    assert.match(flash.prefill, /^flash: tc2 \(128 x 32 tiles\): f16 tensor cores/);
    assert.match(flash.decode, /^flash: split-kv-decode decode-v4 \(64 splits of 2048 keys\)/);
    const f32 = planModel(llama1b, { context: 131072, attention: 'flash', dtype: 'f32' }).groups[0].kernels!;
    assert.match(f32.prefill, /^flash: portable .*not subgroup-matrix \(f32 storage \(needs f16\)\)/);
    const portable = planModel(llama1b, { context: 131072, attention: 'flash', device: 'portable' }).groups[0].kernels!;
    assert.match(portable.prefill, /no f16 subgroup matrices/);
    const hybrid = planModel(llama1b, { context: 131072, attention: 'hybrid:every=3,window=128' }).groups;
    // A 128-key window decodes over its 129 rows: too few for split-KV.
    assert.match(hybrid[1].kernels!.decode, /^flash: tc2 .*not split-kv-decode \(129 keys/);
    assert.match(
      planModel(llama1b, { context: 4096, attention: 'flash', device: 'cpu' }).groups[0].kernels!.decode,
      /cpu-tiled/,
    );
    assert.throws(() => planModel(llama1b, { context: 4096, attention: 'flash', device: 'tpu' }), SpecError);
  });

  it('parameters of the 1B shape: 1,235,814,400 (Llama 3.2 1B)', () => {
    // embed 128256*2048 + final norm 2048 + 16 * (q,o 2*2048*2048 + k,v 2*2048*512 + mlp 3*2048*8192 + 2 norms 2*2048)
    assert.equal(
      parameterCount(llama1b),
      128256 * 2048 + 2048 + 16 * (2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 8192 + 2 * 2048),
    );
    assert.equal(parameterCount(llama1b), 1235814400);
  });

  it('dense/flash KV: 2 * layers * kvHeads * N * headDim * bytes', () => {
    const p = planModel(llama1b, { context: 131072, attention: 'flash' });
    assert.equal(p.kvCacheBytes, 2 * 16 * 8 * 131072 * 64 * 2);
    assert.equal(p.kvCacheBytes, 4096 * MiB);
    assert.equal(p.denseKvCacheBytes, p.kvCacheBytes);
    assert.equal(
      planModel(llama1b, { context: 1000, attention: 'dense', dtype: 'f32', batch: 3 }).kvCacheBytes,
      3 * 2 * 16 * 8 * 1000 * 64 * 4,
    );
  });

  it('window and sinks keep S + L + 1 rows, at most N', () => {
    const w = planModel(llama1b, { context: 131072, attention: 'window:left=1023' });
    assert.equal(w.groups[0].cachedRows, 1024);
    assert.equal(w.kvCacheBytes, 16 * 2 * 8 * 1024 * 64 * 2);
    assert.equal(
      planModel(llama1b, { context: 131072, attention: 'sinks:tokens=4,left=1023' }).groups[0].cachedRows,
      1028,
    );
    assert.equal(planModel(llama1b, { context: 100, attention: 'window:left=1023' }).groups[0].cachedRows, 100);
  });

  it('hybrid: per layer, global every E', () => {
    const p = planModel(llama1b, { context: 131072, attention: 'hybrid:every=4,window=1024' });
    assert.deepEqual(
      p.groups.map((g) => [g.method, g.layers, g.cachedRows]),
      [
        ['flash', 4, 131072],
        ['window:left=1024', 12, 1025],
      ],
    );
    assert.equal(p.kvCacheBytes, (4 * 131072 + 12 * 1025) * 2 * 8 * 64 * 2);
  });

  it('CCA: floor(N/g) cores + a raw ring of w + g - 1; about 7% of dense at 128K', () => {
    const p = planModel(llama1b, { context: 131072, attention: 'cca:group=16,window=1024' });
    assert.equal(p.groups[0].cachedRows, 8192 + 1039);
    assert.equal(p.kvCacheBytes, 16 * (8192 + 1039) * 2 * 8 * 64 * 2);
    assert.ok(p.kvCacheBytes / p.denseKvCacheBytes < 0.0705);
  });

  it('DSA: dense KV plus one index key of D_I per token', () => {
    const p = planModel(llama1b, { context: 65536, attention: 'dsa:topk=2048' });
    assert.equal(p.kvCacheBytes, 16 * (65536 * 2 * 8 * 64 * 2 + 65536 * 64 * 2));
  });

  it('activations: flash never holds N x N; dense holds heads x chunk x N f32 scores', () => {
    const flash = planModel(llama1b, { context: 131072, attention: 'flash', chunk: 512 });
    // hidden + residual 2*512*2048*2, MLP phase 2*512*8192*2 (larger than q,k,v,o), last logits 128256*4.
    assert.equal(flash.activationBytes, 2 * 512 * 2048 * 2 + 2 * 512 * 8192 * 2 + 128256 * 4);
    const dense = planModel(llama1b, { context: 131072, attention: 'dense', chunk: 512 });
    assert.equal(
      dense.activationBytes,
      2 * 512 * 2048 * 2 + 512 * (2 * 32 + 2 * 8) * 64 * 2 + 32 * 512 * 131072 * 4 + 128256 * 4,
    );
    assert.equal(planModel(llama1b, { context: 100, attention: 'flash' }).chunk, 100);
    assert.equal(flash.totalBytes, flash.weightBytes + flash.kvCacheBytes + flash.activationBytes);
    assert.equal(flash.weightBytes, 1235814400 * 2);
  });

  it('the default chunk follows the device: 2048 where the matmuls take tensor-core tiles, else 512', () => {
    const tc = planModel(llama1b, { context: 131072, attention: 'flash' });
    assert.equal(tc.chunk, 2048);
    assert.equal(tc.activationBytes, 2 * 2048 * 2048 * 2 + 2 * 2048 * 8192 * 2 + 128256 * 4);
    for (const device of ['lavapipe', 'portable', 'cpu'])
      assert.equal(planModel(llama1b, { context: 131072, attention: 'flash', device }).chunk, 512, device);
    // f32 storage takes no f16 tensor-core tile.
    assert.equal(planModel(llama1b, { context: 131072, attention: 'flash', dtype: 'f32' }).chunk, 512);
  });

  it('bad specs are SpecErrors', () => {
    assert.throws(() => planModel(llama1b, { context: 1024, attention: 'magic' }), SpecError);
    assert.throws(() => planModel(llama1b, { context: 1024, attention: 'window' }), SpecError);
    assert.throws(() => planModel(llama1b, { context: 0, attention: 'flash' }), SpecError);
  });
});

describe('longctx plan (CLI)', () => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, ['dist/src/cli/main.js', 'plan', ...args], { encoding: 'utf8', timeout: 30_000 });

  it('a HF directory: weight bytes from the safetensors headers, --json', () => {
    const { dir, tensors } = writeTinyModel({ dtype: 'F16' });
    const r = cli(['--model', dir, '--context', '1K', '--attention', 'window:left=127', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const p = JSON.parse(r.stdout);
    assert.equal(
      p.weightBytes,
      tensors.reduce((s, t) => s + t.bytes.length, 0),
    );
    // f32 (4 bytes): plan's default is generate's --storage default.
    assert.equal(p.kvCacheBytes, TINY.layers * 128 * 2 * TINY.kvHeads * TINY.headDim * 4);
    assert.equal(p.config.layers, TINY.layers);
  });

  it('a config.json alone, human-readable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'longctx-plan-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyConfigJson()));
    const r = cli([
      '--model',
      join(dir, 'config.json'),
      '--context',
      '4096',
      '--attention',
      'hybrid:every=2,window=64',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /KV cache/);
    assert.match(r.stdout, /window:left=64/);
    assert.match(r.stdout, /from the config/);
  });

  it('bad input exits 2 with one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'longctx-plan-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyConfigJson()));
    for (const args of [
      ['--context', '1K'],
      ['--model', join(dir, 'config.json')],
      ['--model', join(dir, 'config.json'), '--context', '1K', '--attention', 'nope'],
      ['--model', join(dir, 'config.json'), '--context', '1K', '--dtype', 'f8'],
    ]) {
      const r = cli(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^longctx: \w+Error: /);
    }
  });
});
