// `longctx serve`: an OpenAI-compatible HTTP server over one model (src/server). Logs go to stderr; the
// first line names the URL. SIGINT or SIGTERM stop it cleanly: no new requests, the waiting ones refused,
// the running one given a few seconds, then the model freed.
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { loadModel } from '../api/model.js';
import { createServer } from '../server/server.js';
import { backendOption, numberOption, parse, required } from './args.js';
import { loadProgress, prefillProgress } from './progress-report.js';

export const SERVE_USAGE = `usage: longctx serve --model F [--host 127.0.0.1] [--port 8080] [--api-key K] [--queue N]
                     [--context N] [--attention SPEC] [--backend cpu|webgpu|auto] [--storage f32|f16]
                     [--chat-template FILE] [--queue-timeout S] [--generation-timeout S]
  OpenAI-compatible: POST /v1/completions, POST /v1/chat/completions (stream: true for server-sent events),
  GET /v1/models, GET /health. One request runs at a time; up to N (default 16) wait, more get 429.
  --host: loopback by default; --api-key K (or LONGCTX_API_KEY): clients must send Authorization: Bearer K.
  --context N: tokens of the one session (default: the model's training context); SPEC as in generate.
  --port 0 picks a free port (the URL is printed).`;

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host);

export async function serveCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    model: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    'api-key': { type: 'string' },
    queue: { type: 'string' },
    context: { type: 'string' },
    attention: { type: 'string' },
    backend: { type: 'string' },
    storage: { type: 'string' },
    'chat-template': { type: 'string' },
    'queue-timeout': { type: 'string' },
    'generation-timeout': { type: 'string' },
  });
  const int = (name: string, min: number): number | undefined => {
    const n = numberOption(v, name);
    if (n !== undefined && (!Number.isInteger(n) || n < min))
      throw new InputError(`--${name} must be an integer >= ${min}, got ${n}`);
    return n;
  };
  const port = int('port', 0) ?? 8080;
  if (port > 65535) throw new InputError(`--port must be at most 65535, got ${port}`);
  const host = typeof v.host === 'string' ? v.host : '127.0.0.1';
  const apiKey = typeof v['api-key'] === 'string' ? v['api-key'] : process.env.LONGCTX_API_KEY || undefined;
  const storage = (v.storage as string | undefined) ?? 'f32';
  if (storage !== 'f32' && storage !== 'f16') throw new InputError(`--storage must be f32 or f16, got '${storage}'`);
  let chatTemplate: string | undefined;
  if (typeof v['chat-template'] === 'string') {
    try {
      chatTemplate = readFileSync(v['chat-template'], 'utf8');
    } catch (e) {
      throw new InputError(`cannot read --chat-template: ${(e as Error).message}`);
    }
  }
  const log = (line: string) => process.stderr.write(`serve: ${line}\n`);
  if (!isLoopback(host) && !apiKey)
    log(`warning: listening on ${host} without --api-key: anyone who can reach it can use the model`);
  const model = await loadModel(required(v, 'model'), {
    device: backendOption(v),
    storage,
    chatTemplate,
    onProgress: loadProgress('load'),
  });
  try {
    const server = await createServer(model, {
      apiKey,
      queue: int('queue', 0),
      contextSize: int('context', 1),
      attention: typeof v.attention === 'string' ? v.attention : undefined,
      queueTimeoutSeconds: numberOption(v, 'queue-timeout'),
      generationTimeoutSeconds: numberOption(v, 'generation-timeout'),
      log,
      prefillProgress: () => prefillProgress('serve: prefill'),
    });
    const url = await server.listen(port, host);
    log(
      `listening on ${url} (model ${server.modelId} on ${model.device.name}, ` +
        `context ${server.session.contextSize}, ${server.session.attention}${apiKey ? ', API key required' : ''})`,
    );
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log(`${signal}: shutting down`);
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        server.close().then(resolve, resolve);
      };
      const onInt = () => stop('SIGINT');
      const onTerm = () => stop('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
    });
  } finally {
    model.dispose();
  }
}
