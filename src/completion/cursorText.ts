/**
 * The text around a cursor that completions read: a bounded neighbourhood, whatever the file's size, taken line by
 * line from VS Code's document (`lineAt`, which hands out the line it keeps, and `offsetAt`, from its line offsets)
 * instead of a copy of the whole text at every keystroke. What is read before the cursor is enough for the
 * prompt's window to be the one the whole text gives (charsReadBeforeCursor in ./context.ts); the file's first
 * lines are read for the Python header; after the cursor, what post-processing compares a suggestion with. A few KB
 * in all (≈ 8 KB before the cursor, 3 KB of the first lines, 4 KB after it, for a 1,024-token window).
 *
 * Uses no runtime import of 'vscode'.
 */
import type * as vscode from 'vscode';
import { HASHED_LENGTH, TAIL_LENGTH } from './cache';
import { charsReadBeforeCursor, headCharsRead, type DocumentHead } from './context';
import { CHARS_PER_TOKEN } from './tokenEstimate';

/** What completions read of a document (a vscode.TextDocument is one): its lines one at a time, and offsets. */
export interface PromptDocument {
  readonly languageId: string;
  readonly fileName: string;
  readonly lineCount: number;
  lineAt(line: number): { readonly text: string; readonly range: Pick<vscode.Range, 'start' | 'end'> };
  offsetAt(position: vscode.Position): number;
}

/**
 * Characters read before the cursor at the least, whatever the window's budget: what the cache compares
 * (./cache.ts), with room for a suggestion typed into.
 */
export const MIN_CHARS_READ_BEFORE_CURSOR = 2 * (TAIL_LENGTH + HASHED_LENGTH);

/**
 * Characters read after the cursor: post-processing compares a suggestion (at most MAX_SUGGESTION_LINES lines)
 * with the text there, and looks for its first line of code.
 */
export const CHARS_READ_AFTER_CURSOR = 4096;

/** The text around a cursor, with LF line ends (the model's, and the context builder's). */
export interface CursorText {
  readonly languageId: string;
  readonly fileName: string;
  /** The text before the cursor: all of it, or its end, from `beforeStart` on. */
  readonly before: string;
  /** Where `before` starts in the document's LF text (0: it is all of the text before the cursor). */
  readonly beforeStart: number;
  /** When `before` is not all of it: the document's first lines, where the Python header is. */
  readonly head?: DocumentHead;
  /** The text after the cursor, up to CHARS_READ_AFTER_CURSOR characters. */
  readonly after: string;
}

/** The cursor's offset in the document's LF text. */
export function cursorOffset(text: CursorText): number {
  return text.beforeStart + text.before.length;
}

/**
 * The text around `position` in `document` that a window of `tokenBudget` tokens needs, its size estimated at
 * CHARS_PER_TOKEN (./tokenEstimate.ts, what the prompts count with).
 */
export function readCursorText(document: PromptDocument, position: vscode.Position, tokenBudget: number): CursorText {
  const { languageId, fileName } = document;
  const wanted = Math.max(MIN_CHARS_READ_BEFORE_CURSOR, charsReadBeforeCursor(tokenBudget, CHARS_PER_TOKEN));
  const cursorLine = document.lineAt(position.line).text;
  const after = readAfter(document, position.line, cursorLine.slice(position.character));
  const cut = (line: number, character: number, before: string): CursorText => ({
    languageId, fileName, before, after,
    beforeStart: lfOffsetOfLine(document, line) + character,
    head: languageId === 'python' ? readHead(document, position.line, headCharsRead(tokenBudget, CHARS_PER_TOKEN)) : undefined,
  });
  // Backwards from the cursor: whole lines while they are within `wanted` characters, then the end of the next one.
  let before = cursorLine.slice(0, position.character);
  if (before.length >= wanted) return cut(position.line, position.character - wanted, before.slice(before.length - wanted));
  const parts = [before];
  let chars = before.length;
  let line = position.line;
  while (line > 0 && chars < wanted) {
    const text = document.lineAt(--line).text;
    const room = wanted - chars - 1;
    if (text.length > room) {
      parts.push(text.slice(text.length - room) + '\n');
      return cut(line, text.length - room, parts.reverse().join(''));
    }
    parts.push(text + '\n');
    chars += text.length + 1;
  }
  before = parts.reverse().join('');
  return line === 0 ? { languageId, fileName, before, beforeStart: 0, after } : cut(line, 0, before);
}

/** The rest of the cursor's line (`rest`) and the lines after it, up to CHARS_READ_AFTER_CURSOR characters. */
function readAfter(document: PromptDocument, cursorLine: number, rest: string): string {
  const parts = [rest.slice(0, CHARS_READ_AFTER_CURSOR)];
  let chars = parts[0].length;
  for (let line = cursorLine + 1; line < document.lineCount && chars < CHARS_READ_AFTER_CURSOR; line++) {
    const text = document.lineAt(line).text.slice(0, CHARS_READ_AFTER_CURSOR - chars - 1);
    parts.push('\n' + text);
    chars += text.length + 1;
  }
  return parts.join('');
}

/** The document's first lines, up to `limit` characters (the last one cut there) and not past the cursor's line. */
function readHead(document: PromptDocument, cursorLine: number, limit: number): DocumentHead {
  const parts: string[] = [];
  let chars = 0;
  for (let line = 0; line < cursorLine; line++) {
    const text = document.lineAt(line).text;
    if (chars + text.length + 1 > limit) {
      parts.push(text.slice(0, Math.max(0, limit - chars)));
      return { text: parts.join(''), reachesCursorLine: false };
    }
    parts.push(text + '\n');
    chars += text.length + 1;
  }
  return { text: parts.join(''), reachesCursorLine: true };
}

/**
 * Where `line` starts in the document's LF text: its offset less one character for each CRLF before it (VS Code
 * gives a document one line ending, and each line's range ends before it).
 */
export function lfOffsetOfLine(document: PromptDocument, line: number): number {
  const offset = document.offsetAt(document.lineAt(line).range.start);
  if (line === 0) return offset;
  const eolLength = offset - document.offsetAt(document.lineAt(line - 1).range.end);
  return offset - line * (eolLength - 1);
}
