/**
 * What one completion request came to (CompletionPipeline, ./pipeline.ts), as a value: the text it showed, why
 * generation ended, the context it answered from, its timings and token counts, or that the cache served it. The
 * log line (describeOutcome), the status bar (suggestionContext, wired in src/extension.ts) and `npm run
 * bench:editor` (which parses the log line with COMPLETION_LINE and CONTEXT_PART below) all read it.
 *
 * Uses no runtime import of 'vscode'.
 */
import type { FinishReason } from '../protocol';

/** How much of the file before the cursor a suggestion was generated from. */
export interface SuggestionContext {
  readonly tokens: number;
  /** Answered from the quick prompt (the window was not read yet), not the whole window. */
  readonly quick: boolean;
}

/** The cache answered: the user typed into a suggestion shown before (or asked again at the same place). */
export interface CachedOutcome {
  readonly source: 'cache';
  /** The rest of the cached suggestion ('' when the model had nothing to suggest there). */
  readonly text: string;
}

/** The model answered (or was cancelled). */
export interface GeneratedOutcome {
  readonly source: 'model';
  /** The whole suggestion, post-processed ('' for none): what the cache keeps and the editor shows. */
  readonly text: string;
  readonly finishReason: FinishReason;
  /** Whether the first line was shown before generation ended (the editor is then asked again for the rest). */
  readonly firstLineShownEarly: boolean;
  /** The file's tokens before the cursor the prompt held, and whether they were the quick prompt's. */
  readonly context: SuggestionContext;
  readonly tokens: {
    readonly generated: number;
    /** Prompt tokens already in the worker's cache. */
    readonly reused: number;
    readonly prompt: number;
  };
  readonly timings: {
    /** From VS Code asking (after the cache missed) to the request sent: the debounce and loading the model. */
    readonly askedMs: number;
    /** From the request sent to its answer. */
    readonly answeredMs: number;
    /** From the backend's call to its first token. */
    readonly firstTokenMs: number;
    readonly decodeMs: number;
  };
}

/** The backend failed; `quiet` when it was shut down on purpose (the extension is going away), not worth a warning. */
export interface FailedOutcome {
  readonly source: 'failed';
  readonly message: string;
  readonly quiet: boolean;
}

export type CompletionOutcome = CachedOutcome | GeneratedOutcome | FailedOutcome;

/** A completion request starting, or ending with its outcome. */
export type CompletionActivity = { readonly generating: true } | { readonly generating: false; readonly outcome: CompletionOutcome };

/** The context the suggestion now shown was written from: none when the cache served it, or it was cancelled or failed. */
export function suggestionContext(outcome: CompletionOutcome): SuggestionContext | undefined {
  return outcome.source === 'model' && outcome.finishReason !== 'cancelled' ? outcome.context : undefined;
}

export function describeContext(context: SuggestionContext): string {
  return `context ${context.tokens} tokens (${context.quick ? 'quick prompt' : 'whole window'})`;
}

/** The log line of an outcome (the debug line of a served or generated one, the warning of a failed one). */
export function describeOutcome(outcome: CompletionOutcome): string {
  if (outcome.source === 'cache') return `completion served from cache (${outcome.text.length} chars)`;
  if (outcome.source === 'failed') return `completion failed: ${outcome.message}`;
  const { tokens, timings, context } = outcome;
  return `completion: ${tokens.generated} tokens, first token ${Math.round(timings.firstTokenMs)} ms, `
    + `${(tokens.generated / Math.max(1e-3, timings.decodeMs / 1000)).toFixed(1)} tok/s, reused ${tokens.reused}/${tokens.prompt} prompt tokens${context.quick ? ' (quick prompt)' : ''}, ${outcome.finishReason}; `
    + `asked ${Math.round(timings.askedMs)} ms after VS Code asked, answered ${Math.round(timings.answeredMs)} ms later`
    + `; ${describeContext(context)}`;
}

// What `npm run bench:editor` (scripts/bench-editor.mjs, from out/) reads a generated outcome's line with, as the
// extension's LogOutputChannel writes it (local time, then the level): the time, the generated tokens, first token
// ms, tok/s, reused and prompt tokens, the quick prompt flag, the finish reason, asked and answered ms.
export const COMPLETION_LINE = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) .*completion: (\d+) tokens, first token (\d+) ms, ([\d.]+) tok\/s, reused (\d+)\/(\d+) prompt tokens( \(quick prompt\))?, (\w+)(?:; asked (\d+) ms after VS Code asked, answered (\d+) ms later)?/;
/** The end of a generated outcome's line: the file's tokens before the cursor its prompt held, and which prompt. */
export const CONTEXT_PART = /; context (\d+) tokens \((whole window|quick prompt)\)\s*$/;
/** A cached outcome's line. */
export const CACHE_LINE = /completion served from cache/;
