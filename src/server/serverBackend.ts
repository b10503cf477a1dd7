/**
 * A server as the completion backend (CompletionBackend, src/completion/backend.ts): llama.cpp's llama-server or an
 * OpenAI-compatible /v1/completions, over Node's fetch. Completions and Explain Selection stream; the abort signal
 * (a keystroke) aborts the HTTP request, which makes llama-server stop decoding. Warm-ups read the prompt into the
 * server's cache (llama.cpp: n_predict 0), one at a time; a generation waits for one of its own document (the
 * server cannot stop a prompt batch midway) and aborts one of another. llama.cpp requests name the slot that last
 * served their window (id_slot, ./slotMemory.ts), so they reuse its cache.
 *
 * The token goes only to the configured origin (redirects are not followed), and only over https or loopback http.
 * A failure is reported once to `onFailure`; for FAILURE_QUIET_MS after it, requests to the same server fail at once
 * without a request, so that typing does not hammer a server that is down.
 *
 * As the worker does, a completion whose window the server has not read yet (a file just opened, a jump) answers
 * from its quick prompt (GenerationParams.quick) where the rest would take longer to read than the quick prompt
 * allows, ending with its first line; the server then reads the window (a warm-up), which the next request continues.
 *
 * Plain Node: no 'vscode' import.
 */
import type { BackendAnswer, CompletionBackend } from '../completion/backend';
import { estimateTokens } from '../completion/tokenEstimate';
import { StopMatcher } from '../inference/stopSequences';
import type { FinishReason, GenerationParams, GenerationStats, PrefilledEvent, QuickPrompt } from '../protocol';
import { holdsCompleteLine } from '../shared/firstLine';
import type { ServerApi } from '../settings/settings';
import { insecureUrlReason, redactUrl } from '../util/secureUrl';
import { EventStreamReader, NotTheApiError, parseChunk, serverRequest, type ServerChunk, type ServerTimings } from './serverApi';
import { errorDetail, failureOfStatus, failureOfTransport, ServerError, serverFailureMessage } from './serverError';
import { continuesWindow, SlotMemory } from './slotMemory';

/** Where requests go (from the settings). */
export interface ServerEndpoint {
  readonly url: string;
  readonly api: ServerApi;
  readonly model: string;
}

/** What the status bar shows of one answer. */
export interface ServerAnswerReport {
  /** The server's host (and port), as the status bar names it. */
  readonly host: string;
  readonly timings: ServerTimings | undefined;
  readonly firstTokenMs: number;
}

export interface ServerBackendOptions {
  readonly endpoint: () => ServerEndpoint;
  /** The server token (VS Code's secret storage), sent as a bearer token to the endpoint's origin only. */
  readonly token: () => PromiseLike<string | undefined>;
  /** How long the server may stay silent (no answer, or no byte of a streamed one) before the request is given up. */
  readonly timeoutMs?: number;
  readonly onAnswer?: (report: ServerAnswerReport) => void;
  readonly onFailure?: (error: ServerError) => void;
}

/** The default of ServerBackendOptions.timeoutMs: a server loading its model answers within this. */
export const SERVER_TIMEOUT_MS = 30_000;
/** After a failure, requests to the same server fail at once for this long (no request is sent). */
export const FAILURE_QUIET_MS = 10_000;

/** The host a server URL names, for the status bar ("127.0.0.1:8080"). */
export function serverHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function endpointKey(endpoint: ServerEndpoint): string {
  return `${endpoint.api} ${endpoint.url} ${endpoint.model}`;
}

/** One request's answer as it arrives. */
interface Received {
  text: string;
  finishReason: FinishReason | undefined;
  timings: ServerTimings | undefined;
  pieces: number;
  firstTokenAt: number | undefined;
}

export class ServerBackend implements CompletionBackend {
  private generating = 0;
  /** The warm-up in flight (one at a time), the document and prompt it reads, and its end. */
  private warmUp: { readonly controller: AbortController; readonly sequence: string; readonly prompt: string; readonly ended: Promise<unknown> } | undefined;
  /** What the server read of each document, and which llama.cpp slot holds which window. */
  private readonly slots = new SlotMemory();
  private failure: { readonly key: string; readonly error: ServerError; readonly at: number } | undefined;

  constructor(private readonly options: ServerBackendOptions) {}

