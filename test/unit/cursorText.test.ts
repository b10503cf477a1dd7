/**
 * Issue #28: completions read only the neighbourhood of the cursor (src/completion/cursorText.ts), whatever the
 * file's size, and the prompts they build from it are the ones the whole text gives (the window's start, which the
 * worker's cache depends on, included). Checked against the context builder given the whole text before the cursor,
 * on generated modules, CRLF, and the edge files: a minified one-line file, very long lines, a header far above.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type * as vscode from 'vscode';
import { buildCompletionPrompt, charsReadBeforeCursor } from '../../src/completion/context';
import { CHARS_READ_AFTER_CURSOR, MIN_CHARS_READ_BEFORE_CURSOR, readCursorText, type CursorText } from '../../src/completion/cursorText';
import { PrefillRate } from '../../src/completion/prefillRate';
import { QuickPromptStarts } from '../../src/completion/quickPrompt';
import { CompletionPrompts, MIN_QUICK_TOKENS, promptText, QUICK_READ_MS, windowOf } from '../../src/completion/requestPrompts';
import { CHARS_PER_TOKEN, estimateTokens } from '../../src/completion/tokenEstimate';
import { DEFAULT_SETTINGS } from '../../src/settings/settings';
import { mulberry32 } from '../../src/util/rng';
import { generatedPython } from '../support/pythonSource';
import { TextDocumentModel } from '../support/textDocument';

/** The window the context builder gives from all of the text before the cursor (what the extension sent before #28). */
function wholeTextWindow(document: TextDocumentModel, position: vscode.Position, tokenBudget: number): string {
  const prefix = document.getText().slice(0, document.offsetAt(position));
  return buildCompletionPrompt({ prefix, suffix: '', languageId: document.languageId, fileName: document.fileName, tokenBudget, countTokens: estimateTokens }).prompt;
}

/** Reads around `position`, checks that what was read is bounded, and returns it. */
function readBounded(document: TextDocumentModel, position: vscode.Position, tokenBudget: number): CursorText {
  const text = readCursorText(document, position, tokenBudget);
  assert.ok(text.before.length <= Math.max(MIN_CHARS_READ_BEFORE_CURSOR, charsReadBeforeCursor(tokenBudget, CHARS_PER_TOKEN)), `read ${text.before.length} characters before the cursor`);
  assert.ok(text.after.length <= CHARS_READ_AFTER_CURSOR, `read ${text.after.length} characters after it`);
  return text;
}

function assertSameWindow(document: TextDocumentModel, position: vscode.Position, tokenBudget: number): string {
  const window = windowOf(readBounded(document, position, tokenBudget), tokenBudget);
  assert.equal(window, wholeTextWindow(document, position, tokenBudget), `at ${position.line}:${position.character}, budget ${tokenBudget}`);
  return window;
}

/** `count` positions spread over `document` (seeded): line starts, line ends and places inside lines. */
function positions(document: TextDocumentModel, count: number, seed: number): vscode.Position[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, () => {
    const line = Math.floor(random() * document.lineCount);
    const length = document.lineAt(line).text.length;
    const roll = random();
    return { line, character: roll < 0.3 ? 0 : roll < 0.6 ? length : Math.floor(random() * (length + 1)) } as vscode.Position;
  });
}

