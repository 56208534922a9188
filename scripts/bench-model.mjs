#!/usr/bin/env node
// Prefill and decode tokens/s of the decoder against context length, per attention method, on a
// random-weight model of Llama-3.2-1B's shape (or --tiny for a check on the CPU).
//   node scripts/bench-model.mjs [--backend webgpu] [--lengths 1024,4096,16384] [--method flash --method window:left=1024]
//        [--decode 32] [--chunk 512] [--storage f32|f16] [--budget-seconds 60] [--tiny] [--out results.json]
// Prints a markdown table; writes JSON rows with --out. A length is skipped for a method once a smaller
// one took longer than the budget.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { LLAMA_3_2_1B_SHAPE, randomModel } from '../dist/src/model/load/random-model.js';
import { createDecoder } from '../dist/src/model/forward/create-decoder.js';
import { scheduleFromSpec } from '../dist/src/attention/sparse.js';
import { parseMethodSpec } from '../dist/src/attention/spec.js';
import { acquireDevice } from '../dist/src/runtime/device.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'webgpu' },
    lengths: { type: 'string', default: '1024,4096,16384' },
    method: { type: 'string', multiple: true },
    decode: { type: 'string', default: '32' },
    chunk: { type: 'string', default: '512' },
    'budget-seconds': { type: 'string', default: '60' },
    tiny: { type: 'boolean' },
    out: { type: 'string' },
    storage: { type: 'string', default: 'f32' },
  },
});
const config = values.tiny
  ? {
      ...LLAMA_3_2_1B_SHAPE,
      vocabSize: 300,
      hiddenSize: 64,
      intermediateSize: 96,
      layers: 2,
      heads: 4,
      kvHeads: 1,
      headDim: 16,
    }
  : LLAMA_3_2_1B_SHAPE;
const lengths = values.lengths.split(',').map(Number);
const methods = values.method ?? ['flash', 'window:left=1024'];
const decodeSteps = Number(values.decode);
const budget = Number(values['budget-seconds']);

const t0 = performance.now();
const model = randomModel(config, 1);
process.stderr.write(`bench-model: ${model.source} built in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
const device = await acquireDevice(values.backend);
const rows = [];
try {
  for (const method of methods) {
    let skip = false;
    // One decoder per method, sized for the longest run: weights go up once, caches are reused.
    const decoder = await createDecoder(device, model, scheduleFromSpec(parseMethodSpec(method)), {
      maxTokens: Math.max(...lengths) + decodeSteps,
      chunk: Number(values.chunk),
      storage: values.storage,
    });
    try {
      for (const length of lengths) {
        if (skip) {
          rows.push({ method, length, skipped: true });
          continue;
        }
        decoder.reset();
        const ids = Array.from({ length }, (_, i) => (i * 7919 + 13) % config.vocabSize);
        const a = performance.now();
        let logits = await decoder.forward(ids);
        const prefill = (performance.now() - a) / 1000;
        const b = performance.now();
        for (let i = 0; i < decodeSteps; i++) logits = await decoder.forward([(i * 31) % config.vocabSize]);
        const decode = (performance.now() - b) / 1000;
        if (logits.some(Number.isNaN)) throw new Error(`NaN logits for ${method} at ${length}`);
        const row = {
          method,
          length,
          storage: values.storage,
          backend: device.name,
          prefillSeconds: prefill,
          prefillTokensPerSecond: length / prefill,
          decodeSteps,
          decodeTokensPerSecond: decodeSteps / decode,
        };
        rows.push(row);
        process.stderr.write(JSON.stringify(row) + '\n');
        if (prefill + decode > budget) skip = true;
      }
    } finally {
      decoder.destroy();
    }
  }
} finally {
  device.destroy();
}
if (values.out) writeFileSync(values.out, JSON.stringify({ config, rows }, null, 2));
const fmt = (x) => (x === undefined ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
process.stdout.write(`| method | context | prefill tokens/s | decode tokens/s |\n| --- | --- | --- | --- |\n`);
for (const r of rows)
  process.stdout.write(
    `| ${r.method} | ${r.length} | ${r.skipped ? 'skipped' : fmt(r.prefillTokensPerSecond)} | ${fmt(r.decodeTokensPerSecond)} |\n`,
  );
