// A session: one context (the decoder's KV caches) that text is prefilled into and generated from.
// generate() appends to what the session holds; chat() and generate(..., { replace: true }) treat the prompt
// as the whole context and reuse the cached tokens that begin it (a long document prefilled once, then
// questions after it, is recomputed only from where the questions start).
import type { Decoder, PendingCaches } from '../model/forward/decoder-cpu.js';
import { Sampler } from '../model/generation/sampler.js';
import { TextStream } from '../model/generation/generate.js';
import type { Tokenizer } from '../model/types.js';
import { InputError } from '../errors.js';
import type { ChatMessage, ChatTemplate } from './chat.js';
import { ContextOverflowError, DisposedError } from './errors.js';
import { Generation, type GenerationResult } from './generation.js';
import { StopText } from './stop-text.js';
import { encodeSessionFile, planSessionFile, type SessionHeader, type SessionPositions } from './session-file.js';

/** What a session knows of its model for saving: its identity. */
export interface SessionOwner {
  fingerprint(): Promise<string>;
  readonly source: string;
  readonly config: { architecture: string; layers: number; vocabSize: number };
}

export interface PrefillProgress {
  tokens: number;
  totalTokens: number;
  tokensPerSecond: number;
  etaSeconds: number;
}

export interface PrefillOptions {
  onProgress?: (p: PrefillProgress) => void;
  signal?: AbortSignal;
  /** Start with BOS when the session is empty (default: when the model has one). */
  bos?: boolean;
}

export interface GenerateOptions extends PrefillOptions {
  /** Most tokens to generate (default: what is left of the context). */
  maxTokens?: number;
  /** 0 (default) is greedy. */
  temperature?: number;
  topP?: number;
  seed?: number;
  stop?: string | readonly string[];
  /** Stop at the model's EOS token (default true). */
  stopAtEos?: boolean;
  /** The prompt is the whole context: cached tokens that begin it are kept, the rest is computed again. */
  replace?: boolean;
}

export interface SessionInfo {
  contextSize: number;
  attention: string;
  /** RoPE as this session applies it (the model's, or the session's override). */
  positions: SessionPositions;
  chunk: number;
  /** Methods whose prefill must see the whole prompt at once (Star's anchor block). */
  wholePrompt: boolean;
}

const nextTurn: () => Promise<void> =
  typeof setImmediate === 'function'
    ? () => new Promise((r) => setImmediate(r))
    : () => new Promise((r) => setTimeout(r, 0));

export class Session {
  private ids: number[] = [];
  private logits?: Float32Array;
  private busy = false;
  private disposed = false;
  /** Tokens sampled over the session's life (the server's tests watch it stop after a disconnect). */
  generatedTokens = 0;
  /** How the last restore() rebuilt the context: from the saved caches, or by replaying the saved tokens. */
  restoredFrom?: 'caches' | 'replay';

  constructor(
    private readonly decoder: Decoder,
    private readonly tokenizer: Tokenizer,
    readonly info: SessionInfo,
    private readonly template: () => ChatTemplate,
    private readonly special: { bos?: string },
    private readonly onDispose: (s: Session) => void,
    private readonly owner: SessionOwner,
  ) {}

  get contextSize(): number {
    return this.info.contextSize;
  }
  get attention(): string {
    return this.info.attention;
  }
  /** Tokens in the context now. */
  get tokenCount(): number {
    return this.ids.length;
  }
  /** The context's token ids. */
  get tokens(): readonly number[] {
    return this.ids;
  }
  /** KV-cache bytes held now. */
  get cacheBytes(): number {
    return this.decoder.cacheBytes;
  }

  /** Token ids of text as this session would add them (BOS first when the session is empty). */
  encode(text: string, bos = this.ids.length === 0): number[] {
    const ids = this.tokenizer.encode(text);
    if (bos && this.tokenizer.bosId !== undefined) ids.unshift(this.tokenizer.bosId);
    return ids;
  }

  /** Forgets the context (the caches are kept for reuse). */
  reset(): void {
    this.check();
    this.decoder.reset();
    this.ids = [];
    this.logits = undefined;
  }

  /** Adds text to the context without generating. */
  async prefill(text: string, o: PrefillOptions = {}): Promise<{ tokens: number; seconds: number }> {
    this.check();
    const ids = this.encode(text, o.bos ?? this.ids.length === 0);
    const t0 = performance.now();
    await this.exclusive(() => this.feed(ids, o));
    return { tokens: ids.length, seconds: (performance.now() - t0) / 1000 };
  }

