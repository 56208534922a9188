// End to end on a Hugging Face layout: scripts/hf-equivalence.py --tiny writes a tiny Llama (GQA, Llama 3
// RoPE, tied, f16 safetensors), computes its logits in numpy float64, and compares ours (loader + CPU
// decoder, through scripts/logits.ts). Needs python3 with numpy; skipped where there is none.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const numpy = spawnSync('python3', ['-c', 'import numpy'], { timeout: 20_000 }).status === 0;

describe('HF equivalence script (tiny, numpy reference)', () => {
  it(
    'our logits match float64 numpy at 97 and 200 tokens',
    { skip: numpy ? false : 'python3 with numpy not found' },
    () => {
      const out = mkdtempSync(join(tmpdir(), 'longctx-hfeq-'));
      const r = spawnSync(
        'python3',
        ['scripts/hf-equivalence.py', '--tiny', '--backend', 'cpu', '--lengths', '97,200', '--out', out],
        { encoding: 'utf8', timeout: 60_000 },
      );
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
      assert.equal(results.pass, true);
      assert.ok(results.inv_freq_max_rel_diff < 1e-12);
      for (const e of Object.values(results.lengths) as { rel_max_abs_diff: number; top1_agree: number }[]) {
        assert.ok(e.rel_max_abs_diff < 1e-5, String(e.rel_max_abs_diff));
        assert.equal(e.top1_agree, 8);
      }
    },
  );

  it(
    'and it fails when the attention differs (a 10-token window)',
    { skip: numpy ? false : 'python3 with numpy not found' },
    () => {
      const out = mkdtempSync(join(tmpdir(), 'longctx-hfeq-'));
      const r = spawnSync(
        'python3',
        [
          'scripts/hf-equivalence.py',
          '--tiny',
          '--backend',
          'cpu',
          '--lengths',
          '200',
          '--attention',
          'window:left=10',
          '--out',
          out,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      assert.equal(r.status, 1, r.stdout + r.stderr);
    },
  );
});
