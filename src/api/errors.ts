// The library's own typed errors, beside the engine's (src/errors.ts): callers catch them by class.
import { InputError, OutOfMemoryError, UnsupportedError } from '../errors.js';

/** chat() on a model whose files carry no chat template (tokenizer_config.json, chat_template.jinja or GGUF
 * tokenizer.chat_template); pass one with loadModel's `chatTemplate` option. */
export class NoChatTemplateError extends UnsupportedError {}

/** The chat template failed to parse or render (a Jinja error, or messages of the wrong shape). */
export class ChatTemplateError extends InputError {}

/** A session's context does not fit the memory budget; nothing was allocated. `fits` lists the attention
 * methods that would fit at this context size, cheapest first (empty when none does). */
export class ContextTooLargeError extends OutOfMemoryError {
  constructor(
    message: string,
    requestedBytes: number,
    limitBytes: number,
    readonly fits: readonly string[],
  ) {
    super(message, requestedBytes, limitBytes);
  }
}

/** The prompt and the tokens asked for do not fit the session's context size. */
export class ContextOverflowError extends InputError {
  constructor(
    message: string,
    readonly contextSize: number,
    readonly requestedTokens: number,
  ) {
    super(message);
  }
}

/** A saved session was made with another model, method, position scheme or format version. */
export class SessionMismatchError extends InputError {}

/** The session was disposed (or its model was) and cannot be used again. */
export class DisposedError extends InputError {}
