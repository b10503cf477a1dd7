/**
 * What the model sees. phi-1.5 has no fill-in-the-middle, so the prompt is the text before the cursor, cut to
 * the token budget at whole lines and ending exactly at the cursor. When lines must go, the file's header
 * (imports, module docstring, leading comments) is kept in front when it is small, because the code near the
 * cursor usually refers to the names it imports.
 *
 * Why the window's start is quantised: the worker reuses its KV cache for the longest common token prefix of
 * this prompt and the previous one. Starting at the first line that fits would slide the start forward as the
 * user types (about once per new line), and every slide changes the prompt's first tokens, so the worker re-reads
 * the whole window (~800 tokens, seconds on a CPU). So once the text outgrows the budget, the window (after the
 * header, when kept) starts at an anchor line: the first line from which the text fits, among lines chosen by a
 * hash of their own text (one in ANCHOR_EVERY), so that lines typed above the window (in a function further up)
 * do not move its start and going back to it re-reads nothing. When no anchor line is near enough (one step),
 * the start falls back to the first non-blank line at or after a multiple of a step S of characters (a
 * quarter of the budget at 3 characters a token, halved for text so dense that S would be over half the
 * window): the smallest multiple from which the text to the cursor fits. While the user types, the start stays
 * put and only what was typed is re-read; when the text no longer fits, the start jumps by S, once per S
 * characters typed, and the prompt holds between about budget − S and budget tokens. The start depends only on
 * the text before it and on that multiple: text typed or pasted below it moves it only when it must, an edit
 * inside the window re-reads from the edit on, and an edit above the window moves the start only when it carries
 * a multiple of S across a line start. (Deleting back across a jump jumps back: the rule keeps no state.) A
 * prefix that fits whole is the prompt as it is.
 */
import { CHARS_PER_TOKEN } from './tokenEstimate';

export interface PromptInput {
  /** Document text before the cursor: all of it, or its end from `prefixStart` on (see CursorText in ./cursorText.ts). */
  readonly prefix: string;
  /** Document text after the cursor (unused: the model cannot read past the cursor). */
  readonly suffix: string;
  readonly languageId: string;
  readonly fileName: string;
  readonly tokenBudget: number;
  /** The model's token count for a text; called a bounded number of times, on texts about the budget's size. */
  readonly countTokens: (text: string) => number;
  /**
   * The step S, in characters, that the window's start is quantised to (see above); at most half the text that
   * fits. Default: a quarter of the budget at 3 characters a token. 0 or 1: no quantisation, the window holds
   * the most whole lines that fit (its start then slides as the user types).
   */
  readonly windowStep?: number;
  /**
   * Where `prefix` starts in the document's LF text, when it is only the end of the text before the cursor (0, the
   * default: it is all of it). The end must be long enough that the text from its start does not fit the budget
   * (charsReadBeforeCursor, for the count given): then the window is the one the whole prefix gives.
   */
  readonly prefixStart?: number;
  /** With a prefixStart over 0: the document's first lines (readHead in ./cursorText.ts), where a Python header is looked for. */
  readonly head?: DocumentHead;
}

/** The document's first lines, read up to a bound (headCharsRead) and never past the cursor's line. */
export interface DocumentHead {
  /** The lines, each ending with '\n', then possibly the start of a line cut at the bound. */
  readonly text: string;
  /** Whether the lines reach the cursor's line (nothing more before it to read). */
  readonly reachesCursorLine: boolean;
}

export interface Prompt {
  readonly prompt: string;
  /** Whether text before the cursor was left out to fit the budget. */
  readonly truncated: boolean;
  /** Whether lines were left out and the file's header was kept in front of the rest (then a blank line). */
  readonly headerIncluded: boolean;
}