  /** Streams a generation, from `params.quick`'s prompt where the server has read too little of `prompt`. */
  async generate(prompt: string, params: GenerationParams, onDelta: (text: string) => void, signal: AbortSignal, sequence: string): Promise<BackendAnswer> {
    const endpoint = this.options.endpoint();
    const started = performance.now();
    const quick = this.quickFor(sequence, prompt, params.quick);
    let answer: BackendAnswer | undefined;
    this.generating++;
    try {
      // A warm-up of this window reads what the request needs, and the server cannot stop a prompt batch midway:
      // wait for it (a keystroke still cancels the wait). Not where the quick prompt answers: the warm-up would hold
      // the server for the whole window first, so it stops after its current batch (what it read stays in the slot's
      // cache) and reads on after the answer. One of another window (the next one, read ahead) or another document
      // is not needed now: abort it.
      const warmUp = this.warmUp;
      if (warmUp && warmUp.sequence === sequence && !quick && continuesWindow(warmUp.prompt, prompt)) await Promise.race([warmUp.ended, aborted(signal)]);
      else warmUp?.controller.abort();
      if (signal.aborted) return { text: '', finishReason: 'cancelled', stats: answerStats(undefined, 0, 0, performance.now() - started, false) };
      answer = quick
        ? await this.stream(endpoint, quick.prompt, { ...params, maxNewTokens: Math.min(params.maxNewTokens, quick.maxNewTokens ?? Infinity) }, onDelta, signal, sequence, started, true)
        : await this.stream(endpoint, prompt, params, onDelta, signal, sequence, started, false);
      return answer;
    } finally {
      this.generating--;
      // The window the quick prompt left unread comes next, so that the next request continues it.
      if (quick && answer && answer.finishReason !== 'cancelled') void this.prefill(sequence, prompt, params.maxNewTokens).catch(() => undefined);
    }
  }

  /** `quick`, where the server has not read more of `prompt` than `quick.readLimit` tokens would take to read. */
  private quickFor(sequence: string, prompt: string, quick: QuickPrompt | undefined): QuickPrompt | undefined {
    if (!quick) return undefined;
    return estimateTokens(prompt.slice(this.slots.readChars(sequence, prompt))) > quick.readLimit ? quick : undefined;
  }

  /** Streams `prompt`'s answer; `quick`: the request's quick prompt, whose answer ends with its first line ('line'). */
  private async stream(endpoint: ServerEndpoint, prompt: string, params: GenerationParams, onDelta: (text: string) => void, signal: AbortSignal, sequence: string, started: number, quick: boolean): Promise<BackendAnswer> {
    const received: Received = { text: '', finishReason: undefined, timings: undefined, pieces: 0, firstTokenAt: undefined };
    let slot: number | undefined;
    // Stop sequences cut here too: not every OpenAI-compatible server applies them all (OpenAI's limit is 4).
    const stops = new StopMatcher(params.stop);
    await this.request(endpoint, serverRequest(endpoint.api, prompt, params, { model: endpoint.model, slot: this.slots.slotFor(sequence, prompt) }), signal, (chunk) => {
      if (chunk.slot !== undefined && slot === undefined) this.slots.remember(sequence, slot = chunk.slot, prompt);
      if (chunk.timings) received.timings = chunk.timings;
      if (chunk.finishReason) received.finishReason = chunk.finishReason;
      if (chunk.text === '') return true;
      received.pieces++;
      received.firstTokenAt ??= performance.now();
      const { text, stopped } = stops.push(chunk.text);
      if (text) {
        received.text += text;
        onDelta(text);
      }
      if (stopped) received.finishReason = 'stop';
      else if (quick && text.includes('\n') && holdsCompleteLine(received.text)) received.finishReason = 'line';
      return !stopped && received.finishReason !== 'line';
    });
    // A server that names no slot is taken to keep what it read (prefix caching): it read the prompt once it answered.
    if (slot === undefined && (received.pieces > 0 || received.finishReason !== undefined)) this.slots.remember(sequence, undefined, prompt);
    if (received.finishReason !== 'stop') {
      const rest = stops.flush();
      if (rest) {
        received.text += rest;
        onDelta(rest);
      }
    }
    const finishReason: FinishReason = signal.aborted ? 'cancelled' : received.finishReason ?? 'length';
    const firstTokenMs = (received.firstTokenAt ?? performance.now()) - started;
    if (!signal.aborted) this.options.onAnswer?.({ host: serverHost(endpoint.url), timings: received.timings, firstTokenMs });
    return { text: received.text, finishReason, stats: answerStats(received.timings, received.pieces, firstTokenMs, performance.now() - started, quick) };
  }

