// Errors as OpenAI's API returns them: an HTTP status and { error: { message, type, param, code } }, so that
// OpenAI clients raise their own typed errors (BadRequestError, AuthenticationError, RateLimitError, ...).
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null): HttpError =>
  new HttpError(400, message, 'invalid_request_error', code, param);
