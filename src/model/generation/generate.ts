// Generation: prefill the prompt (BOS first unless asked not to), then decode one token at a time,
// streaming text as complete UTF-8 arrives, until max tokens or EOS.
import { InputError } from '../../errors.js';
import type { Decoder } from '../forward/decoder-cpu.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import type { Tokenizer } from '../types.js';

export interface GenerateOptions extends SamplerOptions {
  maxTokens: number;
  /** Start with the BOS token (llama.cpp's default). */
  bos?: boolean;
  /** Called with each new piece of text as it becomes decodable. */
  onText?: (text: string) => void;
  /** Stop at the tokenizer's EOS (default true). */
  stopAtEos?: boolean;
  /** Feed the prompt in slices of this many tokens, reporting each (default: in one call; Star needs one). */
  prefillSlice?: number;
  onPrefillProgress?: (tokens: number, totalTokens: number) => void;
  /** What the decoder already holds (a restored session): its last token and the logits after it. The prompt
   * is fed after it and may then be empty. */
  context?: { lastId: number; logits: Float32Array };
}

export interface GenerateResult {
  promptIds: number[];
  ids: number[];
  text: string;
  prefillSeconds: number;
  decodeSeconds: number;
  stoppedAtEos: boolean;
  /** The logits after the last token fed to the decoder (the next token's; what a saved session keeps). */
  logits?: Float32Array;
}

/** The prompt's token ids as the model will see them. */
export function promptTokens(tokenizer: Tokenizer, prompt: string, bos = true): number[] {
  const ids = tokenizer.encode(prompt);
  if (bos) {
    if (tokenizer.bosId === undefined) throw new InputError('the model has no BOS token; use --no-bos');
    ids.unshift(tokenizer.bosId);
  }
  if (ids.length === 0) throw new InputError('the prompt is empty and --no-bos leaves no token to start from');
  return ids;
}

/** Streams token bytes as text; holds back an incomplete UTF-8 sequence; drops the space after BOS. */
export class TextStream {
  private readonly decoder = new TextDecoder('utf-8');
  private afterBos: boolean;

  constructor(
    private readonly tokenizer: Tokenizer,
    lastPromptId: number | undefined,
  ) {
    this.afterBos = lastPromptId !== undefined && lastPromptId === tokenizer.bosId;
  }

  push(id: number): string {
    let text = this.decoder.decode(this.tokenizer.tokenBytes(id), { stream: true });
    // SentencePiece adds a space in front of the first word; llama2.c strips it after BOS.
    if (this.afterBos && text.length > 0) {
      if (text.startsWith(' ')) text = text.slice(1);
      this.afterBos = false;
    }
    return text;
  }

  flush(): string {
    return this.decoder.decode();
  }
}

export async function generate(
  decoder: Decoder,
  tokenizer: Tokenizer,
  promptIds: number[],
  opts: GenerateOptions,
): Promise<GenerateResult> {
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 0)
    throw new InputError(`max tokens must be a non-negative integer, got ${opts.maxTokens}`);
  // Embeddings may be padded beyond the tokenizer (Qwen2); padded rows are never sampled.
  const vocab = Math.min(decoder.config.vocabSize, tokenizer.vocabSize);
  const sampler = new Sampler(vocab, opts);
  const stream = new TextStream(tokenizer, promptIds.length ? promptIds[promptIds.length - 1] : opts.context?.lastId);
  const ids: number[] = [];
  let text = '';
  const emit = (s: string) => {
    if (s === '') return;
    text += s;
    opts.onText?.(s);
  };
  const t0 = performance.now();
  let logits =
    promptIds.length === 0
      ? opts.context?.logits
      : opts.maxTokens > 0
        ? await prefill(decoder, promptIds, opts)
        : undefined;
  const t1 = performance.now();
  let stoppedAtEos = false;
  for (let i = 0; i < opts.maxTokens && logits; i++) {
    const id = sampler.next(logits.length > vocab ? logits.subarray(0, vocab) : logits);
    if ((opts.stopAtEos ?? true) && id === tokenizer.eosId) {
      stoppedAtEos = true;
      break;
    }
    ids.push(id);
    emit(stream.push(id));
    if (i + 1 < opts.maxTokens) logits = await decoder.forward([id]);
  }
  emit(stream.flush());
  const t2 = performance.now();
  const times = { prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (t2 - t1) / 1000 };
  return { promptIds, ids, text, ...times, stoppedAtEos, logits };
}

async function prefill(decoder: Decoder, ids: number[], opts: GenerateOptions): Promise<Float32Array> {
  const slice = opts.prefillSlice ?? ids.length;
  let logits: Float32Array | undefined;
  for (let at = 0; at < ids.length; at += slice) {
    logits = await decoder.forward(ids.slice(at, at + slice));
    opts.onPrefillProgress?.(Math.min(ids.length, at + slice), ids.length);
  }
  return logits!;
}
