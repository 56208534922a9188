// Chat templates: the Jinja template a model ships (tokenizer_config.json's chat_template, a
// chat_template.jinja beside it, or GGUF's tokenizer.chat_template) rendered by @huggingface/jinja, the
// implementation transformers.js uses, with the variables transformers passes (messages, bos_token,
// eos_token, add_generation_prompt).
import { Template } from '@huggingface/jinja';
import { ChatTemplateError, NoChatTemplateError } from './errors.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

export interface ChatTemplate {
  readonly source: string;
  /** The conversation as the model was trained to read it, ending with the assistant's turn opened. */
  render(messages: readonly ChatMessage[], addGenerationPrompt?: boolean): string;
}

export interface SpecialTokens {
  bos?: string;
  eos?: string;
}

export function chatTemplate(source: string, special: SpecialTokens): ChatTemplate {
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new ChatTemplateError(`the chat template does not parse: ${(e as Error).message}`);
  }
  return {
    source,
    render(messages, addGenerationPrompt = true) {
      checkMessages(messages);
      try {
        return template.render({
          messages,
          bos_token: special.bos ?? '',
          eos_token: special.eos ?? '',
          add_generation_prompt: addGenerationPrompt,
        });
      } catch (e) {
        // Templates refuse conversations through raise_exception('...') (roles out of order, a missing system turn).
        throw new ChatTemplateError(`the chat template failed to render: ${(e as Error).message}`);
      }
    },
  };
}

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0)
    throw new ChatTemplateError('chat needs at least one message ({ role, content })');
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || typeof m.content !== 'string')
      throw new ChatTemplateError(`message ${i} must be { role: string, content: string }`);
  });
}

/** The error chat() raises when the model has no template; names where one would have been found. */
export function noChatTemplate(source: string): NoChatTemplateError {
  return new NoChatTemplateError(
    `${source} has no chat template (none in tokenizer_config.json, chat_template.jinja or GGUF tokenizer.chat_template); ` +
      'pass one as loadModel(..., { chatTemplate }) or use generate() with your own prompt',
  );
}

/** tokenizer_config.json's chat_template: a string, or a list of named templates (the 'default' one is used). */
export function templateFromConfig(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.filter(
      (t): t is { name: string; template: string } =>
        typeof t === 'object' && t !== null && typeof t.name === 'string' && typeof t.template === 'string',
    );
    return (named.find((t) => t.name === 'default') ?? named[0])?.template;
  }
  return undefined;
}

/** A special token as tokenizer_config.json writes it: a string or { content }. */
export function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string')
    return (value as { content: string }).content;
  return undefined;
}
