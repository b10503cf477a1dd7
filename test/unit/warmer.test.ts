/**
 * The completion warmer on stand-ins for VS Code's window and workspace (the real ones exist only inside VS Code)
 * and a recording worker: when it warms, with which prompt, and when it stays idle.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import type * as vscode from 'vscode';
import type { WorkerState } from '../../src/client/workerClient';
import { CompletionWarmer, LOOK_AHEAD_TOKENS, type WarmerWindow, type WarmerWorkspace, type WarmTarget } from '../../src/completion/warmer';
import { PrefillRate } from '../../src/completion/prefillRate';
import type { NotebookWorkspace } from '../../src/completion/notebookText';
import { CompletionPrompts, completionPromptAt, promptText } from '../../src/completion/requestPrompts';
import { MAX_DOCUMENT_CHARS } from '../../src/completion/pipeline';
import type { PrefilledEvent, PrefillOptions, PrefillOutcome } from '../../src/protocol';
import { DEFAULT_SETTINGS, type Settings } from '../../src/settings/settings';
import { TextDocumentModel } from '../support/textDocument';

const REST = 30;
const TEXT = 'import os\n\n\ndef main():\n    return os.getcwd()\n';

class Emitter<T> {
  private readonly listeners = new Set<(event: T) => void>();
  readonly event = (listener: (event: T) => void): { dispose(): void } => {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  };

  fire(event: T): void {
    for (const listener of this.listeners) listener(event);
  }

  get size(): number {
    return this.listeners.size;
  }
}

interface Position { readonly line: number; readonly character: number }

interface FakeDocument {
  uri: { scheme: string; toString(): string }; version: number; languageId: string; fileName: string; text: string; getText(): string; offsetAt(position: Position): number;
  readonly lineCount: number; lineAt(line: number): { text: string; range: { start: Position; end: Position } };
  /** When set, the length VS Code would report (a document too large to build here). */
  length?: number;
}
/** Documents by URI, live as VS Code's are: an editor for a URI shows its one document, whose version counts edits. */
const documents = new Map<string, FakeDocument>();

function fakeEditor(text: string, at: Position, languageId = 'python', uri = 'file:///work/main.py', selectionEmpty = true): vscode.TextEditor {
  let document = documents.get(uri);
  if (!document) {
    const created: FakeDocument = {
      uri: { scheme: uri.slice(0, uri.indexOf(':')), toString: () => uri },
      version: 1,
      languageId,
      fileName: uri.replace('file://', ''),
      text,
      getText: () => created.text,
      offsetAt: (position: Position) => (position.line === Infinity && created.length !== undefined ? created.length : created.text.split('\n').slice(0, position.line).reduce((sum, line) => sum + line.length + 1, 0) + position.character),
      get lineCount() {
        return created.text.split('\n').length;
      },
      lineAt: (line: number) => {
        const lineText = created.text.split('\n')[line];
        return { text: lineText, range: { start: { line, character: 0 }, end: created.length !== undefined ? { line: Infinity, character: 0 } : { line, character: lineText.length } } };
      },
    };
    document = created;
    documents.set(uri, document);
  }
  if (document.text !== text) {
    document.text = text;
    document.version++;
  }
  document.languageId = languageId;
  return { document, selection: { isEmpty: selectionEmpty, active: at } } as unknown as vscode.TextEditor;
}

