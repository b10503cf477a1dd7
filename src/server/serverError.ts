/**
 * What went wrong with a server, as one kind and one message that says what to do. Each kind is told once
 * (./serverNotices.ts); nothing retries on its own.
 */
import { redactCredentials } from '../util/secureUrl';

export type ServerFailure = 'refused' | 'unreachable' | 'unauthorized' | 'forbidden' | 'unknown-model' | 'timeout' | 'server-error' | 'not-the-api' | 'insecure';

export class ServerError extends Error {
  /** The failure again, where callers look for an error's code (as on a WorkerError). */
  readonly code: ServerFailure;

  constructor(readonly failure: ServerFailure, message: string) {
    super(message);
    this.code = failure;
  }
}

/** The message for `failure` at `origin` (`detail`: what the server or the transport said, credentials removed). */
export function serverFailureMessage(failure: ServerFailure, origin: string, detail = ''): string {
  const said = detail ? ` (${redactCredentials(detail).slice(0, 200)})` : '';
  switch (failure) {
    case 'refused':
      return `the server at ${origin} refused the connection: is it running? Start it, or check phiComplete.server.url.`;
    case 'unreachable':
      return `the server at ${origin} could not be reached${said}. Check phiComplete.server.url.`;
    case 'unauthorized':
      return `the server at ${origin} asks for a token (401)${said}. Set it with "phi-complete: Set Server Token".`;
    case 'forbidden':
      return `the server at ${origin} refused this token (403)${said}. Set another with "phi-complete: Set Server Token".`;
    case 'unknown-model':
      return `the server at ${origin} does not serve the model named in phiComplete.server.model${said}. Set the name it serves.`;
    case 'timeout':
      return `the server at ${origin} did not answer in time: it may be overloaded, or still loading its model.`;
    case 'server-error':
      return `the server at ${origin} failed${said}. See its log.`;
    case 'not-the-api':
      return `the server at ${origin} did not answer as phiComplete.server.api says it would${said}. Check the URL and the API setting.`;
    case 'insecure':
      return `${detail}: the server must use https, or plain http only on this machine (127.0.0.1, localhost).`;
  }
}

/** What the server said in an error answer: OpenAI's and llama.cpp's `{error: {message}}`, Ollama's `{error: "…"}`, or the text. */
export function errorDetail(body: string): string {
  try {
    const json = JSON.parse(body) as { error?: unknown; message?: unknown };
    if (typeof json.error === 'string') return json.error;
    const message = (json.error as { message?: unknown } | undefined)?.message ?? json.message;
    if (typeof message === 'string') return message;
  } catch {
    // not JSON: the text itself
  }
  return body.trim().split('\n')[0] ?? '';
}

/** The failure an HTTP error status stands for (`detail`: what the server said). */
export function failureOfStatus(status: number, detail: string): ServerFailure {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  // vLLM and Ollama answer an unknown model with 404 (and vLLM sometimes 400) naming the model; a 404 about
  // anything else is a path this server does not have: not the API.
  if ((status === 404 || status === 400) && /model/i.test(detail) && /(not found|does not exist|unknown|not exist|no such)/i.test(detail)) return 'unknown-model';
  if (status === 404 || status === 405) return 'not-the-api';
  if (status === 408 || status === 504) return 'timeout';
  if (status >= 500) return 'server-error';
  return 'not-the-api';
}

/** The failure of a request that got no answer (fetch's error), by its cause. */
export function failureOfTransport(error: unknown): { failure: ServerFailure; detail: string } {
  const cause = (error as { cause?: { code?: unknown; message?: unknown; errors?: unknown } } | undefined)?.cause;
  // A name with several addresses (localhost: ::1 and 127.0.0.1) fails with one error per address.
  const codes = [cause?.code, ...(Array.isArray(cause?.errors) ? cause.errors.map((e: { code?: unknown }) => e?.code) : [])];
  const code = codes.includes('ECONNREFUSED') ? 'ECONNREFUSED' : typeof cause?.code === 'string' ? cause.code : '';
  if (code === 'ECONNREFUSED') return { failure: 'refused', detail: code };
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') return { failure: 'timeout', detail: code };
  const message = typeof cause?.message === 'string' ? cause.message : (error as Error | undefined)?.message ?? String(error);
  return { failure: 'unreachable', detail: code ? `${code}: ${message}` : message };
}