  /**
   * Reads `prompt` into the server's cache ahead of the request that will send it, one at a time: 'busy' (not
   * sent) while a generation or another warm-up is in flight; 'cancelled' when a generation for another document
   * took over. Undefined when it failed (told once).
   */
  async prefill(sequence: string, prompt: string, maxNewTokens: number): Promise<PrefilledEvent | undefined> {
    const stats = { quick: false, promptTokens: 0, truncatedTokens: 0, reusedTokens: 0, prefilledTokens: 0, prefillMs: 0 };
    if (this.generating > 0 || this.warmUp) return { type: 'prefilled', id: 0, outcome: 'busy', stats };
    const endpoint = this.options.endpoint();
    const controller = new AbortController();
    const started = performance.now();
    let timings: ServerTimings | undefined;
    let slot: number | undefined;
    const params: GenerationParams = { maxNewTokens, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], speculative: false };
    const reading = this.request(endpoint, serverRequest(endpoint.api, prompt, params, { model: endpoint.model, warmUp: true, slot: this.slots.slotFor(sequence, prompt) }), controller.signal, (chunk) => {
      if (chunk.slot !== undefined) this.slots.remember(sequence, slot = chunk.slot, prompt);
      timings = chunk.timings ?? timings;
      return true;
    });
    const warmUp = { controller, sequence, prompt, ended: reading.catch(() => undefined) };
    this.warmUp = warmUp;
    try {
      await reading;
    } catch (error) {
      if (error instanceof ServerError) return undefined;
      throw error;
    } finally {
      if (this.warmUp === warmUp) this.warmUp = undefined;
    }
    if (controller.signal.aborted) return { type: 'prefilled', id: 0, outcome: 'cancelled', stats };
    if (slot === undefined) this.slots.remember(sequence, undefined, prompt);
    return {
      type: 'prefilled',
      id: 0,
      outcome: 'done',
      stats: {
        ...stats,
        ...promptTokensOf(timings),
        prefilledTokens: timings?.promptTokens ?? 0,
        prefillMs: timings?.promptMs ?? performance.now() - started,
      },
    };
  }

  /**
   * Sends one request and hands each chunk of the answer to `onChunk` (false: stop reading). Resolves when the
   * answer ended or `signal` aborted; rejects with a ServerError (reported once through onFailure).
   */
  private async request(endpoint: ServerEndpoint, request: { path: string; body: Record<string, unknown> }, signal: AbortSignal, onChunk: (chunk: ServerChunk) => boolean): Promise<void> {
    const key = endpointKey(endpoint);
    const origin = redactUrl(endpoint.url);
    const recent = this.failure;
    if (recent && recent.key === key && performance.now() - recent.at < FAILURE_QUIET_MS) {
      // Reported again (the notices tell a kind once): they may have been reset since (the settings changed).
      this.options.onFailure?.(recent.error);
      throw recent.error;
    }
    let url: URL;
    try {
      url = new URL(endpoint.url.replace(/\/+$/, '') + request.path);
    } catch {
      throw this.failed(key, new ServerError('not-the-api', `phiComplete.server.url (${origin}) is not a URL`));
    }
    const insecure = insecureUrlReason(url);
    if (insecure) throw this.failed(key, new ServerError('insecure', serverFailureMessage('insecure', origin, insecure)));
    if (signal.aborted) return;

    const token = await this.options.token();
    const controller = new AbortController();
    let timedOut = false;
    const timeoutMs = this.options.timeoutMs ?? SERVER_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const silence = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
    };
    const abort = (): void => controller.abort();
    signal.addEventListener('abort', abort);
    silence();
    const fail = (failure: ServerError['failure'], detail = ''): ServerError => this.failed(key, new ServerError(failure, serverFailureMessage(failure, origin, detail)));
    try {
      let response: Response;
      try {
        response = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'text/event-stream, application/json',
            // Only to this origin: redirects are not followed (below), so the token never travels further.
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
          body: JSON.stringify(request.body),
          redirect: 'manual',
          signal: controller.signal,
        });
      } catch (error) {
        if (signal.aborted) return;
        if (timedOut) throw fail('timeout');
        const { failure, detail } = failureOfTransport(error);
        throw fail(failure, token ? detail.split(token).join('***') : detail);
      }
      if (response.status >= 300 && response.status < 400) {
        await response.body?.cancel().catch(() => undefined);
        throw fail('not-the-api', `it answered ${response.status}, a redirect, which is not followed`);
      }
      if (!response.ok) {
        const body = await response.text().catch(() => '');
        if (signal.aborted) return;
        throw fail(failureOfStatus(response.status, errorDetail(body)), `${response.status}: ${errorDetail(body)}`);
      }
      const type = response.headers.get('content-type') ?? '';
      try {
        if (type.includes('text/event-stream')) await this.readEvents(endpoint.api, response, silence, onChunk);
        else if (type.includes('json')) onChunk(parseChunk(endpoint.api, JSON.parse(await response.text())));
        else throw new NotTheApiError(`it answered with ${type || 'no content type'}`);
      } catch (error) {
        if (signal.aborted) return;
        if (timedOut) throw fail('timeout');
        if (error instanceof NotTheApiError || error instanceof SyntaxError) throw fail('not-the-api', error.message);
        const { failure, detail } = failureOfTransport(error);
        throw fail(failure, detail);
      }
      this.failure = undefined;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
    }
  }

  /** Reads a server-sent event stream to its end (or until `onChunk` says stop), restarting the silence timer on every byte. */
  private async readEvents(api: ServerApi, response: Response, silence: () => void, onChunk: (chunk: ServerChunk) => boolean): Promise<void> {
    if (!response.body) throw new NotTheApiError('the answer has no body');
    const events = new EventStreamReader();
    const decoder = new TextDecoder();
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        silence();
        for (const payload of events.push(decoder.decode(value, { stream: true }))) {
          if (payload === '[DONE]') return;
          if (!onChunk(parseChunk(api, JSON.parse(payload)))) return;
        }
      }
    } finally {
      // Closes the connection when the answer is not read to its end: llama-server stops decoding.
      await reader.cancel().catch(() => undefined);
    }
  }

  /** Sends the next request whatever failed before (a new token was set). */
  forgetFailure(): void {
    this.failure = undefined;
  }

  private failed(key: string, error: ServerError): ServerError {
    this.failure = { key, error, at: performance.now() };
    this.options.onFailure?.(error);
    return error;
  }
}

