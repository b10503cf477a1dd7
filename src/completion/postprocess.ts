/**
 * Shapes the model's raw continuation into the suggestion to show. A base model writes on past the code the
 * user wants: into the next function, over the lines below the cursor, past the brackets the editor already
 * closed. These rules cut it back to the block the cursor is in. Python gets its indentation rules; other
 * languages get the generic ones.
 */

/** phi-1.5 starts new top-level definitions or prose after the code it was asked for: generation stops there. */
export const COMPLETION_STOPS = ['\n\n\n', '\nclass ', '\ndef ', '\nif __name__', '\n# ', '\n```', '<|endoftext|>'];
/** Lines a suggestion may have. */
export const MAX_SUGGESTION_LINES = 12;

export interface PostprocessInput {
  /** The model's raw output, continuing the prefix. */
  readonly completion: string;
  /** Document text before the cursor. */
  readonly prefix: string;
  /** Document text after the cursor. */
  readonly suffix: string;
  readonly maxLines: number;
  /** The document's line ending; the suggestion uses it. */
  readonly eol: '\n' | '\r\n';
  readonly languageId: string;
}

/** A suggestion cut where the suffix resumes mid-line must share at least this much non-blank text with it. */
const MIN_MID_LINE_OVERLAP = 3;
/** Python's own tab stop: a tab advances the indentation to the next multiple of 8. */
const TAB_STOP = 8;

/** The text to show at the cursor; '' to show nothing. */
export function postprocessCompletion(input: PostprocessInput): string {
  const python = input.languageId === 'python';
  const prefix = toLf(input.prefix);
  const suffix = toLf(input.suffix);
  const cursorLine = prefix.slice(prefix.lastIndexOf('\n') + 1);
  const midLine = firstLine(suffix).trim() !== '';

  let text = toLf(input.completion);
  text = midLine ? firstLine(text) : keepCursorBlock(startOnCursorLine(text, cursorLine), {
    cursorLine,
    minIndent: blockIndent(prefix, cursorLine, python),
    nextSuffixLine: firstCodeLine(suffix),
    python,
  });
  const repeated = cutWhereSuffixResumes(text, suffix);
  text = endStringSuppliedBySuffix(repeated.text, cursorLine, firstLine(suffix), python);
  text = trimClosersSuppliedBySuffix(text, cursorLine, firstLine(suffix), python);
  // Cut just before the suffix's text mid-line, a trailing space separates the suggestion from it: keep it.
  const keepTrailingSpace = midLine && repeated.cutMidLine && text === repeated.text;
  text = limitLines(trimTrailingWhitespace(text, keepTrailingSpace), input.maxLines);
  if (text.trim() === '') return '';
  return input.eol === '\r\n' ? text.replace(/\n/g, '\r\n') : text;
}

function toLf(text: string): string {
  return text.replace(/\r\n/g, '\n');
}

function firstLine(text: string): string {
  const end = text.indexOf('\n');
  return end < 0 ? text : text.slice(0, end);
}

/** The first non-blank line of the text, trimmed. */
function firstCodeLine(text: string): string | undefined {
  for (const line of text.split('\n', 200)) if (line.trim() !== '') return line.trim();
  return undefined;
}

/** Indentation width of a line, tabs advancing to the next tab stop. */
function indentWidth(line: string): number {
  let width = 0;
  for (const char of line) {
    if (char === ' ') width++;
    else if (char === '\t') width += TAB_STOP - (width % TAB_STOP);
    else break;
  }
  return width;
}

/**
 * A line that opens an indented block: Python's trailing colon (before a comment: a `#` with no quote after it), or
 * a brace elsewhere. Scanned, not matched with a backtracking pattern: the cursor line can be thousands of
 * characters long (minified or generated code), and this runs on every keystroke.
 */
export function opensBlock(line: string, python: boolean): boolean {
  const code = line.trimEnd();
  if (!python) return code.endsWith('{');
  if (line.trimStart().startsWith('#')) return false;
  if (code.endsWith(':')) return true;
  const lastQuote = Math.max(code.lastIndexOf("'"), code.lastIndexOf('"'));
  // Each `#` after the last quote may start the comment: a colon, then only whitespace, before it opens a block.
  for (let hash = code.indexOf('#', lastQuote + 1); hash >= 0; hash = code.indexOf('#', hash + 1)) {
    let before = hash - 1;
    while (before >= 0 && /\s/.test(code[before])) before--;
    if (code[before] === ':') return true;
  }
  return false;
}

/**
 * The least indentation a line the model starts may have and still belong to the block the cursor is in: the
 * cursor line's, or one level more than a block opener's (on the cursor line itself or the line above a blank
 * cursor line).
 */
function blockIndent(prefix: string, cursorLine: string, python: boolean): number {
  const indent = indentWidth(cursorLine);
  if (cursorLine.trim() !== '') return opensBlock(cursorLine, python) ? indent + 1 : indent;
  const above = previousCodeLine(prefix);
  return above !== undefined && opensBlock(above, python) ? Math.max(indent, indentWidth(above) + 1) : indent;
}