/**
 * The fit search's first guess, before it has counted anything: not CHARS_PER_TOKEN (./tokenEstimate.ts), the
 * estimate of a prompt's size, but where a search over the caller's count (the estimate, or the real tokenizer in
 * the tests and the eval) starts; the measured ratio replaces it after the first count. With 3 the search ends on
 * another line within its tolerance, and the window starts elsewhere, for 60 of 59,264 prompts (node-gyp's gyp
 * modules, a cursor every 97 characters, budgets 128–2,048, the estimate as the count; 3 of 762 with phi's
 * tokenizer): kept at 4, so that no prompt changes.
 */
const TYPICAL_CHARS_PER_TOKEN = 4;
/** Tokens are rarely longer than this (phi's longest whitespace token is 31 spaces): a bound that saves a count. */
const MAX_CHARS_PER_TOKEN = 32;
/** Token counts spent searching for the first line that fits; each count is of a budget-sized text. */
const MAX_FIT_PROBES = 8;
/** A header larger than this share of the budget would crowd out the code near the cursor. */
const MAX_HEADER_SHARE = 0.25;
/** The default step: this share of the budget's characters, at the provider's estimate of characters a token. */
const STEP_SHARE = 0.25;
/** Token counts spent moving from the first line that fits to the smallest multiple of the step that fits. */
const MAX_STEP_COUNTS = 4;

/**
 * Characters before the cursor that decide a window of `tokenBudget` tokens, for a count that gives at most
 * `maxCharsPerToken` characters a token (the estimate's CHARS_PER_TOKEN; MAX_CHARS_PER_TOKEN for a tokenizer): no
 * text longer than this fits the budget, and the fit search never probes this far back (its first guess is at
 * TYPICAL_CHARS_PER_TOKEN a token). Reading only these (./cursorText.ts) gives the prompt the whole prefix gives.
 */
export function charsReadBeforeCursor(tokenBudget: number, maxCharsPerToken: number): number {
  return (Math.max(0, Math.floor(tokenBudget)) + 1) * Math.max(TYPICAL_CHARS_PER_TOKEN, maxCharsPerToken);
}

/**
 * Characters of the document's first lines read for the header, for such a count: four times the largest header
 * kept, so that the blank lines after it are seen to end (more than that many, and the header is left out).
 */
export function headCharsRead(tokenBudget: number, maxCharsPerToken: number): number {
  return 4 * Math.ceil(tokenBudget * MAX_HEADER_SHARE * Math.min(maxCharsPerToken, MAX_CHARS_PER_TOKEN));
}

export function buildCompletionPrompt(input: PromptInput): Prompt {
  const text = input.prefix.replace(/\r\n/g, '\n'); // the model was trained on LF
  const budget = Math.floor(input.tokenBudget);
  if (budget <= 0) return { prompt: '', truncated: text.length > 0, headerIncluded: false };

  const { countTokens } = input;
  const step = Math.floor(input.windowStep ?? budget * CHARS_PER_TOKEN * STEP_SHARE);
  const base = input.prefixStart ?? 0;
  const lines = new LineIndex(text, base);
  const fit = firstLineThatFits(lines, 0, budget, countTokens);
  if (fit === 0) return { prompt: text, truncated: base > 0, headerIncluded: false };

  if (input.languageId === 'python') {
    const header = base > 0 ? headerFromHead(input.head, lines) : headerOf(lines, pythonHeaderLineCount(lines));
    const withHeader = header && promptWithHeader(lines, header, budget, countTokens, step);
    if (withHeader !== undefined) return { prompt: withHeader, truncated: true, headerIncluded: true };
  }
  if (fit === undefined) return { prompt: cursorLineTailThatFits(lines, budget, countTokens), truncated: true, headerIncluded: false };
  const start = quantisedStart(lines, fit, 0, step, (line) => countTokens(lines.textFrom(line)) <= budget) ?? skipBlankLines(lines, fit);
  return { prompt: lines.textFrom(start), truncated: true, headerIncluded: false };
}

/**
 * The window's start (see the module comment): the first non-blank line starting at or after character k × step
 * (and not before line `firstAllowed`) for the smallest k ≥ 1 from which the text `fits`. `fit`, a line known to
 * fit and near the first that does, says which k to try first. Undefined when no quantisation is asked for
 * (step ≤ 1), or when no start was found within a few counts.
 */
