/**
 * Where completions are asked for: cursor positions in held-out files, as a user meets them while writing code.
 * The user is writing a line: the text before the cursor is there, the rest of that line is what they are about to
 * type (the target), and the lines below already exist (the suffix). Half the cursors sit at a line's start, after
 * its indentation (where the editor leaves the cursor after Enter), half in the middle of the line's code.
 */
import { mulberry32 } from '../../src/util/rng';

export type CursorKind = 'line-start' | 'mid-line';

export interface Cursor {
  /** The file's path, for the report and as the engine's sequence name. */
  readonly file: string;
  readonly kind: CursorKind;
  /** 0-based line of the cursor. */
  readonly line: number;
  /** The file's text before the cursor. */
  readonly prefix: string;
  /** The rest of the cursor's line: what the user types next. */
  readonly target: string;
  /** What follows the cursor's line: a newline, then the file's later lines. */
  readonly suffix: string;
}

export interface HeldOutFile {
  readonly path: string;
  readonly text: string;
}

/** Lines whose rest is this long or longer are left out: a sentence of a docstring is not a completion. */
const MAX_TARGET_CHARS = 120;

/**
 * `count` cursors, deterministic for a seed: files are drawn in turn (one cursor each per round, so that no
 * single large file dominates), a line at random among the file's non-blank lines past its first, alternating
 * line-start and mid-line. Mid-line cursors sit strictly inside the line's code (at least one character typed, one left).
 * `minPrefixChars`: only lines starting that far or further into their file (files too short for one are left out).
 */
export function sampleCursors(files: readonly HeldOutFile[], count: number, seed: number, minPrefixChars = 0): Cursor[] {
  const random = mulberry32(seed);
  const candidates = files.map((file) => {
    const text = file.text.replace(/\r\n/g, '\n');
    const starts = [0];
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') starts.push(i + 1);
    const lines = starts.map((start, i) => ({ start, end: i + 1 < starts.length ? starts[i + 1] - 1 : text.length }));
    const usable = lines.map((line, i) => ({ ...line, index: i })).filter(({ start, end, index }) => {
      const content = text.slice(start, end).trim();
      return index > 0 && start >= minPrefixChars && content.length >= 2 && content.length < MAX_TARGET_CHARS;
    });
    return { path: file.path, text, usable, used: new Set<number>() };
  }).filter((file) => file.usable.length > 0);
  const cursors: Cursor[] = [];
  for (;;) {
    const open = candidates.filter((file) => file.used.size < file.usable.length);
    if (open.length === 0 || cursors.length >= count) break;
    for (const file of open) {
      if (cursors.length >= count) break;
      const unused = file.usable.filter(({ index }) => !file.used.has(index));
      const pick = unused[Math.floor(random() * unused.length)];
      file.used.add(pick.index);
      const lineText = file.text.slice(pick.start, pick.end);
      const indent = lineText.length - lineText.trimStart().length;
      const content = lineText.trimEnd().length;
      const kind: CursorKind = cursors.length % 2 === 0 ? 'line-start' : 'mid-line';
      const column = kind === 'line-start' ? indent : indent + 1 + Math.floor(random() * (content - indent - 1));
      cursors.push({
        file: file.path,
        kind,
        line: pick.index,
        prefix: file.text.slice(0, pick.start + column),
        target: lineText.slice(column).trimEnd(),
        suffix: file.text.slice(pick.end),
      });
    }
  }
  // In file order, so that consecutive prompts share their window's start and the engine reuses its cache.
  cursors.sort((a, b) => (a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1));
  return cursors;
}
