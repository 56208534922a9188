// The bodies of POST /v1/completions and /v1/chat/completions, checked field by field: a wrong field is a 400
// naming it (OpenAI's `param`), and fields this server cannot honour (n > 1, logprobs, echo, tools) are
// refused rather than ignored.
import type { ChatMessage } from '../api/chat.js';
import { badRequest } from './http-error.js';

export interface SamplingRequest {
  model?: string;
  maxTokens?: number;
  temperature: number;
  topP?: number;
  seed?: number;
  stop?: string[];
  stream: boolean;
  includeUsage: boolean;
}

export interface CompletionRequest extends SamplingRequest {
  prompt: string;
}

export interface ChatRequest extends SamplingRequest {
  messages: ChatMessage[];
}

type Body = Record<string, unknown>;

function numberField(b: Body, key: string, min: number, max: number, integer = false): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v)))
    throw badRequest(
      `${key} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(v)}`,
      key,
    );
  return v;
}

function refuse(b: Body, key: string, allowed: (v: unknown) => boolean, what: string): void {
  if (b[key] !== undefined && b[key] !== null && !allowed(b[key])) throw badRequest(`${key}: ${what}`, key);
}

function sampling(b: Body): SamplingRequest {
  if (b.model !== undefined && typeof b.model !== 'string') throw badRequest('model must be a string', 'model');
  refuse(b, 'n', (v) => v === 1, 'this server returns one choice (n = 1)');
  refuse(b, 'best_of', (v) => v === 1, 'best_of is not supported');
  refuse(b, 'logprobs', (v) => v === false || v === 0, 'logprobs are not supported');
  refuse(b, 'top_logprobs', (v) => v === 0, 'logprobs are not supported');
  refuse(b, 'echo', (v) => v === false, 'echo is not supported');
  refuse(b, 'tools', (v) => Array.isArray(v) && v.length === 0, 'tools are not supported');
  refuse(b, 'stream', (v) => typeof v === 'boolean', 'must be true or false');
  const stop = b.stop;
  let stops: string[] | undefined;
  if (typeof stop === 'string') stops = [stop];
  else if (Array.isArray(stop) && stop.length <= 4 && stop.every((s) => typeof s === 'string' && s !== ''))
    stops = stop;
  else if (stop !== undefined && stop !== null)
    throw badRequest('stop must be a string or up to 4 non-empty strings', 'stop');
  const options = b.stream_options;
  if (options !== undefined && options !== null && typeof options !== 'object')
    throw badRequest('stream_options must be an object', 'stream_options');
  return {
    model: b.model as string | undefined,
    maxTokens:
      numberField(b, 'max_completion_tokens', 1, Number.MAX_SAFE_INTEGER, true) ??
      numberField(b, 'max_tokens', 1, Number.MAX_SAFE_INTEGER, true),
    temperature: numberField(b, 'temperature', 0, 2) ?? 1,
    topP: numberField(b, 'top_p', Number.MIN_VALUE, 1),
    seed: numberField(b, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true),
    stop: stops,
    stream: b.stream === true,
    includeUsage: (options as { include_usage?: unknown } | undefined)?.include_usage === true,
  };
}

export function completionRequest(b: Body): CompletionRequest {
  let prompt = b.prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') prompt = prompt[0];
  if (typeof prompt !== 'string')
    throw badRequest('prompt must be a string (one prompt per request; token-id prompts are not supported)', 'prompt');
  return { ...sampling(b), prompt };
}

export function chatRequest(b: Body): ChatRequest {
  const list = b.messages;
  if (!Array.isArray(list) || list.length === 0) throw badRequest('messages must be a non-empty array', 'messages');
  const messages = list.map((m, i): ChatMessage => {
    if (typeof m !== 'object' || m === null || typeof (m as Body).role !== 'string')
      throw badRequest(`messages[${i}] must be { role, content }`, `messages[${i}]`);
    const { role, content } = m as Body;
    if (typeof content === 'string') return { role: role as string, content };
    // Content parts: only text parts can be read by a text model.
    if (
      Array.isArray(content) &&
      content.every((p) => typeof p === 'object' && p !== null && (p as Body).type === 'text')
    )
      return { role: role as string, content: content.map((p) => String((p as Body).text ?? '')).join('') };
    throw badRequest(`messages[${i}].content must be a string or text parts`, `messages[${i}].content`);
  });
  return { ...sampling(b), messages };
}