/** The last non-blank line before the cursor line. */
function previousCodeLine(prefix: string): string | undefined {
  let end = prefix.lastIndexOf('\n');
  while (end > 0) {
    const start = prefix.lastIndexOf('\n', end - 1) + 1;
    const line = prefix.slice(start, end);
    if (line.trim() !== '') return line;
    end = start - 1;
  }
  return undefined;
}

/**
 * On a cursor line holding only indentation, a completion that starts with blank lines and then that same
 * indentation is moved up onto the cursor line, rather than leave the indentation behind as trailing whitespace.
 */
function startOnCursorLine(completion: string, cursorLine: string): string {
  if (cursorLine === '' || cursorLine.trim() !== '') return completion;
  const blankLines = /^(?:[ \t]*\n)+/.exec(completion)?.[0];
  if (blankLines === undefined) return completion;
  const rest = completion.slice(blankLines.length);
  return rest.startsWith(cursorLine) ? rest.slice(cursorLine.length) : completion;
}

interface BlockRules {
  /** The cursor line's text before the cursor. */
  readonly cursorLine: string;
  /** A line the model starts with less indentation than this has left the cursor's block. */
  readonly minIndent: number;
  /** The first non-blank line after the cursor, trimmed: the model repeating it has run into existing code. */
  readonly nextSuffixLine: string | undefined;
  readonly python: boolean;
}

/**
 * The leading lines of the completion that stay in the cursor's block. The first completion line continues
 * the cursor line; its indentation is the model's choice only when the cursor line is blank so far. Lines
 * inside brackets, strings or after a backslash continue a statement and are never a block end. In Python, a
 * definition (`def`/`class`, after any decorators) started at the suggestion's own level ends the suggestion
 * where its body ends: one function at a time.
 */
function keepCursorBlock(completion: string, rules: BlockRules): string {
  const lines = completion.split('\n');
  const cursorLineHasCode = rules.cursorLine.trim() !== '';
  let state = START_OF_CODE; // lines before the cursor line are not scanned: the cursor line starts a statement
  let continuesStatement = false;
  let baseIndent: number | undefined;
  let definitionIndent: number | undefined;
  let kept = 0;
  for (; kept < lines.length; kept++) {
    const line = kept === 0 ? rules.cursorLine + lines[0] : lines[kept];
    const isContinuation = continuesStatement || state.depth > 0 || state.quote !== undefined;
    state = endOfLine(scanCode(line, state, rules.python));
    continuesStatement = state.quote === undefined && line.trimEnd().endsWith('\\');
    if (line.trim() === '' || isContinuation) continue;

    const indent = indentWidth(line);
    if (kept > 0 || !cursorLineHasCode) {
      if (indent < rules.minIndent) break;
      if (line.trim() === rules.nextSuffixLine) break;
      if (definitionIndent !== undefined && indent <= definitionIndent) break;
    }
    baseIndent ??= indent;
    if (rules.python && definitionIndent === undefined && indent === baseIndent && /^\s*(async\s+def|def|class)\s/.test(line)) {
      definitionIndent = indent;
    }
  }
  return lines.slice(0, kept).join('\n');
}

/**
 * Cuts the completion where it starts repeating the text after the cursor: at a line start when the rest of
 * the completion (trimmed) begins the rest of the document, or anywhere when the rest is exactly the start of the
 * suffix and shares enough text with it to be more than a coincidence.
 */
function cutWhereSuffixResumes(text: string, suffix: string): { text: string; cutMidLine: boolean } {
  const suffixCode = suffix.trimStart();
  if (suffixCode === '') return { text, cutMidLine: false };
  for (let at = 0; at < text.length; at++) {
    if (at === 0 || text[at - 1] === '\n') {
      const rest = text.slice(at).trim();
      if (rest !== '' && suffixCode.startsWith(rest)) return { text: text.slice(0, at), cutMidLine: false };
    } else if (text[at] === suffix[0] && nonBlankLength(text, at) >= MIN_MID_LINE_OVERLAP && suffix.startsWith(text.slice(at))) {
      return { text: text.slice(0, at), cutMidLine: true };
    }
  }
  return { text, cutMidLine: false };
}

function nonBlankLength(text: string, from: number): number {
  let count = 0;
  for (let at = from; at < text.length; at++) if (!/\s/.test(text[at])) count++;
  return count;
}

/**
 * In a string whose closing quote starts the rest of the line (the editor closed it), the suggestion ends where
 * it would close the string: `print("hello (` + `world")` before `")` gives `world`.
 */
function endStringSuppliedBySuffix(text: string, cursorLine: string, restOfLine: string, python: boolean): string {
  const quote = scanCode(cursorLine, START_OF_CODE, python).quote;
  if (quote === undefined || !restOfLine.startsWith(quote)) return text;
  for (let at = 0; at < text.length; at++) {
    if (text[at] === '\\') at++;
    else if (text.startsWith(quote, at)) return text.slice(0, at);
  }
  return text;
}

