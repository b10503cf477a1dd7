/**
 * Where a document's quick prompt starts (see QuickPrompt in src/protocol.ts). A quick prompt is a few
 * lines, so the context builder's window start, quantised to a quarter of the budget, would move with almost every
 * line typed and the worker would re-read the whole quick window each time. Instead the start is kept while the
 * text from it to the cursor stays within QUICK_GROWTH budgets: typing on extends the quick window (the worker
 * reads only what was typed), and it starts afresh, at the context builder's start, once it has grown that far or
 * the text at its start changed.
 */

import type { CursorText } from './cursorText';

/** How far a quick window may grow, in quick budgets, before it starts afresh. */
export const QUICK_GROWTH = 4;
/** Documents whose quick starts are remembered (the most recently used). */
const REMEMBERED_DOCUMENTS = 64;

interface QuickStart {
  /** Offset of the start in the document's LF text: always a line start. */
  readonly offset: number;
  /** The text of the line there, to notice an edit above the start that moved it. */
  readonly line: string;
}

export class QuickPromptStarts {
  private readonly starts = new Map<string, QuickStart>();

  /**
   * The quick prompt for the cursor of `text` in `document`: from the kept start while it fits
   * `QUICK_GROWTH × budgetChars` characters, else `build()` (the context builder's prompt for the quick budget),
   * whose start is kept when it is a line of the document. (A kept start is always within the text read before
   * the cursor: that is many quick budgets long.)
   */
  promptFor(document: string, text: Pick<CursorText, 'before' | 'beforeStart'>, budgetChars: number, build: () => string): string {
    const { before, beforeStart } = text;
    const cursor = beforeStart + before.length;
    const kept = this.starts.get(document);
    if (kept && this.stillThere(kept, text) && cursor - kept.offset <= QUICK_GROWTH * budgetChars) {
      this.remember(document, kept);
      return before.slice(kept.offset - beforeStart);
    }
    const prompt = build();
    const at = before.length - prompt.length;
    // Not a plain tail of the text (the file's header in front, or a cut inside a line): used, not kept.
    if (before.endsWith(prompt) && ((at === 0 && beforeStart === 0) || before[at - 1] === '\n')) {
      this.remember(document, { offset: beforeStart + at, line: lineAt(before, at) });
    } else {
      this.starts.delete(document);
    }
    return prompt;
  }

  private stillThere(start: QuickStart, { before, beforeStart }: Pick<CursorText, 'before' | 'beforeStart'>): boolean {
    const at = start.offset - beforeStart;
    return at >= 0 && at <= before.length && ((at === 0 && beforeStart === 0) || before[at - 1] === '\n') && lineAt(before, at) === start.line;
  }

  private remember(document: string, start: QuickStart): void {
    this.starts.delete(document);
    this.starts.set(document, start);
    if (this.starts.size > REMEMBERED_DOCUMENTS) this.starts.delete(this.starts.keys().next().value!);
  }
}

/** The text of the line starting at `offset` (up to the newline, or to the end of `text`). */
function lineAt(text: string, offset: number): string {
  const end = text.indexOf('\n', offset);
  return text.slice(offset, end < 0 ? text.length : end);
}
