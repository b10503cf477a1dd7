/**
 * Issue #28, notebooks: a cell's prompt holds the notebook's code cells above it (src/completion/notebookText.ts),
 * within the same budget, read as one document, and its window's start stays put while the user types in the cell.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type * as vscode from 'vscode';
import { buildCompletionPrompt } from '../../src/completion/context';
import { cursorOffset, type CursorText } from '../../src/completion/cursorText';
import { completionSource, type NotebookWorkspace } from '../../src/completion/notebookText';
import { promptText, windowOf } from '../../src/completion/requestPrompts';
import { estimateTokens } from '../../src/completion/tokenEstimate';
import { DEFAULT_SETTINGS } from '../../src/settings/settings';
import { generatedPython } from '../support/pythonSource';
import { TextDocumentModel } from '../support/textDocument';

const NOTEBOOK = 'file:///work/analysis.ipynb';

/** A notebook of cells (text and language), each a document with a vscode-notebook-cell URI, as VS Code gives them. */
function notebookOf(cells: readonly (readonly [string, string])[]): { workspace: NotebookWorkspace; cells: TextDocumentModel[] } {
  const documents = cells.map(([text, languageId], index) => {
    const document = new TextDocumentModel(text, languageId, '/work/analysis.ipynb');
    Object.defineProperty(document, 'uri', { value: { scheme: 'vscode-notebook-cell', toString: () => `vscode-notebook-cell:/work/analysis.ipynb#cell${index}` } });
    return document;
  });
  const notebook = { uri: { toString: () => NOTEBOOK }, getCells: () => documents.map((document) => ({ document })) };
  return { workspace: { notebookDocuments: [notebook] }, cells: documents };
}

/** The completion window at `position` in `cell`, as the provider and the warmer read it, and the text it was read from. */
function windowAt(workspace: NotebookWorkspace, cell: TextDocumentModel, position: vscode.Position): { window: string; sequence: string; text: CursorText } {
  const source = completionSource(workspace, cell, position);
  const text = promptText(source.document, source.position, DEFAULT_SETTINGS);
  return { window: windowOf(text, DEFAULT_SETTINGS.contextTokens), sequence: source.sequence, text };
}

describe('completions in a notebook (issue #28)', () => {
  test('a cell\'s prompt holds the code cells above it, in order, a blank line between; markdown and the cells below are left out', () => {
    const { workspace, cells } = notebookOf([
      ['import os\nx = 1', 'python'],
      ['# Notes\nSome *prose*.', 'markdown'],
      ['def f():\n    return x\n', 'python'],
      ['y = f', 'python'],
      ['z = 2', 'python'],
    ]);
    const { window, sequence, text } = windowAt(workspace, cells[3], cells[3].end);
    assert.equal(text.after, '', 'the cells below are not read');
    assert.equal(window, 'import os\nx = 1\n\ndef f():\n    return x\n\n\ny = f');
    assert.equal(sequence, NOTEBOOK, 'the notebook\'s cells share one sequence in the worker');
    // Mid-cell: the cell's text before the cursor only.
    assert.equal(windowAt(workspace, cells[3], { line: 0, character: 2 } as vscode.Position).window, 'import os\nx = 1\n\ndef f():\n    return x\n\n\ny ');
    // The first cell, and a file that is not a notebook's: as before.
    const first = windowAt(workspace, cells[0], cells[0].end);
    assert.deepEqual([first.window, first.sequence], ['import os\nx = 1', NOTEBOOK]);
    const file = new TextDocumentModel('print(1)\n', 'python', '/work/a.py');
    const own = windowAt(workspace, file, file.end);
    assert.deepEqual([own.window, own.sequence], ['print(1)\n', 'file:///work/a.py']);
  });

  test('a large notebook, CRLF cells included: the window is the joined text\'s, from a bounded read, and stays put while the last cell is typed into', () => {
    const texts = Array.from({ length: 30 }, (_, index) => generatedPython(15_000, index + 1).trimEnd());
    const { workspace, cells } = notebookOf([...texts.map((text, index) => [index % 3 === 0 ? text.replace(/\n/g, '\r\n') : text, 'python'] as const), ['', 'python']]);
    const last = cells[cells.length - 1];
    let position = last.end;
    const starts = new Set<string>();
    const typed = 'def summary(rows):\n    total = 0\n    for row in rows:\n        total += row\n    return total\n\n\n'.repeat(4);
    for (const char of typed) {
      position = last.insert(position, char);
      const { window, text } = windowAt(workspace, last, position);
      const joined = [...texts, last.getText().slice(0, last.offsetAt(position))].join('\n\n');
      // Where the cursor is in the joined text (what the cache and the quick prompt's kept start count in).
      assert.equal(cursorOffset(text), joined.length);
      assert.ok(text.before.length < 10_000, `read ${text.before.length} characters of a ${joined.length}-character notebook`);
      const expected = buildCompletionPrompt({ prefix: joined, suffix: '', languageId: 'python', fileName: '/work/analysis.ipynb', tokenBudget: DEFAULT_SETTINGS.contextTokens, countTokens: estimateTokens }).prompt;
      assert.equal(window, expected);
      starts.add(window.slice(0, 300));
    }
    assert.ok(starts.size <= 3, `${starts.size} window starts while ${typed.length} characters were typed`);
    // The header of the first cell is kept in front.
    assert.ok([...starts].every((start) => start.startsWith('"""Generated module')));
  });
});