/**
 * Drops closing brackets at the end of the suggestion that the rest of the cursor line already supplies:
 * `print(foo(` + `bar))` before `)` gives `bar)`. Only closers beyond what the open brackets on the cursor line
 * need are dropped, and only ones that close brackets opened before the suggestion.
 */
function trimClosersSuppliedBySuffix(text: string, cursorLine: string, restOfLine: string, python: boolean): string {
  const trailing = /[)\]}]+(?=\s*$)/.exec(text)?.[0];
  const supplied = /^[)\]}]+/.exec(restOfLine)?.[0];
  if (trailing === undefined || supplied === undefined) return text;
  const atCursor = scanCode(cursorLine, START_OF_CODE, python);
  const code = text.trimEnd();
  const closingOutside = unmatchedClosers(code, { depth: 0, quote: atCursor.quote }, python, code.length - trailing.length);
  const excess = closingOutside + supplied.length - atCursor.depth;
  for (let drop = Math.min(excess, closingOutside, supplied.length); drop > 0; drop--) {
    // The dropped closers must be the ones the suffix starts with, so the line reads the same as intended.
    if (trailing.slice(trailing.length - drop) === supplied.slice(0, drop)) return code.slice(0, code.length - drop);
  }
  return text;
}

/** Closing brackets at or after `from` in code (not strings or comments) that close nothing opened in the text. */
function unmatchedClosers(text: string, start: ScanState, python: boolean, from: number): number {
  let open = 0;
  let unmatched = 0;
  scanCode(text, start, python, (char, at) => {
    if (OPENERS.includes(char)) open++;
    else if (open > 0) open--;
    else if (at >= from) unmatched++;
  });
  return unmatched;
}

/** Trailing whitespace off every line and the end; `keepFinalSpace` keeps what ends the last line. */
function trimTrailingWhitespace(text: string, keepFinalSpace: boolean): string {
  const lines = text.split('\n');
  const last = lines.length - 1;
  const trimmed = lines.map((line, index) => (index === last && keepFinalSpace ? line : line.trimEnd()));
  while (trimmed.length > 1 && trimmed[trimmed.length - 1] === '') trimmed.pop(); // blank lines only between kept lines
  return trimmed.join('\n');
}

/**
 * At most `maxLines` lines. An empty first line (the suggestion starts with a newline after code on the cursor
 * line) adds nothing visible to the cursor line, so it does not count.
 */
function limitLines(text: string, maxLines: number): string {
  const lines = text.split('\n');
  const uncounted = lines[0] === '' ? 1 : 0;
  if (lines.length - uncounted <= maxLines) return text;
  return trimTrailingWhitespace(lines.slice(0, Math.max(0, maxLines) + uncounted).join('\n'), false);
}

// ---------------------------------------------------------------------------------------------------------
// A light code scanner: enough to tell brackets in code from brackets in strings and comments. Strings are
// single-line quotes (ended by the line's end if unterminated) and, in Python, triple quotes.
// ---------------------------------------------------------------------------------------------------------

interface ScanState {
  /** Brackets open at this point (never below zero), so the statement goes on; braces only in Python. */
  readonly depth: number;
  /** The quotes of the string open at this point, if any. */
  readonly quote: string | undefined;
}

const START_OF_CODE: ScanState = { depth: 0, quote: undefined };
const OPENERS = '([{';
const BRACKETS = '()[]{}';

/** Scans text from a state and returns the state after it; `onBracket` sees each bracket in code. */
function scanCode(text: string, start: ScanState, python: boolean, onBracket?: (char: string, at: number) => void): ScanState {
  let { depth, quote } = start;
  for (let at = 0; at < text.length; at++) {
    const char = text[at];
    if (quote !== undefined) {
      if (char === '\\') at++;
      else if (text.startsWith(quote, at)) {
        at += quote.length - 1;
        quote = undefined;
      } else if (char === '\n' && quote.length === 1) quote = undefined;
    } else if (python && char === '#') {
      const end = text.indexOf('\n', at);
      at = end < 0 ? text.length : end;
    } else if (char === '"' || char === "'" || (!python && char === '`')) {
      quote = python && text.startsWith(char.repeat(3), at) ? char.repeat(3) : char;
      at += quote.length - 1;
    } else if (BRACKETS.includes(char)) {
      onBracket?.(char, at);
      // Outside Python, braces delimit blocks rather than continue a statement.
      if (python || (char !== '{' && char !== '}')) depth = OPENERS.includes(char) ? depth + 1 : Math.max(0, depth - 1);
    }
  }
  return { depth, quote };
}

/** A single-quoted string does not go on past its line. */
function endOfLine(state: ScanState): ScanState {
  return state.quote !== undefined && state.quote.length === 1 ? { ...state, quote: undefined } : state;
}
