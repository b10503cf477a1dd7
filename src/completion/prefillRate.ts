/**
 * How fast the worker reads prompt text, from the stats of the reads it has done (completions' prefills and the
 * warmer's), so the provider can size a quick prompt to what can be read in a given time: ~100 tokens a second on
 * a 2-core CPU with phi-1.5, over 1,000 on a GPU, and anything between on the machines users have.
 */
import type { FinishReason, GenerationStats } from '../protocol';

/** Reads shorter than this are mostly per-pass overhead and say little about the rate. */
const MIN_MEASURED_TOKENS = 32;
/** Before any read was measured: phi-1.5 int4 on a 2-core laptop CPU (`npm run bench`), tokens per millisecond. */
const DEFAULT_TOKENS_PER_MS = 0.1;
/** Weight of the newest read in the running estimate. */
const NEWEST_WEIGHT = 0.3;

export class PrefillRate {
  private tokensPerMs: number | undefined;

  /** A read of `tokens` prompt tokens took `ms`. */
  record(tokens: number, ms: number): void {
    if (tokens < MIN_MEASURED_TOKENS || !(ms > 0)) return;
    const rate = tokens / ms;
    this.tokensPerMs = this.tokensPerMs === undefined ? rate : (1 - NEWEST_WEIGHT) * this.tokensPerMs + NEWEST_WEIGHT * rate;
  }

  /**
   * A completion request's read: the prompt tokens it had to feed, in its prefill time. Not a cancelled one: it
   * may have stopped before reading what it planned to (its time would make reading look nearly free).
   */
  recordRequest(finishReason: FinishReason, stats: Pick<GenerationStats, 'promptTokens' | 'truncatedTokens' | 'reusedTokens' | 'prefillMs'>): void {
    if (finishReason !== 'cancelled') this.record(stats.promptTokens - stats.truncatedTokens - stats.reusedTokens, stats.prefillMs);
  }

  /** Another backend answers from now on (the worker or a server): what was measured is not its speed. */
  forget(): void {
    this.tokensPerMs = undefined;
  }

  /** Prompt tokens the worker reads in `ms`. */
  tokensWithin(ms: number): number {
    return Math.floor((this.tokensPerMs ?? DEFAULT_TOKENS_PER_MS) * ms);
  }
}
