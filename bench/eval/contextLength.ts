/**
 * What context length buys: the same places scored with the last N tokens of context for several N, so that
 * context length is the only thing that changes between rows.
 *
 * - Perplexity: sample points inside single held-out files, each with at least the largest N tokens of the file
 *   before it. For each N the engine reads exactly the N tokens before the point (a fresh cache, positions from 0,
 *   prefill chunks as completions read) and scores the SCORED_TOKENS tokens after it: the same tokens for every N.
 * - Line completion: cursors whose file has more text before them than the largest budget holds, so that every
 *   budget cuts the prompt. The prompt is the provider's (completionPromptAt) with `contextTokens` N, which is
 *   also what a quick prompt of N tokens is for a place never read (requestPrompts.ts): the same stops,
 *   post-processing and scores as the main line completion.
 *
 * Differences are paired (the same samples for every N) and given with a 95% interval of their mean.
 */
import type { PhiDecoder } from '../../src/inference/decoder';
import { DEFAULT_PREFILL_CHUNK } from '../../src/inference/generator';
import { negativeLogLikelihood } from './perplexity';

/** Tokens scored after each sample point: about two lines of Python. */
export const SCORED_TOKENS = 32;

export interface FileTokens {
  readonly path: string;
  readonly tokens: readonly number[];
}

export interface ContextSample {
  readonly file: string;
  /** Token index of the first scored token in its file. */
  readonly at: number;
  /** The `maxContext` tokens before the point, then the `scored` tokens after it. */
  readonly tokens: readonly number[];
}

/**
 * `count` sample points evenly spaced over every point that has `maxContext` tokens of its own file before it and
 * `scored` after it (fewer when there are not that many points), in file order.
 */
export function contextSamples(files: readonly FileTokens[], count: number, maxContext: number, scored: number): ContextSample[] {
  const ranges = files.map((file) => ({ file, first: maxContext, points: Math.max(0, file.tokens.length - scored - maxContext + 1) })).filter((range) => range.points > 0);
  const total = ranges.reduce((sum, range) => sum + range.points, 0);
  const n = Math.min(count, total);
  const samples: ContextSample[] = [];
  for (let i = 0; i < n; i++) {
    // The midpoints of n equal parts of all points, so that no two samples coincide and none favours an end.
    let index = Math.floor(((i + 0.5) * total) / n);
    const range = ranges.find((candidate) => {
      if (index < candidate.points) return true;
      index -= candidate.points;
      return false;
    })!;
    const at = range.first + index;
    samples.push({ file: range.file.path, at, tokens: range.file.tokens.slice(at - maxContext, at + scored) });
  }
  return samples;
}

/** The mean of a paired difference and its 95% interval (normal approximation; 0 wide for fewer than 2 pairs). */
export interface PairedDifference {
  readonly mean: number;
  readonly low: number;
  readonly high: number;
}

export function pairedDifference(values: readonly number[], baseline: readonly number[]): PairedDifference {
  const n = Math.min(values.length, baseline.length);
  if (n === 0) return { mean: 0, low: 0, high: 0 };
  const differences = Array.from({ length: n }, (_, i) => values[i] - baseline[i]);
  const mean = differences.reduce((a, b) => a + b, 0) / n;
  const variance = n < 2 ? 0 : differences.reduce((sum, d) => sum + (d - mean) ** 2, 0) / (n - 1);
  const half = 1.96 * Math.sqrt(variance / n);
  return { mean, low: mean - half, high: mean + half };
}

export interface ContextPerplexityRow {
  readonly contextTokens: number;
  readonly samples: number;
  readonly scoredTokens: number;
  readonly meanNll: number;
  readonly perplexity: number;
  /** Perplexity over the longest context's on the same tokens, with the 95% interval of the per-sample ratio's geometric mean. */
  readonly vsLongest: { readonly ratio: number; readonly low: number; readonly high: number };
}

const round = (value: number, digits: number): number => Math.round(value * 10 ** digits) / 10 ** digits;

/**
 * Per context length (ascending), each sample's mean −log p of its scored tokens when the engine has read exactly
 * that many tokens before them.
 */
export async function contextNll(decoder: PhiDecoder, samples: readonly ContextSample[], contexts: readonly number[], scored: number, onDone?: (done: number) => void): Promise<number[][]> {
  const vocab = decoder.config.vocab_size;
  const maxContext = contexts.reduce((a, b) => Math.max(a, b), 0);
  const perContext = contexts.map(() => [] as number[]);
  for (const [s, sample] of samples.entries()) {
    for (const [c, context] of contexts.entries()) {
      // Read the context but its last token, then that token and the scored ones but the last: their rows predict the scored tokens.
      const tokens = sample.tokens.slice(maxContext - context);
      const cache = decoder.createCache();
      let nll = 0;
      try {
        cache.reserve(context + scored);
        for (let start = 0; start < context - 1; start += DEFAULT_PREFILL_CHUNK) {
          await decoder.forward(tokens.slice(start, Math.min(context - 1, start + DEFAULT_PREFILL_CHUNK)), cache, 1);
        }
        for (let start = context - 1; start < context - 1 + scored; start += DEFAULT_PREFILL_CHUNK) {
          const chunk = tokens.slice(start, Math.min(context - 1 + scored, start + DEFAULT_PREFILL_CHUNK));
          const logits = await decoder.forward(chunk, cache, chunk.length);
          for (let r = 0; r < chunk.length; r++) nll += negativeLogLikelihood(logits, r * vocab, vocab, tokens[start + r + 1]);
        }
      } finally {
        cache.dispose();
      }
      perContext[c].push(nll / scored);
    }
    onDone?.(s + 1);
  }
  return perContext;
}

/** The rows of the perplexity table from contextNll's per-sample NLLs (contexts ascending, the longest last). */
export function summarizeContextNll(contexts: readonly number[], perContext: readonly (readonly number[])[], scored: number): ContextPerplexityRow[] {
  const longest = perContext[perContext.length - 1] ?? [];
  return contexts.map((contextTokens, c) => {
    const nll = perContext[c];
    const meanNll = nll.reduce((a, b) => a + b, 0) / Math.max(1, nll.length);
    const difference = pairedDifference(nll, longest);
    return {
      contextTokens,
      samples: nll.length,
      scoredTokens: nll.length * scored,
      meanNll: round(meanNll, 4),
      perplexity: round(Math.exp(meanNll), 3),
      vsLongest: { ratio: round(Math.exp(difference.mean), 4), low: round(Math.exp(difference.low), 4), high: round(Math.exp(difference.high), 4) },
    };
  });
}
