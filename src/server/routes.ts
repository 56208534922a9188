// The two generating routes: a request becomes token ids checked against the context (400s in OpenAI's
// words), then a generation on the server's session whose pieces go out as server-sent events (stream:
// true) or one JSON body. The prompt is the whole context: the session reuses a cached beginning.
import type { ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { PrefillProgress, Session } from '../api/session.js';
import type { Generation, GenerationResult } from '../api/generation.js';
import { badRequest, HttpError } from './http-error.js';
import type { ChatRequest, CompletionRequest, SamplingRequest } from './requests.js';

export interface PreparedRequest {
  promptTokens: number;
  /** Serves the request; resolves to the tokens generated. */
  run(res: ServerResponse, signal: AbortSignal, onProgress?: (p: PrefillProgress) => void): Promise<number>;
}

const DRAIN_TIMEOUT_MS = 30_000;

export function prepareCompletion(session: Session, r: CompletionRequest, modelId: string): PreparedRequest {
  const ids = session.encode(r.prompt, true);
  // OpenAI's legacy completions default to 16 tokens.
  const maxTokens = checkLength(
    session,
    ids.length,
    r.maxTokens ?? Math.min(16, session.contextSize - ids.length),
    'prompt',
  );
  return {
    promptTokens: ids.length,
    run: (res, signal, onProgress) =>
      respond(
        res,
        session.generate(r.prompt, { ...options(r, maxTokens, signal), onProgress, replace: true, bos: true }),
        r,
        {
          id: `cmpl-${randomBytes(12).toString('hex')}`,
          object: 'text_completion',
          modelId,
          chunk: (text, finish) => ({ text, index: 0, logprobs: null, finish_reason: finish }),
          whole: (g) => ({ text: g.text, index: 0, logprobs: null, finish_reason: g.finishReason }),
        },
      ),
  };
}

export function prepareChat(session: Session, r: ChatRequest, modelId: string): PreparedRequest {
  const ids = session.chatTokens(r.messages);
  const maxTokens = checkLength(session, ids.length, r.maxTokens ?? session.contextSize - ids.length, 'messages');
  return {
    promptTokens: ids.length,
    run: (res, signal, onProgress) =>
      respond(res, session.chat(r.messages, { ...options(r, maxTokens, signal), onProgress }), r, {
        id: `chatcmpl-${randomBytes(12).toString('hex')}`,
        object: 'chat.completion',
        modelId,
        first: { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null },
        chunk: (text, finish) => ({ index: 0, delta: text ? { content: text } : {}, finish_reason: finish }),
        whole: (g) => ({
          index: 0,
          message: { role: 'assistant', content: g.text },
          logprobs: null,
          finish_reason: g.finishReason,
        }),
      }),
  };
}

/** The prompt and max_tokens against the context, in OpenAI's words. */
function checkLength(session: Session, prompt: number, maxTokens: number, param: string): number {
  const n = session.contextSize;
  if (prompt >= n || prompt + maxTokens > n)
    throw badRequest(
      `This model's maximum context length is ${n} tokens. However, you requested ${prompt + Math.max(maxTokens, 1)} tokens ` +
        `(${prompt} in the ${param === 'messages' ? 'messages' : 'prompt'}, ${Math.max(maxTokens, 1)} in the completion). ` +
        `Please reduce the length of the ${param === 'messages' ? 'messages' : 'prompt'} or completion.`,
      param,
      'context_length_exceeded',
    );
  return maxTokens;
}

function options(r: SamplingRequest, maxTokens: number, signal: AbortSignal) {
  return { maxTokens, temperature: r.temperature, topP: r.topP, seed: r.seed, stop: r.stop, signal };
}

interface Shape {
  id: string;
  object: 'text_completion' | 'chat.completion';
  modelId: string;
  first?: unknown;
  chunk: (text: string, finish: string | null) => unknown;
  whole: (g: GenerationResult) => unknown;
}

async function respond(res: ServerResponse, g: Generation, r: SamplingRequest, s: Shape): Promise<number> {
  const created = Math.floor(Date.now() / 1000);
  const usage = (x: GenerationResult) => ({
    prompt_tokens: x.promptTokens,
    completion_tokens: x.completionTokens,
    total_tokens: x.promptTokens + x.completionTokens,
  });
  if (!r.stream) {
    const x = await g.complete();
    const text = JSON.stringify({
      id: s.id,
      object: s.object,
      created,
      model: s.modelId,
      choices: [s.whole(x)],
      usage: usage(x),
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return x.completionTokens;
  }
  const object = s.object === 'chat.completion' ? 'chat.completion.chunk' : 'text_completion';
  const event = (choice: unknown, extra: Record<string, unknown> = {}) =>
    send(res, { id: s.id, object, created, model: s.modelId, choices: choice === undefined ? [] : [choice], ...extra });
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  if (s.first) await event(s.first);
  for await (const piece of g) await event(s.chunk(piece, null));
  const x = g.result!;
  await event(s.chunk('', x.finishReason));
  if (r.includeUsage) await event(undefined, { usage: usage(x) });
  res.end('data: [DONE]\n\n');
  return x.completionTokens;
}

/** Writes one event; waits for the socket to drain when its buffer is full (a slow reader), not for ever. */
async function send(res: ServerResponse, body: unknown): Promise<void> {
  if (res.destroyed) throw new HttpError(499, 'the client closed the request', 'client_closed');
  if (res.write(`data: ${JSON.stringify(body)}\n\n`)) return;
  await new Promise<void>((resolve, reject) => {
    const done = (e?: Error) => {
      clearTimeout(timer);
      res.off('drain', ok);
      res.off('close', closed);
      e ? reject(e) : resolve();
    };
    const ok = () => done();
    const closed = () => done(new HttpError(499, 'the client closed the request', 'client_closed'));
    const timer = setTimeout(() => done(new HttpError(504, 'the client stopped reading', 'timeout')), DRAIN_TIMEOUT_MS);
    res.once('drain', ok);
    res.once('close', closed);
  });
}
