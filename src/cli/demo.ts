// `longctx demo` (npm start): dense against flash as the length grows by 8x, on the default backend.
// Dense holds every score (64x the memory for 8x the tokens); flash holds only the output state.
// Then the embedded model (stories260K, in the repository's test fixtures) generates with exact attention
// and with a 64-token window: the same opening, and the window's KV cache stays bounded.
import { formatBytes } from '../bench/report.js';
import { denseAttention } from '../attention/dense.js';
import { flashAttention } from '../attention/flash.js';
import { denseScoreBytes } from '../kernels/dense-cpu.js';
import { acquireDevice } from '../runtime/device.js';
import { maxAbsDiff, randomNormal } from '../tensor.js';
import { backendOption, intList, parse } from './args.js';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../model/load/load.js';
import { createDecoder } from '../model/forward/create-decoder.js';
import { generate, promptTokens } from '../model/generation/generate.js';
import { parseMethodSpec } from '../attention/spec.js';
import { scheduleFromSpec } from '../attention/sparse.js';
import type { Device } from '../runtime/device.js';

const DEMO_MODEL = fileURLToPath(new URL('../../../test/fixtures/stories260K/stories260K.gguf', import.meta.url));

/** Greedy generation from BOS with each method; text, speed and KV-cache bytes. */
async function modelDemo(device: Device, tokens: number): Promise<void> {
  if (!existsSync(DEMO_MODEL)) return; // an installed package carries no fixtures
  const model = loadModel(DEMO_MODEL);
  process.stdout.write(
    `\nstories260K (${model.config.layers} layers, trained at 512 tokens), greedy from BOS, ${tokens} tokens:\n`,
  );
  for (const spec of ['flash', 'window:left=64']) {
    const decoder = await createDecoder(device, model, scheduleFromSpec(parseMethodSpec(spec)), {
      maxTokens: tokens + 1,
      chunk: 64,
    });
    try {
      const r = await generate(decoder, model.tokenizer, promptTokens(model.tokenizer, ''), {
        maxTokens: tokens,
        temperature: 0,
      });
      const rate = (r.ids.length / Math.max(r.decodeSeconds, 1e-9)).toFixed(0);
      process.stdout.write(
        `\n[${spec}] ${rate} tokens/s, KV cache ${formatBytes(decoder.cacheBytes)}\n${r.text.slice(0, 240).trim()} ...\n`,
      );
    } finally {
      decoder.destroy();
    }
  }
}

export const DEMO_USAGE = `usage: longctx demo [--backend cpu|webgpu|auto] [--lengths 256,512,1024,2048] [--tokens 400]
  Dense against flash attention as the length grows (time, score memory, agreement), then the embedded
  stories260K model generating --tokens tokens with exact and windowed attention.`;

export async function demoCommand(argv: string[]): Promise<void> {
  const v = parse(argv, { backend: { type: 'string' }, lengths: { type: 'string' }, tokens: { type: 'string' } });
  const device = await acquireDevice(backendOption(v));
  const lengths = intList(v, 'lengths', [256, 512, 1024, 2048]);
  const [heads, headDim] = [4, 64];
  process.stdout.write(
    `longctx demo on ${device.name}: causal attention, ${heads} heads, head dim ${headDim}, f32\n\n`,
  );
  const rows = [['tokens', 'dense ms', 'flash ms', 'dense scores', 'flash extra', 'speed-up', 'max |dense - flash|']];
  try {
    for (const n of lengths) {
      const q = randomNormal([heads, n, headDim], n + 1);
      const k = randomNormal([heads, n, headDim], n + 2);
      const vv = randomNormal([heads, n, headDim], n + 3);
      await flashAttention(device, q, k, vv); // warm-up: compiles kernels on WebGPU
      let t = performance.now();
      const dense = await denseAttention(device, q, k, vv);
      const denseMs = performance.now() - t;
      t = performance.now();
      const flash = await flashAttention(device, q, k, vv);
      const flashMs = performance.now() - t;
      const scores = denseScoreBytes({ heads, kvHeads: heads, queries: n, keys: n, headDim, causal: true, scale: 1 });
      // Flash keeps one running max and sum per row beyond the output it must write anyway.
      const flashExtra = heads * n * 2 * 4;
      rows.push([
        String(n),
        denseMs.toFixed(1),
        flashMs.toFixed(1),
        formatBytes(scores),
        formatBytes(flashExtra),
        `${(denseMs / flashMs).toFixed(1)}x`,
        maxAbsDiff(dense.o, flash.o).toExponential(1),
      ]);
      process.stderr.write(`  ${n} tokens done\n`);
    }
    printTable(rows);
    const first = lengths[0];
    const lastN = lengths[lengths.length - 1];
    process.stdout.write(
      `\n${lastN / first}x the tokens: dense score memory grows ${(lastN / first) ** 2}x, flash's extra memory ${lastN / first}x.\n`,
    );
    await modelDemo(device, intList(v, 'tokens', [400])[0]);
  } finally {
    device.destroy();
  }
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const [i, r] of rows.entries()) {
    process.stdout.write(r.map((cell, c) => cell.padStart(widths[c])).join('  ') + '\n');
    if (i === 0) process.stdout.write(widths.map((w) => '-'.repeat(w)).join('  ') + '\n');
  }
}
