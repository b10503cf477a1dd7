/**
 * The prompts a completion request sends for a cursor: the window of text before it (./context.ts) and, where
 * the worker would take long to read what it has not read yet, a quick prompt of the last few lines to answer
 * from meanwhile (QuickPrompt in src/protocol.ts). The provider sends them; the warmer has the worker
 * read them ahead (./warmer.ts). Both take them from here, so that what is warmed is exactly what is asked.
 *
 * Uses no runtime import of 'vscode'.
 */
import type * as vscode from 'vscode';
import type { Settings } from '../settings/settings';
import type { QuickPrompt } from '../protocol';
import { buildCompletionPrompt } from './context';
import { readCursorText, type CursorText, type PromptDocument } from './cursorText';
import type { PrefillRate } from './prefillRate';
import { QuickPromptStarts } from './quickPrompt';
import { CHARS_PER_TOKEN, estimateTokens } from './tokenEstimate';

/**
 * A quick prompt holds what the worker reads in this time, and is answered from when the window has more text
 * not read yet than that: a place in a file never completed in gets its first suggestion in about a second, not
 * the ~10 s of reading a 1,024-token window on a 2-core CPU, and the window is read behind it.
 */
export const QUICK_READ_MS = 800;
/** The shortest quick prompt worth answering from (a few lines of code). */
export const MIN_QUICK_TOKENS = 48;
/**
 * Most tokens of an answer from the quick prompt, which also ends with its first line: the provider shows that line
 * first, and the window is read next instead of the rest of the suggestion (≈2.5 s for 64 tokens on a 2-core CPU),
 * which the next request then writes from the whole window. 99.4% of the non-blank lines of Python's standard
 * library are at most 32 tokens long (phi's tokenizer, 40,440 lines of 60 modules), so the first line is rarely cut.
 */
export const QUICK_ANSWER_TOKENS = 32;

/** A completion request's prompts for one cursor. */
export interface RequestPrompts {
  readonly prompt: string;
  readonly quick?: QuickPrompt;
}

/**
 * The window before the cursor in `tokenBudget` tokens (the setting's, or a smaller one: a quick prompt's, the
 * warmer's look-ahead), from `text` read for at least that budget.
 */
export function windowOf(text: CursorText, tokenBudget: number): string {
  return buildCompletionPrompt({
    prefix: text.before, suffix: text.after, prefixStart: text.beforeStart, head: text.head,
    languageId: text.languageId, fileName: text.fileName, tokenBudget, countTokens: estimateTokens,
  }).prompt;
}

/** The text around `position` that the prompts for `settings` read. */
export function promptText(document: PromptDocument, position: vscode.Position, settings: Settings): CursorText {
  return readCursorText(document, position, settings.contextTokens);
}

/** The completion prompt for the cursor at `position` (no quick prompt), with the text it was read from. */
export function completionPromptAt(document: PromptDocument, position: vscode.Position, settings: Settings): { prompt: string; text: CursorText } {
  const text = promptText(document, position, settings);
  return { prompt: windowOf(text, settings.contextTokens), text };
}

export class CompletionPrompts {
  /** Per document: where its quick prompt starts, kept while typing extends it. */
  private readonly quickStarts = new QuickPromptStarts();

  /** `prefillRate`: how fast the worker reads, which sizes quick prompts. */
  constructor(private readonly prefillRate: PrefillRate) {}

  /** The prompts a request for the cursor of `text` (promptText) in the document whose sequence is `sequence` sends now. */
  at(text: CursorText, sequence: string, settings: Settings): RequestPrompts {
    const prompt = windowOf(text, settings.contextTokens);
    const quickTokens = Math.max(MIN_QUICK_TOKENS, this.prefillRate.tokensWithin(QUICK_READ_MS));
    // Only where reading what fits in QUICK_READ_MS leaves out much of the window (a CPU, not a fast GPU).
    if (2 * quickTokens > settings.contextTokens) return { prompt };
    const quickPrompt = this.quickStarts.promptFor(sequence, text, quickTokens * CHARS_PER_TOKEN, () => windowOf(text, quickTokens));
    return { prompt, quick: { prompt: quickPrompt, readLimit: quickTokens, maxNewTokens: QUICK_ANSWER_TOKENS } };
  }
}
