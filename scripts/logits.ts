// Logits of the last K positions of token sequences, from a Hugging Face directory (config.json +
// safetensors; no tokenizer needed) through our decoder: the first N - K tokens as one chunked prefill,
// then the last K one at a time, keeping each step's logits. Used by scripts/hf-equivalence.py.
// TypeScript compiled with the project (tsconfig includes scripts/): run its build output,
//   node dist/scripts/logits.js --model DIR --tokens a.i32,b.i32 --out-dir OUT [--last 8] [--backend webgpu]
//        [--attention flash] [--chunk 512] [--rope-out inv_freq.f64]
// Each a.i32 (little-endian int32 ids) gives OUT/a.logits.f32 ([K, vocab] float32) and a line of timing
// JSON on stdout.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { readHfConfig } from '../src/model/load/hf-config.js';
import { SafetensorsStore } from '../src/model/load/safetensors.js';
import { hfWeights } from '../src/model/load/hf-weights.js';
import { ropeInverseFrequencies } from '../src/model/positions/rope.js';
import { scheduleFromSpec } from '../src/attention/sparse.js';
import { parseMethodSpec } from '../src/attention/spec.js';
import { acquireDevice } from '../src/runtime/device.js';
import { backendOption } from '../src/cli/args.js';
import { createDecoder } from '../src/model/forward/create-decoder.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    tokens: { type: 'string' },
    'out-dir': { type: 'string' },
    last: { type: 'string', default: '8' },
    backend: { type: 'string', default: 'webgpu' },
    attention: { type: 'string', default: 'flash' },
    chunk: { type: 'string', default: '512' },
    'rope-out': { type: 'string' },
  },
});
if (!values.model || !values.tokens || !values['out-dir']) {
  process.stderr.write(
    'usage: logits.js --model DIR --tokens a.i32[,b.i32] --out-dir OUT [--last 8] [--backend webgpu|cpu] [--attention SPEC] [--chunk 512]\n',
  );
  process.exit(2);
}
const last = Number(values.last);
const chunk = Number(values.chunk);

const t0 = performance.now();
const config = readHfConfig(join(values.model, 'config.json'));
const weights = hfWeights(SafetensorsStore.openDirectory(values.model), config);
// The decoder never tokenizes here; ids come from the files.
const tokenizer = {
  vocabSize: config.vocabSize,
  encode: () => [],
  decode: () => '',
  tokenBytes: () => new Uint8Array(),
};
const model = { config, weights, tokenizer, source: values.model };
const loadSeconds = (performance.now() - t0) / 1000;
if (values['rope-out']) writeFileSync(values['rope-out'], Buffer.from(ropeInverseFrequencies(config).buffer));

const device = await acquireDevice(backendOption(values));
const schedule = scheduleFromSpec(parseMethodSpec(values.attention));
try {
  for (const file of values.tokens.split(',')) {
    const raw = readFileSync(file);
    const ids = Array.from(new Int32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4));
    if (ids.length <= last) throw new Error(`${file}: ${ids.length} tokens, need more than --last ${last}`);
    const decoder = await createDecoder(device, model, schedule, { maxTokens: ids.length, chunk });
    try {
      const out = new Float32Array(last * config.vocabSize);
      const t1 = performance.now();
      let logits = await decoder.forward(ids.slice(0, ids.length - last + 1));
      const prefillSeconds = (performance.now() - t1) / 1000;
      out.set(logits, 0);
      for (let k = 1; k < last; k++) {
        logits = await decoder.forward([ids[ids.length - last + k]]);
        out.set(logits, k * config.vocabSize);
      }
      const name = basename(file).replace(/\.i32$/, '');
      writeFileSync(join(values['out-dir'], `${name}.logits.f32`), Buffer.from(out.buffer));
      process.stdout.write(
        JSON.stringify({
          file: name,
          tokens: ids.length,
          backend: device.name,
          loadSeconds,
          prefillSeconds,
          totalSeconds: (performance.now() - t1) / 1000,
        }) + '\n',
      );
    } finally {
      decoder.destroy();
    }
  }
} finally {
  device.destroy();
}