describe('what completions read around the cursor (issue #28)', () => {
  const source = generatedPython(400_000);

  test('in a 400 KB module, LF and CRLF, with and without the Python header: the window is the whole text\'s, from a bounded read', () => {
    for (const [eol, languageId] of [['\n', 'python'], ['\r\n', 'python'], ['\n', 'plaintext']] as const) {
      const document = new TextDocumentModel(source.replace(/\n/g, eol), languageId);
      for (const budget of [64, 300, 1024, 1920]) {
        for (const position of positions(document, 40, budget)) assertSameWindow(document, position, budget);
      }
      // Far from the start the header is kept in front, read from the file's first lines.
      const atEnd = assertSameWindow(document, document.end, 1024);
      if (languageId === 'python') assert.ok(atEnd.startsWith('"""Generated module: records and their totals."""\nimport os\n'), atEnd.slice(0, 80));
    }
  });

  test('typing at the end of a large module: the window and the quick prompt are the whole text\'s at every keystroke', () => {
    const document = new TextDocumentModel(source);
    const rate = new PrefillRate();
    const prompts = new CompletionPrompts(rate);
    // The same quick-start rule given all of the text before the cursor.
    const reference = new QuickPromptStarts();
    const quickTokens = Math.max(MIN_QUICK_TOKENS, rate.tokensWithin(QUICK_READ_MS));
    let position = document.end;
    const typed = 'def added(values):\n    total = 0\n    for value in values:\n        total += value * 2\n    return total\n\n\n'.repeat(8);
    const starts = new Set<string>();
    for (const char of typed) {
      position = document.insert(position, char);
      const { prompt, quick } = prompts.at(promptText(document, position, DEFAULT_SETTINGS), 'file:///work/main.py', DEFAULT_SETTINGS);
      assert.equal(prompt, wholeTextWindow(document, position, DEFAULT_SETTINGS.contextTokens));
      const prefix = document.getText().slice(0, document.offsetAt(position));
      const expectedQuick = reference.promptFor('main', { before: prefix, beforeStart: 0 }, quickTokens * CHARS_PER_TOKEN, () => wholeTextWindow(document, position, quickTokens));
      assert.equal(quick?.prompt, expectedQuick);
      starts.add(prompt.slice(0, 200));
    }
    // The window's start moved in steps, not with every line typed (≈ 800 characters typed).
    assert.ok(starts.size <= 4, `${starts.size} window starts`);
  });

  test('a minified one-line file of 3 MB: the end of the line before the cursor that fits, read from its neighbourhood only', () => {
    const line = Array.from({ length: 400_000 }, (_, i) => `a${i % 97}=${i};`).join('');
    const document = new TextDocumentModel(line, 'javascript', '/work/bundle.min.js');
    for (const character of [10, 50_000, 1_500_000, line.length]) {
      const position = { line: 0, character } as vscode.Position;
      const window = assertSameWindow(document, position, 1024);
      assert.equal(window, line.slice(character - window.length, character));
      if (character > 10_000) assert.ok(window.length > 2500 && estimateTokens(window) <= 1024, `${window.length} characters`);
    }
  });

  test('very long lines (200 KB data lines between code): the window is the whole text\'s', () => {
    const data = (seed: number): string => `DATA_${seed} = [${Array.from({ length: 30_000 }, (_, i) => (i * seed) % 1000).join(',')}]`;
    const code = generatedPython(6_000, 7).split('\n').slice(3);
    const lines = ['import os', '', data(1), ...code.slice(0, 40), data(2), data(3), ...code.slice(40)];
    const document = new TextDocumentModel(lines.join('\n'));
    for (const position of positions(document, 60, 3)) assertSameWindow(document, position, 1024);
    // On the line after a long one, and right after it on the next line.
    for (const line of [3, 43, 44, 45]) assertSameWindow(document, { line, character: 0 } as vscode.Position, 1024);
  });

  test('a long header (a long docstring, imports) above a large module: kept or left out as with the whole text', () => {
    const long = '"""' + 'Module notes. '.repeat(600) + '"""\nimport os\n\n';
    const short = '#!/usr/bin/env python\n# comment\nimport sys\nfrom os import (\n    path,\n    sep,\n)\n\n\n\n';
    for (const header of [long, short, short + '\n'.repeat(500), '\n'.repeat(30_000) + short]) {
      const document = new TextDocumentModel(header + source.split('\n').slice(3).join('\n'));
      for (const position of positions(document, 20, 11)) assertSameWindow(document, position, 1024);
      assertSameWindow(document, document.end, 1024);
    }
  });
});
