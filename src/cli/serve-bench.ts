// The server under load: N concurrent streaming clients (1, 4, 16 by default) against `longctx serve`'s
// server in this process, each asking for the same number of tokens after its own prompt; reports time to
// first token (mean, max) and tokens/s over all clients. Requests are served one at a time, so TTFT grows
// with the queue while total tokens/s stays that of one stream.
//   node dist/src/cli/serve-bench.js --model F | --random 1b|tiny  [--backend webgpu] [--storage f16]
//        [--clients 1,4,16] [--prompt-tokens 512] [--max-tokens 64] [--context 4096] [--json out.json]
import { writeFileSync } from 'node:fs';
import { benchModel } from './random-text-model.js';
import { createServer } from '../server/server.js';
import { intList, numberOption, parse } from './args.js';

async function streamOne(
  url: string,
  prompt: string,
  maxTokens: number,
): Promise<{ ttft: number; tokens: number; seconds: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      prompt,
      max_tokens: maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
    signal: AbortSignal.timeout(600_000),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttft = -1;
  let tokens = 0;
  let buffered = '';
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffered += new TextDecoder().decode(part);
    const events = buffered.split('\n\n');
    buffered = events.pop() ?? '';
    for (const e of events) {
      if (!e.startsWith('data: ') || e === 'data: [DONE]') continue;
      const body = JSON.parse(e.slice(6));
      if (body.choices?.[0]?.text && ttft < 0) ttft = (performance.now() - t0) / 1000;
      if (body.usage) tokens = body.usage.completion_tokens;
    }
  }
  return { ttft, tokens, seconds: (performance.now() - t0) / 1000 };
}

async function main(argv: string[]): Promise<void> {
  const v = parse(argv, {
    model: { type: 'string' },
    random: { type: 'string' },
    backend: { type: 'string' },
    storage: { type: 'string' },
    clients: { type: 'string' },
    'prompt-tokens': { type: 'string' },
    'max-tokens': { type: 'string' },
    context: { type: 'string' },
    json: { type: 'string' },
  });
  const clients = intList(v, 'clients', [1, 4, 16]);
  const promptTokens = numberOption(v, 'prompt-tokens') ?? 512;
  const maxTokens = numberOption(v, 'max-tokens') ?? 64;
  const model = await benchModel(v);
  const server = await createServer(model, {
    contextSize: numberOption(v, 'context') ?? 4096,
    queue: Math.max(...clients),
  });
  const url = await server.listen(0);
  const rows: Array<Record<string, number | string>> = [];
  try {
    await streamOne(url, 'warm up', 4);
    for (const n of clients) {
      const t0 = performance.now();
      const runs = await Promise.all(
        Array.from({ length: n }, (_, i) => streamOne(url, `${i} `.padEnd(promptTokens, 'abcdefgh '), maxTokens)),
      );
      const wall = (performance.now() - t0) / 1000;
      const tokens = runs.reduce((a, r) => a + r.tokens, 0);
      rows.push({
        clients: n,
        ttftMeanSeconds: runs.reduce((a, r) => a + r.ttft, 0) / n,
        ttftMaxSeconds: Math.max(...runs.map((r) => r.ttft)),
        tokensPerSecond: tokens / wall,
        wallSeconds: wall,
      });
    }
  } finally {
    await server.close(1000);
    model.dispose();
  }
  const f = (x: number | string) => (typeof x === 'number' ? x.toFixed(3) : x);
  process.stdout.write(
    `server on ${model.device.name}, ${model.source}, prompt ${promptTokens} tokens, ${maxTokens} generated per client\n\n` +
      '| clients | TTFT mean (s) | TTFT max (s) | tokens/s (all clients) |\n| --- | --- | --- | --- |\n' +
      rows
        .map((r) => `| ${r.clients} | ${f(r.ttftMeanSeconds)} | ${f(r.ttftMaxSeconds)} | ${f(r.tokensPerSecond)} |`)
        .join('\n') +
      '\n',
  );
  if (typeof v.json === 'string') writeFileSync(v.json, JSON.stringify({ device: model.device.name, rows }, null, 2));
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`serve-bench: ${e.message}\n`);
    process.exit(1);
  },
);