  /** Generates after `prompt` (appended to the context, or the whole context with `replace`). */
  generate(prompt: string, o: GenerateOptions = {}): Generation {
    this.check();
    const bos = o.bos ?? (o.replace || this.ids.length === 0);
    return this.generation(this.encode(prompt, bos), o);
  }

  /** The conversation rendered by the model's chat template, as text. */
  renderChat(messages: readonly ChatMessage[]): string {
    return this.template().render(messages, true);
  }

  /** Token ids of a conversation: the template's text, BOS as a token when the template starts with it. */
  chatTokens(messages: readonly ChatMessage[]): number[] {
    let text = this.renderChat(messages);
    const bos = this.special.bos;
    const startsWithBos = bos !== undefined && bos !== '' && text.startsWith(bos);
    if (startsWithBos) text = text.slice(bos.length);
    return this.encode(text, startsWithBos);
  }

  /** The assistant's reply to a conversation (the messages are the whole context). */
  chat(messages: readonly ChatMessage[], o: Omit<GenerateOptions, 'replace' | 'bos'> = {}): Generation {
    this.check();
    return this.generation(this.chatTokens(messages), { ...o, replace: true });
  }

  private generation(promptIds: number[], o: GenerateOptions): Generation {
    const cached = o.replace ? this.cachedPrefix(promptIds) : 0;
    const base = o.replace ? cached : this.ids.length;
    const fresh = promptIds.length - cached;
    const room = this.contextSize - base - fresh;
    if (room < 0 || (fresh === 0 && base === 0))
      throw new ContextOverflowError(
        fresh === 0 && base === 0
          ? 'the prompt is empty and the model has no BOS to start from'
          : `the prompt needs ${base + fresh} tokens but the session's context holds ${this.contextSize}`,
        this.contextSize,
        base + fresh,
      );
    const maxTokens = o.maxTokens ?? room;
    if (!Number.isInteger(maxTokens) || maxTokens < 0)
      throw new InputError(`maxTokens must be a non-negative integer, got ${maxTokens}`);
    if (maxTokens > room)
      throw new ContextOverflowError(
        `the prompt (${base + fresh} tokens) and maxTokens (${maxTokens}) need ${base + fresh + maxTokens} tokens ` +
          `but the session's context holds ${this.contextSize}`,
        this.contextSize,
        base + fresh + maxTokens,
      );
    const vocab = Math.min(this.decoder.config.vocabSize, this.tokenizer.vocabSize);
    const sampler = new Sampler(vocab, { temperature: o.temperature ?? 0, topP: o.topP, seed: o.seed });
    const stops = new StopText(o.stop);
    const run = async function* (this: Session, finish: (r: GenerationResult) => void): AsyncGenerator<string> {
      this.check();
      if (this.busy) throw new InputError('the session is already generating; wait for it or use another session');
      this.busy = true;
      try {
        const t0 = performance.now();
        let reused = 0;
        if (o.replace) {
          reused = this.cachedPrefix(promptIds);
          if (reused === 0) this.reset();
          await this.feed(promptIds.slice(reused), o);
        } else await this.feed(promptIds, o);
        const t1 = performance.now();
        const stream = new TextStream(this.tokenizer, this.ids[this.ids.length - 1]);
        const ids: number[] = [];
        let text = '';
        let finishReason: GenerationResult['finishReason'] = 'length';
        let atStopString = false;
        for (let i = 0; i < maxTokens; i++) {
          o.signal?.throwIfAborted();
          const logits = this.logits!;
          const id = sampler.next(logits.length > vocab ? logits.subarray(0, vocab) : logits);
          this.generatedTokens++;
          if ((o.stopAtEos ?? true) && id === this.tokenizer.eosId) {
            finishReason = 'stop';
            break;
          }
          ids.push(id);
          const piece = stops.push(stream.push(id));
          text += piece.text;
          if (piece.text) yield piece.text;
          if (piece.stopped) {
            finishReason = 'stop';
            atStopString = true;
            break;
          }
          if (i + 1 < maxTokens) {
            await this.forward([id]);
            // Let the event loop run (a client's disconnect, an abort) between tokens.
            await nextTurn();
          }
        }
        const tail = atStopString ? '' : stops.push(stream.flush()).text + stops.flush();
        if (tail) {
          text += tail;
          yield tail;
        }
        const t2 = performance.now();
        finish({
          text,
          ids,
          promptTokens: promptIds.length,
          cachedTokens: reused,
          completionTokens: ids.length,
          finishReason,
          prefillSeconds: (t1 - t0) / 1000,
          decodeSeconds: (t2 - t1) / 1000,
        });
      } finally {
        this.busy = false;
      }
    };
    return new Generation((finish) => run.call(this, finish));
  }

