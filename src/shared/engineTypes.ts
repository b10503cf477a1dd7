/**
 * The types that cross the wire between the extension host and the worker and that the inference engine reads or
 * reports: defined here, below both, so that src/protocol.ts (which re-exports them) and src/inference/ need not
 * import each other. Types only.
 */

/** Where the model runs. `auto` tries the platform's GPU providers, then the CPU. */
export type Device = 'auto' | 'cpu' | 'cuda' | 'dml' | 'coreml' | 'webgpu';

export interface SamplingParams {
  /** 0 = greedy (argmax). */
  readonly temperature: number;
  /** Keep the k most likely tokens; 0 = no limit. */
  readonly topK: number;
  /** Keep the smallest set of tokens whose probability reaches p; 1 = no limit. */
  readonly topP: number;
  readonly seed: number;
}

/**
 * A quick first answer where the model has not read the text yet (a place in a file never completed in): reading
 * a whole window costs seconds on a CPU, a few lines of it a fraction of one. The whole window is warmed in the
 * background (src/completion/warmer.ts) and used once it is cached.
 */
export interface QuickPrompt {
  /** The text before the cursor in a smaller budget, ending where the full prompt ends. */
  readonly prompt: string;
  /** Used when the full prompt has more uncached tokens than this (what can be read in the time allowed). */
  readonly readLimit: number;
  /**
   * Answering from it: at most this many tokens, and it ends with its first complete line ('line'), so the whole
   * window is read next instead of waiting for the rest of a suggestion from a few lines (see FinishReason).
   */
  readonly maxNewTokens?: number;
}

/**
 * stop: a stop sequence; eos: the model ended; length: maxNewTokens; line: a quick answer's first line is complete
 * (QuickPrompt.maxNewTokens); cancelled: a newer request took over (or the caller cancelled).
 */
export type FinishReason = 'stop' | 'eos' | 'length' | 'line' | 'cancelled';

export interface GenerationStats {
  readonly promptTokens: number;
  /** Prompt tokens dropped from the start because prompt + maxNewTokens exceeded the model's positions. */
  readonly truncatedTokens: number;
  /** Prompt tokens whose keys and values were already in the cache. */
  readonly reusedTokens: number;
  /** Of reusedTokens, those copied from another sequence's cache (a new sequence sharing a prefix with it). */
  readonly copiedTokens: number;
  readonly prefillMs: number;
  /** From the call to the first generated token (queueing behind a cancelled request, or an explanation, included). */
  readonly firstTokenMs: number;
  readonly generatedTokens: number;
  readonly decodeMs: number;
  /** Forward passes in the decode loop (fewer than generated tokens when drafts are accepted). */
  readonly decodeSteps: number;
  readonly draftedTokens: number;
  /** The longest draft verified in one pass (drafts grow while they are accepted whole). */
  readonly longestDraft: number;
  readonly acceptedDraftTokens: number;
  /** Rows of a verify pass too close to call, recomputed alone (see NEAR_TIE in src/inference/decodeLoop.ts). */
  readonly recomputedRows: number;
  /** Decode steps run without looking for a draft because drafts were not paying off (see SpeculationBudget). */
  readonly pausedDraftSteps: number;
  /** Whether the request's quick prompt was generated from (the stats above are its). */
  readonly quick: boolean;
}

/** done: the cache holds the prompt (but its last token); cancelled: a newer request took over; busy: a generation was in flight or queued, so it never ran. */
export type PrefillOutcome = 'done' | 'cancelled' | 'busy';

export interface PrefillStats {
  /** Whether the quick prompt's window was read first (the request sent then would have answered from it); the counts below are of the last prompt read. */
  readonly quick: boolean;
  readonly promptTokens: number;
  readonly truncatedTokens: number;
  /** Prompt tokens already cached (copied from another sequence included). */
  readonly reusedTokens: number;
  /** Prompt tokens fed by this prefill. */
  readonly prefilledTokens: number;
  readonly prefillMs: number;
}
