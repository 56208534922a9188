// An OpenAI-compatible HTTP server over one model and one session, on node:http: POST /v1/completions and
// /v1/chat/completions (JSON, or server-sent events with stream: true), GET /v1/models, GET /health.
// Requests run one at a time from a bounded queue; a client that disconnects stops its generation; every
// wait (headers, body, queue, socket drain, generation, shutdown) has a timeout.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Model } from '../api/model.js';
import type { PrefillProgress, Session } from '../api/session.js';
import { HttpError } from './http-error.js';
import { RequestQueue } from './queue.js';
import { chatRequest, completionRequest } from './requests.js';
import { prepareChat, prepareCompletion, type PreparedRequest } from './routes.js';

export interface ServerOptions {
  /** Bearer token clients must send; none: no authentication (fine on loopback). */
  apiKey?: string;
  /** Requests that may wait while one runs (default 16); more get 429. */
  queue?: number;
  /** Seconds a request may wait in the queue (default 300). */
  queueTimeoutSeconds?: number;
  /** Seconds one generation may run (default 600). */
  generationTimeoutSeconds?: number;
  /** Largest request body in bytes (default 16 MiB). */
  maxBodyBytes?: number;
  /** The id /v1/models lists and requests name (default: the model's file name without .gguf). */
  modelId?: string;
  /** Written each request's one-line log (default: nothing). */
  log?: (line: string) => void;
  /** A progress reporter for each request's prefill (the CLI draws a bar for long prompts). */
  prefillProgress?: () => (p: PrefillProgress) => void;
}

export interface ServerStats {
  requests: number;
  completed: number;
  /** Refused because the queue was full. */
  rejected: number;
  /** Ended because the client disconnected. */
  cancelled: number;
  completionTokens: number;
}

export class OpenAiServer {
  readonly stats: ServerStats = { requests: 0, completed: 0, rejected: 0, cancelled: 0, completionTokens: 0 };
  readonly modelId: string;
  private readonly http: Server;
  private readonly queue: RequestQueue;
  private readonly running = new Set<AbortController>();
  private closing?: Promise<void>;

