/**
 * A text document as VS Code's extension host keeps one (ExtHostDocumentData and its PrefixSumComputer): the lines
 * in an array, one line ending for all, and the lines' offsets as prefix sums, which an edit invalidates from its
 * line on and `offsetAt` recomputes lazily up to the line it is asked about. So what completions cost per keystroke
 * here is what they cost in the editor: `lineAt` hands out a line, `getText()` joins them all. For the unit tests,
 * the benchmark of the host's work per keystroke (bench/host.ts) and the eval.
 */
import type * as vscode from 'vscode';
import type { PromptDocument } from '../../src/completion/cursorText';

interface Position {
  readonly line: number;
  readonly character: number;
}

export class TextDocumentModel implements PromptDocument {
  private lines: string[];
  /** starts[i]: the offset of line i, valid for i <= validUpTo (VS Code's are a Uint32Array too). */
  private starts: Uint32Array;
  private validUpTo = 0;
  version = 1;
  readonly uri: { readonly scheme: string; toString(): string };

  constructor(
    text: string,
    readonly languageId = 'python',
    readonly fileName = '/work/main.py',
    readonly eolText: '\n' | '\r\n' = text.includes('\r\n') ? '\r\n' : '\n',
  ) {
    this.lines = text.split(/\r?\n/);
    this.starts = new Uint32Array(this.lines.length);
    this.uri = { scheme: 'file', toString: () => `file://${fileName}` };
  }

  get lineCount(): number {
    return this.lines.length;
  }

  /** vscode.EndOfLine: 1 LF, 2 CRLF. */
  get eol(): number {
    return this.eolText === '\r\n' ? 2 : 1;
  }

  lineAt(line: number): { text: string; range: vscode.Range } {
    if (line < 0 || line >= this.lines.length) throw new Error(`Illegal value for \`line\`: ${line}`);
    const text = this.lines[line];
    return { text, range: { start: position(line, 0), end: position(line, text.length) } as vscode.Range };
  }

  offsetAt(at: Position): number {
    const line = Math.min(Math.max(0, at.line), this.lines.length - 1);
    return this.lineStart(line) + Math.min(at.character, this.lines[line].length);
  }

  positionAt(offset: number): vscode.Position {
    let low = 0;
    let high = this.lines.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.lineStart(middle) <= offset) low = middle;
      else high = middle - 1;
    }
    return position(low, Math.min(offset - this.lineStart(low), this.lines[low].length));
  }

  getText(): string {
    return this.lines.join(this.eolText);
  }

  /** The position after the last character. */
  get end(): vscode.Position {
    return position(this.lines.length - 1, this.lines[this.lines.length - 1].length);
  }

  /** Inserts `text` at `at` (LF line breaks), as an edit VS Code sends the extension host; returns the position after it. */
  insert(at: Position, text: string): vscode.Position {
    const line = this.lines[at.line];
    const inserted = (line.slice(0, at.character) + text + line.slice(at.character)).split('\n');
    this.lines.splice(at.line, 1, ...inserted);
    if (this.lines.length > this.starts.length) {
      const grown = new Uint32Array(2 * this.lines.length);
      grown.set(this.starts);
      this.starts = grown;
    }
    this.version++;
    this.validUpTo = Math.min(this.validUpTo, at.line);
    const last = inserted.length - 1;
    const tail = text.length - text.lastIndexOf('\n') - 1;
    return position(at.line + last, last === 0 ? at.character + text.length : tail);
  }

  /** Deletes the `count` characters before `at` on its line; returns the position it leaves. */
  deleteBefore(at: Position, count: number): vscode.Position {
    const line = this.lines[at.line];
    this.lines[at.line] = line.slice(0, at.character - count) + line.slice(at.character);
    this.version++;
    this.validUpTo = Math.min(this.validUpTo, at.line);
    return position(at.line, at.character - count);
  }

  private lineStart(line: number): number {
    const eolLength = this.eolText.length;
    for (let index = this.validUpTo + 1; index <= line; index++) this.starts[index] = this.starts[index - 1] + this.lines[index - 1].length + eolLength;
    this.validUpTo = Math.max(this.validUpTo, line);
    return this.starts[line];
  }
}

function position(line: number, character: number): vscode.Position {
  return { line, character } as vscode.Position;
}