class Harness {
  readonly activeEditor = new Emitter<vscode.TextEditor | undefined>();
  readonly selection = new Emitter<vscode.TextEditorSelectionChangeEvent>();
  readonly window = { activeTextEditor: undefined as vscode.TextEditor | undefined, state: { focused: true }, onDidChangeActiveTextEditor: this.activeEditor.event, onDidChangeTextEditorSelection: this.selection.event };
  /** Per-language `enable` overrides. */
  readonly enableFor = new Map<string, boolean>();
  readonly workspace = {
    getConfiguration: (_section: string, scope: { languageId: string }) => ({ get: <T>(key: string, fallback: T): T => (key === 'enable' && this.enableFor.has(scope.languageId) ? this.enableFor.get(scope.languageId) as T : fallback) }),
    notebookDocuments: [] as NotebookWorkspace['notebookDocuments'][number][],
  };
  settings: Settings = DEFAULT_SETTINGS;
  readonly prefills: { sequence: string; prompt: string; maxNewTokens: number }[] = [];
  /** Each prefill's options, by index. */
  readonly options: PrefillOptions[] = [];
  outcome: PrefillOutcome = 'done';
  /** When set, prefills wait for it before they answer (a warm-up in flight). */
  hold: Promise<void> | undefined;
  readonly workerState = new Emitter<WorkerState>();
  readonly worker: WarmTarget & { state: WorkerState } = {
    state: 'ready',
    onStateChange: this.workerState.event,
    prefill: async (sequence: string, prompt: string, maxNewTokens: number, options: PrefillOptions = {}): Promise<PrefilledEvent | undefined> => {
      this.prefills.push({ sequence, prompt, maxNewTokens });
      this.options.push(options);
      const id = this.prefills.length;
      await this.hold;
      return { type: 'prefilled', id, outcome: this.outcome, stats: { quick: false, promptTokens: 1, truncatedTokens: 0, reusedTokens: 0, prefilledTokens: 0, prefillMs: 1 } };
    },
  };
  /** The extension's prompts (one instance, shared by the warmer and the provider). */
  readonly prompts = new CompletionPrompts(new PrefillRate());
  readonly warmer = new CompletionWarmer(this.window as unknown as WarmerWindow, this.workspace as unknown as WarmerWorkspace, this.worker, () => this.settings, this.prompts, undefined, undefined, REST);

  activate(editor: vscode.TextEditor): void {
    this.window.activeTextEditor = editor;
    this.activeEditor.fire(editor);
  }

  moveTo(editor: vscode.TextEditor): void {
    this.window.activeTextEditor = editor;
    this.selection.fire({ textEditor: editor } as unknown as vscode.TextEditorSelectionChangeEvent);
  }
}

const rest = (ms = 3 * REST): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let harness: Harness;
afterEach(() => {
  harness?.warmer.dispose();
  documents.clear();
});