  constructor(
    readonly model: Model,
    readonly session: Session,
    readonly options: ServerOptions = {},
  ) {
    const capacity = options.queue ?? 16;
    if (!Number.isInteger(capacity) || capacity < 0)
      throw new RangeError(`queue must be an integer >= 0, got ${capacity}`);
    this.queue = new RequestQueue(capacity, (options.queueTimeoutSeconds ?? 300) * 1000);
    this.modelId = options.modelId ?? model.source.replace(/\.gguf$/i, '').replace(/^.*[\\/]/, '');
    this.http = createHttpServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => this.fail(res, e));
    });
    // Slow or stalled clients cannot hold a connection open for ever.
    this.http.headersTimeout = 10_000;
    this.http.requestTimeout = 60_000;
    this.http.keepAliveTimeout = 5_000;
  }

  /** Listens on host:port (port 0: an ephemeral port); resolves to the base URL. */
  listen(port = 8080, host = '127.0.0.1'): Promise<string> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        const a = this.http.address() as AddressInfo;
        resolve(`http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
      });
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = `${req.method} ${url.pathname.replace(/\/+$/, '')}`;
    if (route === 'GET /health') return json(res, 200, { status: 'ok', queue: this.queue.depth });
    this.authenticate(req);
    if (route === 'GET /v1/models')
      return json(res, 200, {
        object: 'list',
        data: [{ id: this.modelId, object: 'model', created: 0, owned_by: 'longctx' }],
      });
    if (route === 'POST /v1/completions' || route === 'POST /v1/chat/completions') {
      const body = await readJson(req, this.options.maxBodyBytes ?? 16 * 2 ** 20);
      const request = route === 'POST /v1/completions' ? completionRequest(body) : chatRequest(body);
      if (request.model !== undefined && request.model !== this.modelId)
        throw new HttpError(
          404,
          `model '${request.model}' is not served here; this server serves '${this.modelId}'`,
          'invalid_request_error',
          'model_not_found',
          'model',
        );
      // Tokenised and checked against the context before it queues: a 400 never waits.
      const job =
        'prompt' in request
          ? prepareCompletion(this.session, request, this.modelId)
          : prepareChat(this.session, request, this.modelId);
      return this.generate(req, res, job);
    }
    if (/^\/(v1\/)?(models|completions|chat\/completions|health)$/.test(url.pathname))
      throw new HttpError(405, `${req.method} is not allowed on ${url.pathname}`, 'invalid_request_error');
    throw new HttpError(404, `no route ${req.method} ${url.pathname}`, 'invalid_request_error', 'not_found');
  }

  private authenticate(req: IncomingMessage): void {
    const key = this.options.apiKey;
    if (key === undefined) return;
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : undefined;
    if (given === undefined || !sameText(given, key))
      throw new HttpError(
        401,
        'Incorrect API key provided: send Authorization: Bearer <key>',
        'invalid_request_error',
        'invalid_api_key',
      );
  }

  /** Runs one generation in its turn; the client's disconnect (or the timeout) aborts it. */
  private async generate(req: IncomingMessage, res: ServerResponse, job: PreparedRequest): Promise<void> {
    this.stats.requests++;
    const client = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) client.abort(new HttpError(499, 'the client closed the request', 'client_closed'));
    };
    res.on('close', onClose);
    const deadline = AbortSignal.timeout((this.options.generationTimeoutSeconds ?? 600) * 1000);
    const signal = AbortSignal.any([client.signal, deadline]);
    const started = performance.now();
    try {
      const tokens = await this.queue.run(async () => {
        this.running.add(client);
        try {
          return await job.run(res, signal, this.options.prefillProgress?.());
        } finally {
          this.running.delete(client);
        }
      }, client.signal);
      this.stats.completed++;
      this.stats.completionTokens += tokens;
      this.options.log?.(
        `${req.method} ${req.url} 200 ${tokens} tokens ${((performance.now() - started) / 1000).toFixed(2)} s`,
      );
    } catch (e) {
      if (client.signal.aborted) {
        this.stats.cancelled++;
        this.options.log?.(`${req.method} ${req.url} cancelled: the client disconnected`);
        return;
      }
      if (e instanceof HttpError && e.status === 429) this.stats.rejected++;
      if (deadline.aborted && !(e instanceof HttpError))
        throw new HttpError(504, "the generation ran past the server's time limit", 'server_error', 'timeout');
      throw e;
    } finally {
      res.off('close', onClose);
    }
  }

  private fail(res: ServerResponse, e: unknown): void {
    const err = toHttpError(e);
    this.options.log?.(`error ${err.status}: ${err.message}`);
    if (res.headersSent) {
      // Mid-stream: an error event, then the end (OpenAI clients raise it).
      if (!res.destroyed) res.end(`data: ${JSON.stringify(err.body())}\n\n`);
      return;
    }
    json(res, err.status, err.body());
  }

  /** Stops accepting, refuses what waits, gives the running generation `graceMs` to end, then aborts it. */
  close(graceMs = 5_000): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.queue.close();
      this.http.close(() => resolve());
      this.http.closeIdleConnections();
      const abort = () => {
        for (const c of this.running) c.abort(new HttpError(503, 'the server is shutting down', 'server_error'));
        this.http.closeAllConnections();
      };
      const t = setTimeout(abort, this.running.size ? graceMs : 0);
      t.unref();
      // Whatever happens, the promise settles.
      setTimeout(resolve, graceMs + 2_000).unref();
    });
    return this.closing;
  }
}

/** Builds the server for a loaded model: one session of `contextSize` tokens with the given attention. */
export async function createServer(
  model: Model,
  o: ServerOptions & { contextSize?: number; attention?: string } = {},
): Promise<OpenAiServer> {
  const session = await model.createSession({ contextSize: o.contextSize, attention: o.attention });
  return new OpenAiServer(model, session, o);
}

function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  const err = e as Error;
  // The library's typed input errors are the client's to fix.
  if (err?.name && /InputError|SpecError|ContextOverflowError|ChatTemplateError|NoChatTemplateError/.test(err.name))
    return new HttpError(400, err.message, 'invalid_request_error');
  return new HttpError(500, `internal error: ${err?.message ?? String(e)}`, 'server_error');
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sameText(a: string, b: string): boolean {
  // Digests compared in constant time: a wrong key's timing says nothing about the right one.
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

async function readJson(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes)
    throw new HttpError(413, `the body is ${declared} bytes; at most ${maxBytes}`, 'invalid_request_error');
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req as AsyncIterable<Buffer>) {
    size += part.length;
    if (size > maxBytes) throw new HttpError(413, `the body exceeds ${maxBytes} bytes`, 'invalid_request_error');
    parts.push(part);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `the body is not JSON: ${(e as Error).message}`, 'invalid_request_error');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new HttpError(400, 'the body must be a JSON object', 'invalid_request_error');
  return body as Record<string, unknown>;
}
