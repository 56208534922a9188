// `longctx train-indexer` end to end through the CLI: a few steps on stories260K (context 128) lower the warm-up
// loss and report the captured attention mass on held-back text; the GGUF copy it writes is what `generate
// --attention dsa:...` then runs (its layers' plans name the trained indexer), and `plan` shows the indexer's
// bytes and its index keys. A Hugging Face directory gets indexer.safetensors, which plan finds too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURE_GGUF } from './model-support.js';
import { writeTinyModel } from './hf-fixture.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const TEXT = fileURLToPath(new URL('../../data/kjv-head.txt', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'longctx-train-cli-'));
const longctx = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 240_000 });

test('train-indexer on stories260K: the loss falls, the mass is reported, generate and plan use the indexer', () => {
  const out = join(dir, 'stories-indexer.gguf');
  const r = longctx(
    'train-indexer',
    ...['--model', FIXTURE_GGUF, '--data', TEXT, '--max-chars', '40000', '--steps', '12', '--context', '128'],
    ...['--topk', '16', '--heads', '2', '--lr', '1e-2', '--eval-samples', '8', '--out', out],
  );
  assert.equal(r.status, 0, r.stderr);
  const losses = [...r.stderr.matchAll(/^step \d+\/12 loss ([\d.]+) mass@16 ([\d.]+)/gm)].map((m) => Number(m[1]));
  assert.equal(losses.length, 12, r.stderr);
  assert.ok(losses[11] < losses[0] - 0.1, `warm-up loss ${losses[0]} -> ${losses[11]}`);
  assert.match(r.stderr, /wrote .*stories-indexer\.gguf \(H_I 2, D_I 32, 5 layers\)/);
  // The mass table: each layer at B = 16 and 32, the trained indexer beside the training-free one and the oracle.
  const header = r.stdout.split('\n').find((l) => l.startsWith('| context |'))!;
  const cols = header.split('|').map((c) => c.trim());
  const rows = r.stdout.split('\n').filter((l) => /^\| 128 \| (16|32) \|/.test(l));
  assert.equal(rows.length, 10, r.stdout);
  for (const row of rows) {
    const cell = (name: string) => Number(row.split('|')[cols.indexOf(name)]);
    for (const name of ['oracle', 'indexer:4', 'trained'])
      assert.ok(cell(name) >= 0 && cell(name) <= 1.0005, `${name} in ${row}`);
    assert.ok(cell('oracle') >= cell('trained') - 1e-3, row);
  }

  const g = longctx('generate', '--model', out, '--attention', 'dsa:topk=16', '--prompt', 'Once', '--max-tokens', '8');
  assert.equal(g.status, 0, g.stderr);
  const stats = longctx(
    ...['generate', '--model', out, '--attention', 'dsa:topk=16', '--prompt', 'Once', '--max-tokens', '8'],
    ...['--stats', '--backend', 'cpu'],
  );
  assert.equal(stats.status, 0, stats.stderr);
  for (let layer = 0; layer < 5; layer++)
    assert.match(stats.stderr, new RegExp(`indexer trained \\(blk\\.${layer}\\.indexer\\.\\*\\): 2 index heads x 32`));
  const plain = longctx('generate', '--model', FIXTURE_GGUF, '--attention', 'dsa:topk=16', '--prompt', 'Once');
  assert.doesNotMatch(plain.stderr, /indexer trained/);

  // Per layer: W_q [2 x 32, 64], W_k [32, 64], W_proj [2, 64] and k_norm's weight and bias [32], in f32.
  const indexerBytes = 5 * (2 * 32 * 64 + 32 * 64 + 2 * 64 + 2 * 32) * 4;
  const p = longctx('plan', '--model', out, '--context', '512', '--attention', 'dsa:topk=16', '--json');
  assert.equal(p.status, 0, p.stderr);
  const plan = JSON.parse(p.stdout);
  assert.deepEqual(
    { layers: plan.indexer.layers, heads: plan.indexer.heads, dim: plan.indexer.dim, bytes: plan.indexer.weightBytes },
    { layers: 5, heads: 2, dim: 32, bytes: indexerBytes },
  );
  assert.equal(plan.groups[0].indexKeyBytesPerLayer, 512 * 32 * 4, 'one f32 index key of D_I per token');
  const text = longctx('plan', '--model', out, '--context', '512', '--attention', 'dsa:topk=16');
  assert.match(text.stdout, /^DSA indexer +123\.75 KiB +trained .*5 layers, 2 heads x 32.*index keys 320\.00 KiB/m);
  assert.doesNotMatch(longctx('plan', '--model', FIXTURE_GGUF, '--context', '512').stdout, /DSA indexer/);
});

test('a Hugging Face directory gets indexer.safetensors, and plan counts it beside the weights', () => {
  const { dir: model } = writeTinyModel();
  const r = longctx(
    ...['train-indexer', '--model', model, '--data', TEXT, '--max-chars', '20000', '--steps', '2'],
    ...['--context', '64', '--topk', '8', '--heads', '2', '--eval-samples', '0'],
  );
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(join(model, 'indexer.safetensors')));
  const p = longctx('plan', '--model', model, '--context', '64', '--attention', 'dsa:topk=8', '--json');
  assert.equal(p.status, 0, p.stderr);
  const plan = JSON.parse(p.stdout);
  // TINY: hidden 16, 2 layers; D_I = max(head dim, 32) = 32.
  assert.deepEqual(
    [plan.indexer.layers, plan.indexer.heads, plan.indexer.dim, plan.indexer.inWeights],
    [2, 2, 32, false],
  );
  assert.equal(plan.indexer.weightBytes, 2 * (2 * 32 * 16 + 32 * 16 + 2 * 16 + 2 * 32) * 4);
  assert.equal(plan.totalBytes, plan.weightBytes + plan.indexer.weightBytes + plan.kvCacheBytes + plan.activationBytes);
});
