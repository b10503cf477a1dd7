/**
 * The two server APIs as data: what a request sends, and what one streamed chunk says. llama.cpp is llama-server's
 * own /completion (prompt cache, slots, timings); openai is /v1/completions (vLLM, SGLang, Ollama, and
 * llama-server's OpenAI endpoint). No I/O here: ./serverBackend.ts sends and reads.
 */
import type { FinishReason, GenerationParams } from '../protocol';
import type { ServerApi } from '../settings/settings';

/** Where a request goes and what it asks the model for. */
export interface ServerRequest {
  readonly path: string;
  readonly body: Record<string, unknown>;
}

/** One chunk of a streamed answer, or a whole answer (a warm-up). */
export interface ServerChunk {
  /** Text generated since the last chunk. */
  readonly text: string;
  /** Set on the last chunk. */
  readonly finishReason?: FinishReason;
  /** What the server says it did (llama.cpp's `timings`; openai's `usage` where sent). */
  readonly timings?: ServerTimings;
  /** llama.cpp: the slot (KV cache) that serves the request. */
  readonly slot?: number;
}

/** The server's own account of a request (llama.cpp's `timings`); counts only where the API gives no times. */
export interface ServerTimings {
  /** Prompt tokens read for this request (not counting those found in the server's cache). */
  readonly promptTokens: number;
  /** Prompt tokens the server's prompt cache already held. */
  readonly cachedTokens: number;
  readonly promptMs?: number;
  readonly generatedTokens: number;
  readonly decodeMs?: number;
}

/** What a generation asks for beyond the prompt and the sampling parameters. */
export interface GenerateOptions {
  readonly model: string;
  /** llama.cpp's slot holding this window's cache, learned from an earlier answer (ServerChunk.slot). */
  readonly slot?: number;
  /** n_predict 0: read the prompt into the slot's cache, generate nothing (a warm-up). */
  readonly warmUp?: boolean;
}

/**
 * Stops generating at the first newline after this long (llama.cpp's t_max_predict_ms): a slow server still
 * answers with a whole first line, which is what a suggestion shows first.
 */
export const MAX_PREDICT_MS = 5000;

/** The request for `prompt` in `api`. Greedy sampling is llama.cpp's with every other sampler neutral (its defaults are not). */
export function serverRequest(api: ServerApi, prompt: string, params: GenerationParams, options: GenerateOptions): ServerRequest {
  if (api === 'llama.cpp') {
    return {
      path: '/completion',
      body: {
        prompt,
        n_predict: options.warmUp ? 0 : params.maxNewTokens,
        stream: !options.warmUp,
        cache_prompt: true,
        // A window's first request names no slot: llama-server gives it the idle slot whose cached prompt shares
        // the most with it (each file, and each user of a shared server, keeps a slot of its own). Later ones name
        // the slot that answered, so they wait for it rather than re-read everything in another.
        ...(options.slot === undefined ? {} : { id_slot: options.slot }),
        temperature: params.temperature,
        top_k: params.topK,
        top_p: params.topP,
        min_p: 0,
        typical_p: 1,
        repeat_penalty: 1,
        presence_penalty: 0,
        frequency_penalty: 0,
        dry_multiplier: 0,
        seed: params.seed,
        stop: params.stop,
        ...(options.warmUp ? {} : { t_max_predict_ms: MAX_PREDICT_MS }),
      },
    };
  }
  return {
    path: '/v1/completions',
    body: {
      ...(options.model ? { model: options.model } : {}),
      prompt,
      // The OpenAI API has no read-only request: one token is the least a warm-up can ask for.
      max_tokens: options.warmUp ? 1 : params.maxNewTokens,
      stream: !options.warmUp,
      ...(options.warmUp ? {} : { stream_options: { include_usage: true } }),
      temperature: params.temperature,
      top_p: params.topP,
      seed: params.seed,
      stop: params.stop,
    },
  };
}

/** Why a response is not the API's: thrown by parseChunk, reported as 'not-the-api'. */
export class NotTheApiError extends Error {}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const count = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0);

function llamaFinish(chunk: Record<string, unknown>): FinishReason | undefined {
  if (chunk.stop !== true) return undefined;
  if (chunk.stop_type === 'eos') return 'eos';
  if (chunk.stop_type === 'word') return 'stop';
  return 'length';
}

function openaiFinish(reason: unknown): FinishReason | undefined {
  if (reason === null || reason === undefined) return undefined;
  return reason === 'length' ? 'length' : 'stop';
}

/** One parsed JSON chunk (a `data:` line of the stream, or a whole answer) as the API defines it; throws NotTheApiError otherwise. */
export function parseChunk(api: ServerApi, json: unknown): ServerChunk {
  if (!isRecord(json)) throw new NotTheApiError('the answer is not a JSON object');
  if (api === 'llama.cpp') {
    if (typeof json.content !== 'string') throw new NotTheApiError('the answer has no "content" (not llama-server\'s /completion)');
    const timings = isRecord(json.timings) ? json.timings : undefined;
    return {
      text: json.content,
      finishReason: llamaFinish(json),
      slot: Number.isInteger(json.id_slot) && (json.id_slot as number) >= 0 ? (json.id_slot as number) : undefined,
      timings: timings && {
        promptTokens: count(timings.prompt_n),
        cachedTokens: count(timings.cache_n),
        promptMs: count(timings.prompt_ms),
        generatedTokens: count(timings.predicted_n),
        decodeMs: count(timings.predicted_ms),
      },
    };
  }
  const choices = json.choices;
  const usage = isRecord(json.usage) ? json.usage : undefined;
  // With include_usage the last chunk carries the usage and no choices.
  if (Array.isArray(choices) && choices.length === 0 && usage) return { text: '', timings: openaiTimings(usage) };
  if (!Array.isArray(choices) || !isRecord(choices[0]) || typeof choices[0].text !== 'string') {
    throw new NotTheApiError('the answer has no "choices[0].text" (not an OpenAI-compatible /v1/completions)');
  }
  return { text: choices[0].text, finishReason: openaiFinish(choices[0].finish_reason), timings: usage && openaiTimings(usage) };
}

function openaiTimings(usage: Record<string, unknown>): ServerTimings {
  const details = isRecord(usage.prompt_tokens_details) ? usage.prompt_tokens_details : {};
  const cached = count(details.cached_tokens);
  return { promptTokens: Math.max(0, count(usage.prompt_tokens) - cached), cachedTokens: cached, generatedTokens: count(usage.completion_tokens) };
}

/**
 * Splits a server-sent event stream into its `data:` payloads as bytes arrive: push text, get the complete
 * payloads so far. Comments and other fields are skipped.
 */
export class EventStreamReader {
  private buffer = '';

  push(text: string): string[] {
    this.buffer += text;
    const payloads: string[] = [];
    for (let end = this.buffer.indexOf('\n'); end >= 0; end = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, end).replace(/\r$/, '');
      this.buffer = this.buffer.slice(end + 1);
      if (line.startsWith('data:')) payloads.push(line.slice(5).trimStart());
    }
    return payloads;
  }
}