/** Resolves once `signal` aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/** The prompt's tokens as the server's timings count them: those it read now plus those from its cache, and the latter. */
function promptTokensOf(timings: ServerTimings | undefined): { promptTokens: number; reusedTokens: number } {
  return { promptTokens: (timings?.promptTokens ?? 0) + (timings?.cachedTokens ?? 0), reusedTokens: timings?.cachedTokens ?? 0 };
}

function answerStats(timings: ServerTimings | undefined, pieces: number, firstTokenMs: number, totalMs: number, quick: boolean): GenerationStats {
  return {
    ...promptTokensOf(timings),
    truncatedTokens: 0,
    copiedTokens: 0,
    prefillMs: timings?.promptMs ?? firstTokenMs,
    firstTokenMs,
    generatedTokens: timings?.generatedTokens || pieces,
    decodeMs: timings?.decodeMs ?? Math.max(0, totalMs - firstTokenMs),
    decodeSteps: timings?.generatedTokens || pieces,
    draftedTokens: 0,
    longestDraft: 0,
    acceptedDraftTokens: 0,
    recomputedRows: 0,
    pausedDraftSteps: 0,
    quick,
  };
}

/** An answer's timings as the status bar shows them: `short` in the bar, `long` in its tooltip. */
export function describeServerAnswer(report: ServerAnswerReport): { short: string; long: string } {
  const t = report.timings;
  const first = `first token after ${Math.round(report.firstTokenMs)} ms`;
  if (!t) return { short: `${Math.round(report.firstTokenMs)} ms`, long: `Last answer: ${first}.` };
  const read = `read ${t.promptTokens} prompt tokens${t.cachedTokens ? ` (${t.cachedTokens} more from its cache)` : ''}${t.promptMs === undefined ? '' : ` in ${Math.round(t.promptMs)} ms`}`;
  const rate = t.decodeMs ? ` (${(t.generatedTokens / (t.decodeMs / 1000)).toFixed(0)} tokens/s)` : '';
  const wrote = `wrote ${t.generatedTokens} tokens${t.decodeMs === undefined ? '' : ` in ${Math.round(t.decodeMs)} ms${rate}`}`;
  const serverMs = t.promptMs !== undefined && t.decodeMs !== undefined ? Math.round(t.promptMs + t.decodeMs) : Math.round(report.firstTokenMs);
  return { short: `${serverMs} ms`, long: `Last answer: the server ${read}, ${wrote}; ${first}.` };
}
