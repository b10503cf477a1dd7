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

/** What a prompt is built from (a vscode.TextDocument). */
export type PromptDocument = Pick<vscode.TextDocument, 'getText' | 'offsetAt' | 'languageId' | 'fileName'>;

/** A completion request's prompts for one cursor, with the text around it. */
export interface RequestPrompts {
  readonly prompt: string;
  readonly prefix: string;
  readonly suffix: string;
  readonly quick?: QuickPrompt;
}

/** The window before the cursor in `tokenBudget` tokens (the setting's, or a quick prompt's smaller one). */
function windowOf(document: PromptDocument, prefix: string, suffix: string, tokenBudget: number): string {
  return buildCompletionPrompt({
    prefix, suffix, languageId: document.languageId, fileName: document.fileName,
    tokenBudget, countTokens: estimateTokens,
  }).prompt;
}

/** The completion prompt for the cursor at `position`, with the text before and after it (no quick prompt). */
export function completionPromptAt(document: PromptDocument, position: vscode.Position, settings: Settings): { prompt: string; prefix: string; suffix: string } {
  const text = document.getText();
  const offset = document.offsetAt(position);
  const prefix = text.slice(0, offset);
  const suffix = text.slice(offset);
  return { prompt: windowOf(document, prefix, suffix, settings.contextTokens), prefix, suffix };
}

export class CompletionPrompts {
  /** Per document: where its quick prompt starts, kept while typing extends it. */
  private readonly quickStarts = new QuickPromptStarts();

  /** `prefillRate`: how fast the worker reads, which sizes quick prompts. */
  constructor(private readonly prefillRate: PrefillRate) {}

  /** The prompts a request for the cursor at `position` in `document` (whose sequence is `sequence`) sends now. */
  at(document: PromptDocument, sequence: string, position: vscode.Position, settings: Settings): RequestPrompts {
    const { prompt, prefix, suffix } = completionPromptAt(document, position, settings);
    const quickTokens = Math.max(MIN_QUICK_TOKENS, this.prefillRate.tokensWithin(QUICK_READ_MS));
    // Only where reading what fits in QUICK_READ_MS leaves out much of the window (a CPU, not a fast GPU).
    if (2 * quickTokens > settings.contextTokens) return { prompt, prefix, suffix };
    // The model reads LF text (the context builder's too), so the kept start is found in the LF prefix of a CRLF file.
    const lfPrefix = prefix.includes('\r') ? prefix.replace(/\r\n/g, '\n') : prefix;
    const quickPrompt = this.quickStarts.promptFor(sequence, lfPrefix, quickTokens * CHARS_PER_TOKEN, () => windowOf(document, prefix, suffix, quickTokens));
    return { prompt, prefix, suffix, quick: { prompt: quickPrompt, readLimit: quickTokens, maxNewTokens: QUICK_ANSWER_TOKENS } };
  }
}
