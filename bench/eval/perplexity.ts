/**
 * Held-out perplexity through the engine, fed as completions feed it: each window's first half in prefill chunks
 * (DEFAULT_PREFILL_CHUNK tokens a pass, logits kept for every row), its second half one token at a time through the
 * KV cache, as decoding does. Both halves are scored, and reported apart too: an int8 cache or a quantised lm_head
 * may hurt one path more than the other.
 */
import type { PhiDecoder } from '../../src/inference/decoder';
import { DEFAULT_PREFILL_CHUNK } from '../../src/inference/generator';

/**
 * The held-out token stream (each file's tokens, then <|endoftext|>, as the fixture's training set-up has it) cut
 * into `count` windows of `length` tokens, evenly spaced over the stream (fewer when the stream is too short).
 */
export function evenlySpacedWindows(stream: readonly number[], count: number, length: number): number[][] {
  const room = stream.length - length;
  if (room < 0 || count <= 0) return [];
  const windows = Math.min(count, room + 1);
  return Array.from({ length: windows }, (_, i) => {
    const start = windows === 1 ? 0 : Math.round((i * room) / (windows - 1));
    return stream.slice(start, start + length);
  });
}

/** −log p(target) from a row of logits, in float64 (log-sum-exp around the row's maximum). */
export function negativeLogLikelihood(logits: Float32Array, offset: number, vocab: number, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) max = Math.max(max, logits[offset + i]);
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[offset + i] - max);
  return max + Math.log(sum) - logits[offset + target];
}

export interface PerplexityResult {
  readonly windows: number;
  readonly tokensPerWindow: number;
  /** Scored positions: every token of a window but its first. */
  readonly scoredTokens: number;
  readonly meanNll: number;
  readonly perplexity: number;
  /** The positions scored from prefill chunks and from one-token steps. */
  readonly prefillPerplexity: number;
  readonly decodePerplexity: number;
  readonly seconds: number;
}

export function summarizeNll(prefill: readonly number[], decode: readonly number[], windows: number, tokensPerWindow: number, seconds: number): PerplexityResult {
  const mean = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
  const all = [...prefill, ...decode];
  return {
    windows,
    tokensPerWindow,
    scoredTokens: all.length,
    meanNll: mean(all),
    perplexity: Math.exp(mean(all)),
    prefillPerplexity: Math.exp(mean(prefill)),
    decodePerplexity: Math.exp(mean(decode)),
    seconds,
  };
}

/** Perplexity of the windows through `decoder`, one fresh cache a window. */
export async function enginePerplexity(decoder: PhiDecoder, windows: readonly (readonly number[])[], onWindow?: (done: number) => void): Promise<PerplexityResult> {
  const started = Date.now();
  const vocab = decoder.config.vocab_size;
  const prefill: number[] = [];
  const decode: number[] = [];
  for (const [w, window] of windows.entries()) {
    const cache = decoder.createCache();
    try {
      cache.reserve(window.length);
      const half = Math.floor(window.length / 2);
      for (let start = 0; start < half; start += DEFAULT_PREFILL_CHUNK) {
        const chunk = window.slice(start, Math.min(half, start + DEFAULT_PREFILL_CHUNK));
        const logits = await decoder.forward(chunk, cache, chunk.length);
        // Row r predicts token start + r + 1: the chunk's last row predicts the first token of the next chunk.
        for (let r = 0; r < chunk.length; r++) prefill.push(negativeLogLikelihood(logits, r * vocab, vocab, window[start + r + 1]));
      }
      for (let position = half; position < window.length - 1; position++) {
        const logits = await decoder.forward([window[position]], cache, 1);
        decode.push(negativeLogLikelihood(logits, 0, vocab, window[position + 1]));
      }
    } finally {
      cache.dispose();
    }
    onWindow?.(w + 1);
  }
  return summarizeNll(prefill, decode, windows.length, windows[0]?.length ?? 0, (Date.now() - started) / 1000);
}
