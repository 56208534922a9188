// `longctx eval` end to end on the CPU, kept small for CI (well under 3 minutes): stories260K at 256-512
// tokens over several tasks and two configurations, resumed after a kill; passkey-2k at 1K (plain RoPE, a case
// it answers) and at 2K under Self-Extend; the report's tables and SVGs; the CLI writes its files.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuDevice } from '../src/runtime/device.js';
import { loadCorpus } from '../src/eval/corpus.js';
import { Haystack } from '../src/eval/haystack.js';
import { loadTemplates } from '../src/eval/templates.js';
import { runEval, type EvalGrid } from '../src/eval/runner.js';
import { buildReport, reportMarkdown, reportSvgs } from '../src/eval/report.js';
import type { TaskContext } from '../src/eval/case.js';
import { loadModel } from '../src/model/load/load.js';
import type { LoadedModel } from '../src/model/types.js';
import { FIXTURE_GGUF } from './model-support.js';
import { webgpuDevice } from './support.js';

const PASSKEY_DIR = fileURLToPath(new URL('../../test/fixtures/passkey-2k/', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const corpus = loadCorpus();
const contextOf = (m: LoadedModel): TaskContext => ({
  corpus,
  tokenizer: m.tokenizer,
  haystack: new Haystack(corpus.filler, m.tokenizer),
  templates: loadTemplates(undefined),
  bos: m.tokenizer.bosId,
});
const tmp = () => mkdtempSync(join(tmpdir(), 'longctx-eval-run-'));

describe('eval runs (CPU)', () => {
  const stories = loadModel(FIXTURE_GGUF);
  const grid: EvalGrid = {
    configs: [
      { attention: 'flash', rope: 'model', positions: 'none' },
      { attention: 'window:left=64', rope: 'model', positions: 'none' },
    ],
    tasks: ['passkey', 'vt', 'qa1', 'lm'],
    lengths: [256, 512],
    depths: [0, 100],
    casesPerCell: 1,
    seed: 3,
  };
  it('stories260K at 256-512: every cell once, a rerun skips them, a killed run resumes where it stopped', async () => {
    const outDir = tmp();
    const ctx = contextOf(stories);
    const first = await runEval(stories, cpuDevice, grid, ctx, { outDir, maxTokens: 600, quiet: true });
    // passkey: 2 lengths x 2 depths; vt, qa1, lm: 2 lengths; times 2 configurations.
    assert.equal(first.length, 2 * (4 + 2 + 2 + 2));
    assert.ok(first.every((r) => r.promptTokens === r.length && r.seconds > 0 && r.cacheBytes > 0));
    const lm = first.filter((r) => r.task === 'lm');
    assert.ok(lm.every((r) => r.losses!.length >= 16 && r.losses!.every(([, l]) => l > 0 && Number.isFinite(l))));
    let ran = 0;
    await runEval(stories, cpuDevice, grid, ctx, { outDir, maxTokens: 600, quiet: true, onResult: () => ran++ });
    assert.equal(ran, 0, 'a rerun over finished results runs nothing');
    // A kill mid-write: three whole lines and a torn one.
    const path = join(outDir, 'results.jsonl');
    const lines = readFileSync(path, 'utf8').split('\n');
    writeFileSync(path, lines.slice(0, 3).join('\n') + '\n' + lines[3].slice(0, 40));
    const resumed = await runEval(stories, cpuDevice, grid, ctx, {
      outDir,
      maxTokens: 600,
      quiet: true,
      onResult: () => ran++,
    });
    assert.equal(ran, first.length - 3);
    assert.equal(resumed.length, first.length);
    // The same cases give the same outputs (greedy decoding of deterministic prompts).
    const byKey = new Map(first.map((r) => [r.key, r.output]));
    assert.ok(resumed.every((r) => byKey.get(r.key) === r.output));

    const report = buildReport(resumed, { title: 't', device: 'cpu', model: 'stories260K', seed: 3 });
    const cell = report.accuracy.find((c) => c.task === 'passkey' && c.config === 'flash' && c.length === 256)!;
    assert.equal(cell.n, 2);
    assert.ok(cell.low <= cell.accuracy && cell.accuracy <= cell.high);
    assert.equal(report.byDepth.filter((c) => c.task === 'passkey').length, 2 * 2 * 2);
    const md = reportMarkdown(report);
    assert.match(md, /### passkey: accuracy/);
    assert.match(md, /### Language modelling/);
    const svgs = reportSvgs(report);
    assert.ok(svgs.has('accuracy-passkey.svg') && svgs.has('loss.svg') && svgs.has('heatmap-passkey-0.svg'));
    assert.equal((svgs.get('heatmap-passkey-0.svg')!.match(/<rect x=/g) ?? []).length, 4, 'a 2 x 2 heatmap');
  });

  it('passkey-2k: answers a 1K case with plain RoPE, and runs 2K under Self-Extend', async () => {
    const model = loadModel(PASSKEY_DIR);
    const outDir = tmp();
    const base = { tasks: ['passkey'], depths: [], casesPerCell: 2, seed: 1 };
    const plain = await runEval(
      model,
      cpuDevice,
      { ...base, configs: [{ attention: 'flash', rope: 'model', positions: 'none' }], lengths: [1024] },
      contextOf(model),
      { outDir, maxTokens: 2600, quiet: true },
    );
    assert.equal(plain.length, 2);
    // Case 1 of seed 1 is one the model answers (0.91 at 1K); a broken decoder or prompt misses it.
    const known = plain.find((r) => r.index === 1)!;
    assert.ok(known.correct, `passkey-2k missed its 1K case: '${known.output}' for ${known.answers}`);
    const extended = await runEval(
      model,
      cpuDevice,
      {
        ...base,
        casesPerCell: 1,
        configs: [{ attention: 'flash', rope: 'model', positions: 'self-extend:window=512,group=4' }],
        lengths: [2048],
      },
      contextOf(model),
      { outDir, maxTokens: 2600, quiet: true },
    );
    const row = extended.find((r) => r.positions !== 'none')!;
    assert.equal(row.promptTokens, 2048);
    assert.match(row.output, /\d/, `Self-Extend at 2K printed no digits: '${row.output}'`);
  });

  it('WebGPU gives the same answers and losses as the CPU (stories260K, passkey and lm at 256)', async (t) => {
    const gpu = await webgpuDevice();
    if (!gpu) return t.skip('no WebGPU adapter');
    const small: EvalGrid = { ...grid, configs: grid.configs.slice(0, 1), tasks: ['passkey', 'lm'], lengths: [256] };
    small.depths = [];
    const ctx = contextOf(stories);
    const onCpu = await runEval(stories, cpuDevice, small, ctx, { outDir: tmp(), maxTokens: 600, quiet: true });
    const onGpu = await runEval(stories, gpu, small, ctx, { outDir: tmp(), maxTokens: 600, quiet: true });
    assert.equal(onGpu.length, 2);
    for (const g of onGpu) {
      const c = onCpu.find((r) => r.key === g.key)!;
      assert.equal(g.output, c.output, g.key);
      assert.ok(Math.abs(g.score - c.score) < 1e-4, `${g.key}: ${g.score} vs ${c.score}`);
    }
  });

  it('WebGPU with f16 storage names its configuration and answers as f32 does (stories260K, passkey at 256)', async (t) => {
    const gpu = await webgpuDevice();
    if (!gpu) return t.skip('no WebGPU adapter');
    const base = grid.configs[0];
    const half: EvalGrid = {
      ...grid,
      configs: [base, { ...base, storage: 'f16' }],
      tasks: ['passkey'],
      lengths: [256],
    };
    half.depths = [];
    const rows = await runEval(stories, gpu, half, contextOf(stories), { outDir: tmp(), maxTokens: 600, quiet: true });
    const [f32, f16] = [
      rows.filter((r) => !/storage=f16/.test(r.config)),
      rows.filter((r) => /storage=f16/.test(r.config)),
    ];
    assert.ok(f32.length >= 1 && f16.length === f32.length, `${f32.length} f32 rows, ${f16.length} f16 rows`);
    for (const h of f16) {
      const same = f32.find((r) => r.key.replace(/ storage=f16/, '') === h.key.replace(/ storage=f16/, ''));
      assert.ok(same && same.key !== h.key, `f16 row ${h.key} has its own key and an f32 twin`);
      assert.equal(h.output, same!.output, h.key);
    }
    assert.throws(
      () =>
        execFileSync(
          process.execPath,
          [MAIN, 'eval', '--model', FIXTURE_GGUF, '--backend', 'cpu', '--storage', 'f16'],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        ),
      (e: { status: number; stderr: Buffer }) => e.status === 2 && /--storage f16 is for WebGPU/.test(String(e.stderr)),
    );
  });

  it('the CLI writes results, report and plots, and refuses an unknown task with one line', () => {
    const outDir = tmp();
    const out = execFileSync(
      process.execPath,
      [MAIN, 'eval', '--model', FIXTURE_GGUF, '--tasks', 'multikey,cwe', '--lengths', '256', '--cases-per', '1'].concat(
        ['--backend', 'cpu', '--out', outDir, '--rope', 'model', '--rope', 'yarn:factor=2,original=512'],
      ),
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    assert.match(out, /multikey: accuracy/);
    for (const f of ['results.jsonl', 'report.json', 'report.md', 'accuracy-multikey.svg', 'accuracy-cwe.svg'])
      assert.ok(existsSync(join(outDir, f)), f);
    assert.equal(readFileSync(join(outDir, 'results.jsonl'), 'utf8').trim().split('\n').length, 4);
    assert.ok(readdirSync(outDir).length >= 5);
    assert.throws(
      () =>
        execFileSync(process.execPath, [MAIN, 'eval', '--model', FIXTURE_GGUF, '--tasks', 'nope', '--out', tmp()], {
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      (e: { status: number; stderr: Buffer }) => e.status === 2 && /unknown eval task 'nope'/.test(String(e.stderr)),
    );
  });
});