  /** How many of ids the context already holds as its beginning (the whole context must be such a prefix). */
  private cachedPrefix(ids: readonly number[]): number {
    const n = this.ids.length;
    if (n === 0 || n > ids.length) return 0;
    for (let i = 0; i < n; i++) if (this.ids[i] !== ids[i]) return 0;
    // With nothing new to feed, the stored logits of the last token are the next step's.
    return n;
  }

  private async feed(ids: readonly number[], o: PrefillOptions): Promise<void> {
    if (ids.length === 0) return;
    if (this.ids.length + ids.length > this.contextSize)
      throw new ContextOverflowError(
        `${this.ids.length} + ${ids.length} tokens exceed the session's context of ${this.contextSize}`,
        this.contextSize,
        this.ids.length + ids.length,
      );
    // Star's anchor block is laid out from the first prompt: it must arrive whole.
    const step = this.info.wholePrompt && this.ids.length === 0 ? ids.length : this.info.chunk;
    const t0 = performance.now();
    for (let at = 0; at < ids.length; at += step) {
      o.signal?.throwIfAborted();
      await this.forward(ids.slice(at, at + step));
      const done = Math.min(ids.length, at + step);
      if (o.onProgress) {
        const seconds = (performance.now() - t0) / 1000;
        const rate = seconds > 0 ? done / seconds : 0;
        o.onProgress({
          tokens: done,
          totalTokens: ids.length,
          tokensPerSecond: rate,
          etaSeconds: rate > 0 ? (ids.length - done) / rate : 0,
        });
      }
      if (done < ids.length) await nextTurn();
    }
  }

  private async forward(ids: readonly number[]): Promise<void> {
    try {
      this.logits = await this.decoder.forward(ids);
      this.ids.push(...ids);
    } catch (e) {
      // A forward that failed part way leaves caches no one can name: start the context over.
      if (this.decoder.position !== this.ids.length) this.reset();
      throw e;
    }
  }

  private async exclusive<T>(work: () => Promise<T>): Promise<T> {
    if (this.busy) throw new InputError('the session is busy; wait for the running call to finish');
    this.busy = true;
    try {
      return await work();
    } finally {
      this.busy = false;
    }
  }

  private check(): void {
    if (this.disposed) throw new DisposedError('the session was disposed');
  }

  /** The header a file saved from this session now would carry (without its caches and format version). */
  async header(): Promise<Omit<SessionHeader, 'caches' | 'version'>> {
    const c = this.owner.config;
    return {
      format: 'longctx-session',
      model: {
        fingerprint: await this.owner.fingerprint(),
        source: this.owner.source,
        architecture: c.architecture,
        layers: c.layers,
        vocabSize: c.vocabSize,
      },
      attention: this.info.attention,
      positions: this.info.positions,
      contextSize: this.contextSize,
      tokenCount: this.ids.length,
    };
  }

  /** The context as a session file: without `file`, its bytes; with `file` (Node), the file is written head then
   * array by array (no buffer of the whole file, so it may pass 4 GiB) and its size in bytes is returned.
   * loadSession(model, file) resumes it. It holds the layers' caches where every layer can hand them over
   * (plain KV methods), else only the tokens. */
  async save(): Promise<Uint8Array>;
  async save(file: string): Promise<number>;
  async save(file?: string): Promise<Uint8Array | number> {
    this.check();
    if (this.busy) throw new InputError('the session is busy; save it once the running call has finished');
    const caches = this.logits && this.ids.length ? await this.decoder.saveCaches?.() : undefined;
    const saved = caches && this.logits ? { caches, logits: this.logits } : undefined;
    if (file === undefined) return encodeSessionFile(await this.header(), this.ids, saved);
    const { writeSessionStream } = await import('./session-stream.js');
    return writeSessionStream(file, planSessionFile(await this.header(), this.ids, saved));
  }

  /** Restores a saved context: from the saved caches when the decoder takes them, else by feeding the saved
   * tokens again (see session-file.ts). The caches' layers may still be on their way (a file read layer by layer). */
  async restore(
    ids: readonly number[],
    o: PrefillOptions = {},
    saved?: { caches: PendingCaches; logits: Float32Array },
  ): Promise<void> {
    this.check();
    await this.exclusive(async () => {
      this.reset();
      if (saved && saved.caches.position === ids.length && (await this.decoder.restoreCaches?.(saved.caches))) {
        this.ids = [...ids];
        this.logits = saved.logits.slice();
        this.restoredFrom = 'caches';
        return;
      }
      await this.feed(ids, o);
      this.restoredFrom = 'replay';
    });
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.decoder.destroy();
    this.onDispose(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}
