/**
 * Notebooks: VS Code gives each cell as a document of its own (scheme vscode-notebook-cell), so a cell's prompt
 * would see that cell alone, while the code the cursor's cell uses was written in the cells above it. Completions
 * read a cell as part of one document: the notebook's code cells of the cell's language, in order, from the first
 * to the cursor's, joined by a blank line (CellsDocument), read line by line like any document (./cursorText.ts),
 * so the window over them is bounded and its start stays put as in a file. The notebook is the worker's sequence,
 * so that its cells share one cache of what was read.
 *
 * Uses no runtime import of 'vscode'.
 */
import type * as vscode from 'vscode';
import { lfOffsetOfLine, type PromptDocument } from './cursorText';

/** A document that completions are asked in (a vscode.TextDocument). */
export interface SourceDocument extends PromptDocument {
  readonly uri: { readonly scheme: string; toString(): string };
}

/** The notebooks open in VS Code (vscode.workspace's notebookDocuments). */
export interface NotebookWorkspace {
  readonly notebookDocuments: readonly {
    readonly uri: { toString(): string };
    getCells(): readonly { readonly document: PromptDocument }[];
  }[];
}

/** What completions at a cursor read: the document, the cursor in it, and the worker's sequence for it. */
export interface CompletionSource {
  readonly document: PromptDocument;
  readonly position: vscode.Position;
  readonly sequence: string;
}

const NOTEBOOK_CELL_SCHEME = 'vscode-notebook-cell';

/** What completions at `position` in `document` read: the document itself, or for a notebook cell the cells up to it. */
export function completionSource(workspace: NotebookWorkspace, document: SourceDocument, position: vscode.Position): CompletionSource {
  const own = { document, position, sequence: document.uri.toString() };
  if (document.uri.scheme !== NOTEBOOK_CELL_SCHEME) return own;
  for (const notebook of workspace.notebookDocuments) {
    const cells = notebook.getCells();
    const index = cells.findIndex((cell) => cell.document === document);
    if (index < 0) continue;
    const earlier = cells.slice(0, index).map((cell) => cell.document).filter((cell) => cell.languageId === document.languageId);
    if (earlier.length === 0) return { ...own, sequence: notebook.uri.toString() };
    const joined = new CellsDocument([...earlier, document]);
    return { document: joined, position: { line: joined.lastCellLine + position.line, character: position.character } as vscode.Position, sequence: notebook.uri.toString() };
  }
  return own;
}

/** A cell's place in the joined document. */
interface Part {
  readonly document: PromptDocument;
  /** Its first line there. */
  readonly line: number;
  /** Its start there (LF offsets). */
  readonly offset: number;
}

/**
 * Cells read as one document, LF line ends, a blank line between two cells; the last cell is the cursor's. Its
 * positions and offsets are its own (plain objects, LF offsets); each cell's are asked of the cell.
 */
export class CellsDocument implements PromptDocument {
  private readonly parts: Part[] = [];
  readonly lineCount: number;
  readonly languageId: string;
  readonly fileName: string;

  constructor(cells: readonly PromptDocument[]) {
    let line = 0;
    let offset = 0;
    for (const document of cells) {
      this.parts.push({ document, line, offset });
      const last = document.lineCount - 1;
      // The cell's LF length, then the line break and the blank line between cells.
      offset += lfOffsetOfLine(document, last) + document.lineAt(last).text.length + 2;
      line += document.lineCount + 1;
    }
    this.lineCount = line - 1;
    const cursorCell = cells[cells.length - 1];
    this.languageId = cursorCell.languageId;
    this.fileName = cursorCell.fileName;
  }

  /** The first line of the cursor's cell. */
  get lastCellLine(): number {
    return this.parts[this.parts.length - 1].line;
  }

  lineAt(line: number): { text: string; range: Pick<vscode.Range, 'start' | 'end'> } {
    const part = this.partOf(line);
    const text = line - part.line < part.document.lineCount ? part.document.lineAt(line - part.line).text : '';
    return { text, range: { start: position(line, 0), end: position(line, text.length) } };
  }

  offsetAt(at: vscode.Position): number {
    const part = this.partOf(at.line);
    const cellLine = at.line - part.line;
    // The blank line after a cell: after the cell's text and its line break.
    if (cellLine >= part.document.lineCount) return this.offsetAt(position(at.line - 1, Number.MAX_SAFE_INTEGER)) + 1;
    const text = part.document.lineAt(cellLine).text;
    return part.offset + lfOffsetOfLine(part.document, cellLine) + Math.min(at.character, text.length);
  }

  /** The cell `line` is in (or the blank line after). */
  private partOf(line: number): Part {
    let low = 0;
    let high = this.parts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.parts[middle].line <= line) low = middle;
      else high = middle - 1;
    }
    return this.parts[low];
  }
}

function position(line: number, character: number): vscode.Position {
  return { line, character } as vscode.Position;
}