function quantisedStart(lines: LineIndex, fit: number, firstAllowed: number, baseStep: number, fits: (line: number) => boolean): number | undefined {
  let step = baseStep;
  // Text so dense (under about 1.5 characters a token) that the step would be over half the window: a finer grid.
  while (step > 1 && 2 * step > lines.charsFrom(fit)) step = Math.floor(step / 2);
  if (step <= 1) return undefined;
  const anchored = anchorLineStart(lines, fit, firstAllowed, step, fits);
  if (anchored !== undefined) return anchored;
  // The grid is of offsets in the document, not in the text given (which may start further on).
  const unclamped = (k: number): number => lines.lineStartingAtOrAfter(k * step - lines.base);
  const anchor = (k: number): number => skipBlankLines(lines, Math.max(firstAllowed, unclamped(k)));

  let k = Math.max(1, Math.ceil((lines.base + lines.starts[fit]) / step));
  let start = anchor(k);
  let counts = 1;
  if (fits(start)) {
    // Earlier multiples may fit too, as `fit` may leave up to a line's worth of the budget unused.
    while (k > 1 && unclamped(k) > firstAllowed) {
      const lower = anchor(k - 1);
      if (lower !== start) {
        if (counts++ >= MAX_STEP_COUNTS || !fits(lower)) break;
        start = lower;
      }
      k--;
    }
    return start;
  }
  // Later ones, when `fit` was counted otherwise than here (the header's seam can add a token).
  while (start < lines.cursorLine && counts++ < MAX_STEP_COUNTS) {
    while (anchor(k) === start) k++;
    start = anchor(k);
    if (fits(start)) return start;
  }
  return undefined;
}

/**
 * Lines whose text marks them as window starts, one in ANCHOR_EVERY on average (by a hash of the line's text):
 * which lines they are depends on their text alone, not on where they are, so an edit above a window (lines
 * typed in a function further up) leaves its start where it was, and the worker's cache of it stays good.
 */
const ANCHOR_EVERY = 8;

function isAnchorLine(text: string): boolean {
  if (text.trim() === '') return false;
  let hash = 0x811c9dc5; // FNV-1a, 32 bits
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  // FNV's low bits depend only on the characters' low bits (indentation adds nothing): mix before the modulo.
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return ((hash ^ (hash >>> 16)) >>> 0) % ANCHOR_EVERY === 0;
}

/**
 * The first anchor line (isAnchorLine; not before `firstAllowed`) from which the text `fits`, looking no further
 * than one step past `fit` (a line near the first that fits); undefined when there is none so near (then the
 * character grid decides). A few counts settle which anchor is the first that fits whatever `fit` was.
 */
function anchorLineStart(lines: LineIndex, fit: number, firstAllowed: number, step: number, fits: (line: number) => boolean): number | undefined {
  const limit = lines.starts[fit] + step;
  const nextAnchor = (from: number): number | undefined => {
    for (let line = Math.max(from, firstAllowed); line <= lines.cursorLine && lines.starts[line] <= limit; line++) {
      if (isAnchorLine(lines.line(line))) return line;
    }
    return undefined;
  };
  const previousAnchor = (before: number): number | undefined => {
    for (let line = before - 1; line >= firstAllowed; line--) if (isAnchorLine(lines.line(line))) return line;
    return undefined;
  };
  let start = nextAnchor(fit);
  let counts = 0;
  if (start === undefined) return undefined;
  if (fits(start)) {
    // An earlier anchor may fit too: `fit` may leave up to a line's worth of the budget unused.
    for (let lower = previousAnchor(start); lower !== undefined && counts++ < MAX_STEP_COUNTS && fits(lower); lower = previousAnchor(lower)) start = lower;
    return start;
  }
  // Later ones, when `fit` was counted otherwise than here (the header's seam can add a token).
  while (counts++ < MAX_STEP_COUNTS) {
    const later = nextAnchor(start + 1);
    if (later === undefined) return undefined;
    start = later;
    if (fits(start)) return start;
  }
  return undefined;
}

