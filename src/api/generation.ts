// One generation: an async iterator of text pieces that can be read once, and its result when done.
export type FinishReason = 'stop' | 'length';

export interface GenerationResult {
  text: string;
  /** Generated token ids (a stop string's tokens included, EOS not). */
  ids: number[];
  /** Tokens the prompt added to the context (those already cached are not counted). */
  promptTokens: number;
  /** Tokens of the prompt found in the cache and not computed again. */
  cachedTokens: number;
  completionTokens: number;
  /** 'stop': EOS or a stop string; 'length': maxTokens reached. */
  finishReason: FinishReason;
  prefillSeconds: number;
  decodeSeconds: number;
}

export class Generation implements AsyncIterable<string> {
  private started = false;
  private done?: GenerationResult;

  constructor(private readonly run: (finish: (r: GenerationResult) => void) => AsyncGenerator<string>) {}

  [Symbol.asyncIterator](): AsyncIterator<string> {
    if (this.started) throw new TypeError('a generation can be read only once');
    this.started = true;
    return this.run((r) => (this.done = r));
  }

  /** Reads the whole generation; resolves to its result. */
  async complete(): Promise<GenerationResult> {
    for await (const _ of this);
    return this.result!;
  }

  /** Reads the whole generation; resolves to its text. */
  async text(): Promise<string> {
    return (await this.complete()).text;
  }

  /** Set once the iterator has finished (undefined while running, or when it was aborted or broken off). */
  get result(): GenerationResult | undefined {
    return this.done;
  }
}