describe('completion warmer', () => {
  test('an editor that becomes active is warmed after the rest, with the provider\'s prompt for its cursor, once per prompt', async () => {
    harness = new Harness();
    const editor = fakeEditor(TEXT, { line: 4, character: 4 });
    harness.activate(editor);
    assert.equal(harness.prefills.length, 0, 'not before the rest');
    await rest();
    assert.deepEqual(harness.prefills, [{ sequence: 'file:///work/main.py', prompt: 'import os\n\n\ndef main():\n    ', maxNewTokens: DEFAULT_SETTINGS.completionMaxTokens }]);
    assert.equal(harness.prefills[0].prompt, completionPromptAt(editor.document, editor.selection.active, DEFAULT_SETTINGS).prompt);

    harness.moveTo(editor);
    await rest();
    assert.equal(harness.prefills.length, 1, 'the same prompt is not warmed twice');
    harness.moveTo(fakeEditor(TEXT, { line: 4, character: 11 }));
    await rest();
    assert.equal(harness.prefills.length, 2);
    assert.equal(harness.prefills[1].prompt, 'import os\n\n\ndef main():\n    return ');
  });

  test('while the user types, the worker reads along: what the request would read now, one warm-up at a time, then the whole window until the next keystroke', async () => {
    harness = new Harness();
    let text = 'import os\n\n\ndef main():\n    ';
    const type = (typed: string): vscode.TextEditor => {
      text += typed;
      const editor = fakeEditor(text, { line: 4, character: text.length - text.lastIndexOf('\n') - 1 });
      harness.moveTo(editor);
      return editor;
    };
    harness.activate(fakeEditor(text, { line: 4, character: 4 }));
    let release: () => void = () => undefined;
    harness.hold = new Promise((resolve) => (release = resolve));
    let editor = type('r');
    assert.equal(harness.prefills.length, 1, 'the first edit is read at once');
    const expected = harness.prompts.at(promptText(editor.document, editor.selection.active, DEFAULT_SETTINGS), 'file:///work/main.py', DEFAULT_SETTINGS);
    assert.deepEqual(harness.prefills[0], { sequence: 'file:///work/main.py', prompt: expected.prompt, maxNewTokens: DEFAULT_SETTINGS.completionMaxTokens });
    assert.deepEqual(harness.options[0], { quick: expected.quick, nextOnly: true });
    for (const typed of 'eturn os') editor = type(typed);
    assert.equal(harness.prefills.length, 1, 'while one is in flight, none more');
    harness.hold = undefined;
    release();
    await rest(REST / 3);
    assert.equal(harness.prefills[1].prompt, text, 'then one for the text typed meanwhile');
    assert.equal(harness.options[1].nextOnly, true);
    assert.equal(harness.prefills.length, 3, 'and, nothing typed since, the whole window');
    assert.deepEqual(harness.options[2], { quick: harness.prompts.at(promptText(editor.document, editor.selection.active, DEFAULT_SETTINGS), 'file:///work/main.py', DEFAULT_SETTINGS).quick });
    assert.equal(harness.prefills[2].prompt, text);
    const before = harness.options.length;
    for (const typed of '.getcwd()') {
      editor = type(typed);
      await rest(REST / 3);
    }
    const typing = harness.prefills.slice(before).map((p, i) => ({ prompt: p.prompt, nextOnly: harness.options[before + i].nextOnly === true }));
    assert.deepEqual(typing.filter((p) => p.nextOnly).map((p) => p.prompt), [...'.getcwd()'].map((_, i) => text.slice(0, text.length - 8 + i)), 'each edit read as it is typed');
    assert.deepEqual(typing.filter((p) => !p.nextOnly).map((p) => p.prompt), [...'.getcwd()'].map((_, i) => text.slice(0, text.length - 8 + i)), 'and the whole window after each');
    await rest();
    assert.equal(harness.prefills.at(-1)?.prompt, text);
    const count = harness.prefills.length;
    assert.equal(typing.length, count - before, 'at rest, nothing more: the whole window was read');

    // Moving the cursor is not typing: nothing until it rests.
    harness.moveTo(fakeEditor(text, { line: 3, character: 4 }));
    harness.moveTo(fakeEditor(text, { line: 3, character: 5 }));
    assert.equal(harness.prefills.length, count);
    // Completions off: typing reads nothing either.
    harness.settings = { ...DEFAULT_SETTINGS, enable: false };
    type('  # done');
    await rest();
    assert.equal(harness.prefills.length, count);
  });

  test('no background work when completions are off, for other languages, when the model is not ready, out of focus, or with a selection', async () => {
    harness = new Harness();
    const editor = fakeEditor(TEXT, { line: 4, character: 4 });
    const attempt = async (): Promise<number> => {
      harness.activate(editor);
      await rest();
      return harness.prefills.length;
    };
    harness.settings = { ...DEFAULT_SETTINGS, enable: false };
    assert.equal(await attempt(), 0);
    harness.settings = DEFAULT_SETTINGS;
    harness.enableFor.set('python', false);
    assert.equal(await attempt(), 0);
    harness.enableFor.clear();
    harness.settings = { ...DEFAULT_SETTINGS, languages: ['javascript'] };
    assert.equal(await attempt(), 0);
    harness.settings = DEFAULT_SETTINGS;
    for (const state of ['stopped', 'starting', 'loading', 'paused'] as const) {
      harness.worker.state = state;
      assert.equal(await attempt(), 0, state);
    }
    harness.worker.state = 'ready';
    harness.window.state.focused = false;
    assert.equal(await attempt(), 0);
    harness.window.state.focused = true;
    harness.activate(fakeEditor(TEXT, { line: 4, character: 4 }, 'python', 'file:///work/main.py', false));
    await rest();
    assert.equal(harness.prefills.length, 0);
    assert.equal(await attempt(), 1, 'and with all of that right, it warms');
  });

  test('a warm-up the worker turned away (busy) is retried while the cursor rests; a cancelled one at the next rest', async () => {
    harness = new Harness();
    const editor = fakeEditor(TEXT, { line: 4, character: 4 });
    harness.outcome = 'busy';
    harness.activate(editor);
    await rest(5 * REST);
    const whileBusy = harness.prefills.length;
    assert.ok(whileBusy >= 2, `${whileBusy} tries while the worker was busy`);
    harness.outcome = 'done';
    await rest();
    assert.equal(harness.prefills.length, whileBusy + 1, 'taken once the worker is free, then no more');
    await rest();
    assert.equal(harness.prefills.length, whileBusy + 1);

    harness.prefills.length = 0;
    const elsewhere = fakeEditor(TEXT, { line: 4, character: 11 });
    harness.outcome = 'cancelled';
    harness.moveTo(elsewhere);
    await rest(5 * REST);
    assert.equal(harness.prefills.length, 1, 'a cancelled warm-up waits for the next rest');
    harness.outcome = 'done';
    harness.moveTo(elsewhere);
    await rest();
    assert.equal(harness.prefills.length, 2, 'and is tried again then');
  });

  test('when the model has loaded, the active editor\'s window is read without the cursor moving', async () => {
    harness = new Harness();
    harness.worker.state = 'stopped';
    const editor = fakeEditor(TEXT, { line: 4, character: 4 });
    harness.activate(editor);
    await rest();
    assert.equal(harness.prefills.length, 0, 'no model yet: nothing to read with');
    harness.worker.state = 'loading';
    harness.workerState.fire('loading');
    await rest();
    assert.equal(harness.prefills.length, 0);
    harness.worker.state = 'ready';
    harness.workerState.fire('ready');
    await rest();
    assert.deepEqual(harness.prefills.map((p) => p.prompt), [completionPromptAt(editor.document, editor.selection.active, DEFAULT_SETTINGS).prompt]);
  });

  test('after a completion ends, a read it cut short resumes while the cursor rests where it was', async () => {
    harness = new Harness();
    const editor = fakeEditor(TEXT, { line: 4, character: 4 });
    harness.outcome = 'cancelled';
    harness.activate(editor);
    await rest();
    assert.equal(harness.prefills.length, 1);
    // No cursor move: only the completion's end says the worker is free again.
    harness.outcome = 'done';
    await rest();
    assert.equal(harness.prefills.length, 1, 'nothing moved, nothing ended: no retry');
    harness.warmer.completionEnded(false);
    assert.equal(harness.prefills.length, 1, 'a cancelled one: not before the rest');
    await rest(REST / 2);
    assert.equal(harness.prefills.length, 1);
    await rest();
    assert.equal(harness.prefills.length, 2);
    assert.equal(harness.prefills[1].prompt, harness.prefills[0].prompt);
    harness.warmer.completionEnded(true);
    await rest();
    assert.equal(harness.prefills.length, 2, 'a window read to its end is not read again');
    harness.moveTo(fakeEditor(TEXT, { line: 4, character: 11 }));
    harness.warmer.completionEnded(true);
    await rest(REST / 3);
    assert.equal(harness.prefills.length, 3, 'after a finished completion: at once, not after a rest');
  });

  test('when the window is about to move, the window it moves to is read first, then the current one, and typing on reads from it', async () => {
    harness = new Harness();
    const body = (i: number): string => `def item_${i}(stock):\n    """Count item ${i}."""\n    return stock.count(${i}) + ${i * 7}\n\n\n`;
    let text = '';
    for (let i = 0; i < 200; i++) text += body(i);
    const cursorAtEnd = (t: string): Position => ({ line: t.split('\n').length - 1, character: t.length - t.lastIndexOf('\n') - 1 });
    const promptOf = (t: string): string => completionPromptAt(fakeEditor(t, cursorAtEnd(t)).document, cursorAtEnd(t) as vscode.Position, DEFAULT_SETTINGS).prompt;
    // Type on until the window is within LOOK_AHEAD_TOKENS of moving: then it warms the current window and the next.
    let typed = 0;
    for (; typed < 100; typed++) {
      const t = text + body(200 + typed);
      const ahead = completionPromptAt(fakeEditor(t, cursorAtEnd(t)).document, cursorAtEnd(t) as vscode.Position, { ...DEFAULT_SETTINGS, contextTokens: DEFAULT_SETTINGS.contextTokens - LOOK_AHEAD_TOKENS }).prompt;
      if (ahead !== promptOf(t)) break;
    }
    text += Array.from({ length: typed + 1 }, (_, i) => body(200 + i)).join('');
    harness.activate(fakeEditor(text, cursorAtEnd(text)));
    await rest();
    assert.equal(harness.prefills.length, 2, 'the window it moves to (what a read of the current one would lose at the move), then the current one');
    const [next, current] = harness.prefills.map((p) => p.prompt);
    assert.equal(current, promptOf(text));
    assert.notEqual(next, current);
    // The user types on until the window moves: the provider's prompt then starts with the warmed next window.
    let later = text;
    for (let i = 0; promptOf(later).startsWith(current.slice(0, 200)) && i < 20; i++) later += body(400 + i);
    assert.ok(!promptOf(later).startsWith(current.slice(0, 200)), 'the window moved');
    assert.ok(promptOf(later).startsWith(next), 'the moved window is the one warmed ahead');
  });

  test('no warm-up for a document too large for completions (MAX_DOCUMENT_CHARS)', async () => {
    harness = new Harness();
    const editor = fakeEditor(TEXT, { line: 4, character: 4 });
    (editor.document as unknown as FakeDocument).length = MAX_DOCUMENT_CHARS + 1;
    harness.activate(editor);
    await rest();
    assert.equal(harness.prefills.length, 0);
    (editor.document as unknown as FakeDocument).length = MAX_DOCUMENT_CHARS;
    harness.moveTo(editor);
    await rest();
    assert.equal(harness.prefills.length, 1, 'at the limit, as usual');
  });

  test('no warm-up, resting or typing, for a binary-looking document (NUL bytes)', async () => {
    harness = new Harness();
    const binary = 'PK\u0003\u0004\u0000\u0000\u0000\n\u0000\u0001x = ';
    const uri = 'file:///work/archive.py';
    harness.activate(fakeEditor(binary, { line: 1, character: 6 }, 'python', uri));
    await rest();
    harness.moveTo(fakeEditor(binary + '1', { line: 1, character: 7 }, 'python', uri)); // typed
    await rest();
    assert.equal(harness.prefills.length, 0);
    // The same document as text: warmed as usual.
    harness.moveTo(fakeEditor('import os\nx = 1', { line: 1, character: 5 }, 'python', uri));
    await rest();
    assert.ok(harness.prefills.length > 0);
  });

  test('in a notebook cell: the warm-up reads the code cells above it, in the notebook\'s sequence', async () => {
    harness = new Harness();
    const notebook = 'file:///work/analysis.ipynb';
    const above = new TextDocumentModel('import os\nroot = os.getcwd()', 'python', '/work/analysis.ipynb');
    const editor = fakeEditor('print(ro', { line: 0, character: 8 }, 'python', 'vscode-notebook-cell:/work/analysis.ipynb#cell1');
    harness.workspace.notebookDocuments.push({ uri: { toString: () => notebook }, getCells: () => [{ document: above }, { document: editor.document }] });
    harness.activate(editor);
    await rest();
    assert.deepEqual(harness.prefills.map((p) => [p.sequence, p.prompt]), [[notebook, 'import os\nroot = os.getcwd()\n\nprint(ro']]);
  });

  test('disposed: no more warm-ups, and its listeners are gone', async () => {
    harness = new Harness();
    harness.activate(fakeEditor(TEXT, { line: 4, character: 4 }));
    harness.warmer.dispose();
    await rest();
    assert.equal(harness.prefills.length, 0);
    assert.equal(harness.activeEditor.size + harness.selection.size + harness.workerState.size, 0);
  });
});