/**
 * The text with the start offset of each of its lines; the last line is the cursor's. `base`: where the text starts
 * in the document (its first line may be the end of a longer one, which never fits the budget).
 */
class LineIndex {
  readonly starts: number[] = [0];

  constructor(readonly text: string, readonly base = 0) {
    for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', at + 1)) this.starts.push(at + 1);
  }

  get cursorLine(): number {
    return this.starts.length - 1;
  }

  textFrom(line: number): string {
    return this.text.slice(this.starts[line]);
  }

  charsFrom(line: number): number {
    return this.text.length - this.starts[line];
  }

  line(index: number): string {
    const end = index < this.cursorLine ? this.starts[index + 1] - 1 : this.text.length;
    return this.text.slice(this.starts[index], end);
  }

  /** The first line starting at or after `offset` (the cursor line if none does). */
  lineStartingAtOrAfter(offset: number): number {
    let low = 0;
    let high = this.cursorLine;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.starts[middle] < offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}

/** A measured start line: the text from it to the cursor, in characters and tokens. */
interface Probe {
  readonly line: number;
  readonly chars: number;
  readonly tokens: number;
}

/**
 * The smallest line index ≥ `firstAllowed` such that the text from there to the cursor fits `available`
 * tokens, or undefined when even the cursor line alone does not fit. Each probe counts one candidate; the next
 * is predicted from the measured characters per token, interpolated between the nearest start known to fit and
 * the nearest known not to, with a bisection when interpolation keeps moving the same side. The answer may
 * leave about a line's worth of budget unused rather than spend more counts.
 */
function firstLineThatFits(lines: LineIndex, firstAllowed: number, available: number, countTokens: (text: string) => number): number | undefined {
  let fits: Probe | undefined; // the smallest start known to fit
  let tooLong: Probe | undefined; // the largest start known not to fit
  let lastFitted: boolean | undefined;
  let sameSideInARow = 0; // regula falsi can creep in from one side: then bisect
  for (let probeCount = 0; probeCount < MAX_FIT_PROBES; probeCount++) {
    const lowest = tooLong === undefined ? firstAllowed : tooLong.line + 1;
    const highest = fits === undefined ? lines.cursorLine : fits.line - 1;
    if (lowest > highest || (fits !== undefined && nearlyFull(lines, fits, tooLong, available))) break;
    const chars = sameSideInARow >= 2 && fits !== undefined && tooLong !== undefined
      ? (fits.chars + tooLong.chars) / 2
      : predictedChars(fits, tooLong, available);
    const line = Math.min(highest, Math.max(lowest, lines.lineStartingAtOrAfter(lines.text.length - chars)));
    const probe = { line, chars: lines.charsFrom(line), tokens: countTokens(lines.textFrom(line)) };
    const fitted = probe.tokens <= available;
    sameSideInARow = fitted === lastFitted ? sameSideInARow + 1 : 1;
    lastFitted = fitted;
    if (fitted) fits = probe;
    else tooLong = probe;
  }
  if (fits === undefined && (tooLong === undefined || tooLong.line < lines.cursorLine)) {
    const cursorLineTokens = countTokens(lines.textFrom(lines.cursorLine));
    if (cursorLineTokens <= available) return lines.cursorLine;
  }
  return fits?.line;
}

/** Characters before the cursor expected to hold `available` tokens, judging by what was measured so far. */
function predictedChars(fits: Probe | undefined, tooLong: Probe | undefined, available: number): number {
  if (fits !== undefined) return fits.chars + (available - fits.tokens) * charsPerToken(fits, tooLong);
  return tooLong !== undefined ? available * charsPerToken(tooLong, undefined) : available * TYPICAL_CHARS_PER_TOKEN;
}

/** Whether the line before the fitting start probably would not fit as well (or there is none). */
function nearlyFull(lines: LineIndex, fits: Probe, tooLong: Probe | undefined, available: number): boolean {
  if (fits.line === 0) return true;
  const previousLineChars = lines.starts[fits.line] - lines.starts[fits.line - 1];
  return available - fits.tokens < previousLineChars / charsPerToken(fits, tooLong);
}

/** The density of the text between two probes, or, with one probe, of the text it measured. */
function charsPerToken(probe: Probe, farther: Probe | undefined): number {
  if (farther !== undefined) return (farther.chars - probe.chars) / Math.max(1, farther.tokens - probe.tokens);
  return probe.tokens > 0 ? probe.chars / probe.tokens : TYPICAL_CHARS_PER_TOKEN;
}

/** The file's header, ending with a blank line, and the first line of `lines` after it. */
interface Header {
  readonly text: string;
  readonly end: number;
}

/** The header of the first `headerLines` lines of `lines` (all of the text before the cursor); undefined for none. */
function headerOf(lines: LineIndex, headerLines: number): Header | undefined {
  if (headerLines === 0) return undefined;
  return { text: lines.text.slice(0, lines.starts[headerLines]) + '\n', end: headerLines };
}

/**
 * The header found in the document's first lines when `lines` is only the end of the text before the cursor: as
 * pythonHeaderLineCount finds it in the whole text, or none when the lines read end before it is known where it ends.
 */
function headerFromHead(head: DocumentHead | undefined, lines: LineIndex): Header | undefined {
  if (head === undefined) return undefined;
  const headLines = new LineIndex(head.text);
  const headerLines = pythonHeaderLineCount(headLines, !head.reachesCursorLine);
  if (headerLines === 0) return undefined;
  const text = head.text.slice(0, headLines.starts[headerLines]) + '\n';
  // Where the lines after the header begin in `lines` (at its start when the header ends before it).
  const end = headLines.starts[headerLines] > lines.base ? lines.lineStartingAtOrAfter(headLines.starts[headerLines] - lines.base) : 0;
  return { text, end };
}

/**
 * The file's header, a blank line, then the lines before the cursor that fit the rest of the budget, from the
 * window's start (quantised, or the most that fit when step ≤ 1); undefined when the header is too large or leaves
 * too little room.
 */
function promptWithHeader(lines: LineIndex, { text: header, end: headerLines }: Header, budget: number, countTokens: (text: string) => number, step: number): string | undefined {
  if (header.length > budget * MAX_HEADER_SHARE * MAX_CHARS_PER_TOKEN) return undefined; // too large, not worth a count
  const headerTokens = countTokens(header);
  if (headerTokens > budget * MAX_HEADER_SHARE) return undefined;

  // Tokens can merge across the seam, so the joined prompt is counted once more; one retry absorbs the difference.
  let available = budget - headerTokens;
  if (step > 1) {
    // The part after the header is quantised like a window without one, so header + window stays put as well.
    const fit = firstLineThatFits(lines, headerLines, available, countTokens);
    if (fit === undefined) return undefined;
    const start = quantisedStart(lines, fit, headerLines, step, (line) => countTokens(header + lines.textFrom(line)) <= budget);
    if (start !== undefined) return header + lines.textFrom(start);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    const start = firstLineThatFits(lines, headerLines, available, countTokens);
    if (start === undefined) return undefined;
    const prompt = header + lines.textFrom(skipBlankLines(lines, start));
    const excess = countTokens(prompt) - budget;
    if (excess <= 0) return prompt;
    available -= excess;
  }
  return undefined;
}

/** A prompt cut at a blank line starts after it: after the header, one blank line is enough. */
function skipBlankLines(lines: LineIndex, from: number): number {
  let line = from;
  while (line < lines.cursorLine && lines.line(line).trim() === '') line++;
  return line;
}

/**
 * Number of leading lines (before the cursor line) that form a Python file's header: shebang, encoding and other
 * comments, the module docstring and imports (parenthesised or backslash-continued ones included). Blank lines
 * inside count; blank lines after it do not.
 */
function pythonHeaderLineCount(lines: LineIndex, moreBeforeCursor = false): number {
  let headerEnd = 0;
  let openDocstring: string | undefined; // its closing quotes, while inside the module docstring
  let openImport: ImportContinuation | undefined; // while inside a multi-line import
  for (let index = 0; index < lines.cursorLine; index++) {
    const code = lines.line(index).trim();
    if (openDocstring !== undefined) {
      if (code.includes(openDocstring)) openDocstring = undefined;
    } else if (openImport !== undefined) {
      openImport = importContinues(code, openImport);
    } else if (code === '') {
      continue;
    } else if (code.startsWith('#')) {
      // a comment, the shebang or the encoding line
    } else if (/^(import|from)\s/.test(code)) {
      openImport = importContinues(code, undefined);
    } else if (isDocstringStart(code)) {
      openDocstring = unclosedTripleQuote(code);
    } else {
      return headerEnd; // the first line of code
    }
    headerEnd = index + 1;
  }
  // The first lines read end before the header does (more lines before the cursor): known only if the next line,
  // whose start was read, is plain code.
  if (moreBeforeCursor) return openDocstring === undefined && openImport === undefined && isPlainCode(lines.line(lines.cursorLine)) ? headerEnd : 0;
  // An import or docstring still open at the cursor is not a complete header.
  return openDocstring === undefined && openImport === undefined ? headerEnd : 0;
}

/** Whether the start of a line shows it is code, not a comment, import, string or blank (however it goes on). */
function isPlainCode(start: string): boolean {
  const code = start.trimStart();
  return code !== '' && !code.startsWith('#') && !/^(import|from)(\s|$)/.test(code) && !/^[rRuUbB]{0,2}["']/.test(code);
}

/** How a multi-line import goes on: up to its closing parenthesis, or while lines end with a backslash. */
type ImportContinuation = ')' | '\\';

/** Whether the import goes on after this line (`from a import (` without `)`, or a trailing backslash). */
function importContinues(code: string, open: ImportContinuation | undefined): ImportContinuation | undefined {
  if (open === ')') return code.includes(')') ? undefined : ')';
  if (open === undefined && code.includes('(') && !code.includes(')')) return ')';
  return code.endsWith('\\') ? '\\' : undefined;
}

/** A string statement: the module docstring, in triple or single quotes, with an optional r/u/b prefix. */
function isDocstringStart(code: string): boolean {
  return /^[rRuUbB]{0,2}("""|'''|"[^"]*"$|'[^']*'$)/.test(code);
}

/** The triple quote that opens this line's string and is not closed on it, if any. */
function unclosedTripleQuote(code: string): string | undefined {
  const quote = /^[rRuUbB]{0,2}("""|''')/.exec(code)?.[1];
  if (quote === undefined) return undefined;
  return code.indexOf(quote, code.indexOf(quote) + 3) < 0 ? quote : undefined;
}

/** The cursor line is longer than the budget (minified code): keep as much of its end as fits. */
function cursorLineTailThatFits(lines: LineIndex, budget: number, countTokens: (text: string) => number): string {
  const line = lines.textFrom(lines.cursorLine);
  let chars = Math.min(line.length, budget * TYPICAL_CHARS_PER_TOKEN);
  for (let probe = 0; chars > 0 && probe < MAX_FIT_PROBES; probe++) {
    const tail = sliceTail(line, chars);
    const tokens = countTokens(tail);
    if (tokens <= budget) return tail;
    // The ratio just measured predicts the length that fits; later probes aim lower, in case it keeps missing.
    const aim = probe < 2 ? 1 : 0.9;
    chars = Math.min(chars - 1, Math.floor(((chars * budget) / tokens) * aim));
  }
  return '';
}

/** The last `chars` characters, without starting in the middle of a surrogate pair. */
function sliceTail(text: string, chars: number): string {
  let start = text.length - chars;
  const code = text.charCodeAt(start);
  if (code >= 0xdc00 && code <= 0xdfff) start++;
  return text.slice(start);
}
