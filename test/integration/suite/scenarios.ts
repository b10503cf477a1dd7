/// <reference types="mocha" />
/**
 * The in-editor scenarios (mocha, tdd interface), run in order in one extension host: each drives the development
 * extension through VS Code's own commands and checks what lands in the document against the engine run
 * in-process. Checks that need to see the page (ghost text, toasts, the webview, the status bar) are tests of their
 * own, marked "(page)": they go through the runner's page reader and are skipped (mocha: pending), with a log
 * line, under a runner without one.
 *
 * Then modelSetup.ts and explainSafety.ts; deactivate.ts comes last (index.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  alnum, assert, channelDir, currentSettings, Engine, EXTENSION_ID, log, openCompletable, openPython, resetTo, seeUntil, show, skipWithoutPage,
  sleep, triggerAndCommit, workerPids, workspaceDir, type Seen,
} from './support';

const FIB_PREFIX = 'def fibonacci(n):\n    ';
// Distinct prompts per test: the provider caches suggestions by the text around the cursor, across documents.
const AFTER_KILL_PROMPTS = ['def greet(name):\n    ', 'def greet(name, greeting):\n    '];
const BROKEN_PROMPTS = ['class Point:\n    def __init__(self, x, y):\n        ', 'class Vector:\n    def __init__(self, x, y):\n        '];
const THREADS_PROMPTS = ['def square(x):\n    return', 'def cube(x):\n    return'];
const DISABLED_PROMPTS = ['def add(a, b):\n    ', 'def add(a, b, c):\n    ', 'def subtract(a, b):\n    '];
const EXPLAIN_BODY = '    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n';

/** An existing folder with no model in it (phiComplete.modelPath pointed there fails to load). */
function emptyModelFolder(): string {
  const empty = path.join(channelDir(), 'empty-model');
  fs.mkdirSync(empty, { recursive: true });
  return empty;
}

/**
 * Runs Explain Selection (48 tokens) on the body of a fib function; checks that the command resolves with an
 * Explanation tab open. Returns the explanation the engine gives for it.
 */
async function explainFib(engine: Engine): Promise<string> {
  const config = vscode.workspace.getConfiguration('phiComplete');
  await config.update('explain.maxTokens', 48, vscode.ConfigurationTarget.Global);
  try {
    const editor = await openPython('explain.py', `def fib(n):\n${EXPLAIN_BODY}`);
    editor.selection = new vscode.Selection(new vscode.Position(1, 0), new vscode.Position(5, 0));
    assert(editor.document.getText(editor.selection) === EXPLAIN_BODY, `selected ${show(editor.document.getText(editor.selection))}`);
    const expected = await engine.explanation(EXPLAIN_BODY, currentSettings());
    log(`# engine explanation: ${show(expected)}`);
    assert(alnum(expected).length >= 10, 'the engine\'s explanation has too few letters to recognise in the panel: pick another selection');
    await vscode.commands.executeCommand('phiComplete.explainSelection'); // resolves once generated and posted
    const tabs = vscode.window.tabGroups.all.flatMap((g) => g.tabs).map((t) => t.label);
    assert(tabs.includes('Explanation'), `no Explanation tab; tabs: ${tabs.join(', ')}`);
    return expected;
  } finally {
    await config.update('explain.maxTokens', undefined, vscode.ConfigurationTarget.Global);
  }
}

suite('phi-complete in a real VS Code', () => {
  let engine: Engine;
  let fibEditor: vscode.TextEditor | undefined;
  let fibExpected: string | undefined;

  suiteSetup(async () => {
    const settings = currentSettings();
    assert(settings.modelPath, 'phiComplete.modelPath is not set (the runner writes it)');
    engine = await Engine.load(settings.modelPath, settings.threads);
  });

  suiteTeardown(async () => {
    await engine?.dispose();
  });

  teardown(async () => {
    // The Explanation panel opens beside the editor: the next test's editor must not land in its group.
    await vscode.commands.executeCommand('workbench.action.closeEditorsInOtherGroups');
  });

  test('the development extension is active', async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert(extension, `${EXTENSION_ID} is not installed in this host`);
    await extension.activate();
    assert(extension.isActive, `${EXTENSION_ID} did not activate`);
  });

  test('a suggestion for `def fibonacci(n):` is the engine\'s completion, committed into the document', async () => {
    const settings = currentSettings();
    const editor = await openPython('fib.py', FIB_PREFIX);
    const expected = await engine.expected(FIB_PREFIX, FIB_PREFIX.length, editor.document.fileName, settings);
    log(`# engine completion: ${show(expected)}`);
    assert(expected.length > 0, 'the engine completes nothing for this prompt with this model: pick another prompt or seed');
    const inserted = await triggerAndCommit(editor, 60_000, expected);
    assert(inserted.length > 0, 'no suggestion was committed within 60 s');
    assert(inserted === expected, `committed ${show(inserted)}, the engine produces ${show(expected)}`);
    fibEditor = editor;
    fibExpected = expected;
  });

  test('the ghost text is rendered in the editor, screenshotted (page)', async function () {
    const editor = fibEditor;
    const expected = fibExpected;
    assert(editor && expected, 'needs the previous test');
    skipWithoutPage(this, 'the ghost text shown in the page');
    await resetTo(editor, FIB_PREFIX);
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    await sleep(1000); // served from the provider's cache; let the editor paint it
    const squash = (s: string): string => s.replace(/\s+/g, '');
    const firstLine = expected.split('\n')[0];
    const seen = await seeUntil('ghost-text', (s) => squash(s.ghostText).length > 0, 0);
    log(`# screenshot ${seen.file}; ghost text in the page: ${show(seen.ghostText)}`);
    log(`# rendered by elements of class: ${seen.classes.join(', ')}`);
    assert(squash(seen.ghostText).length > 0, 'no ghost text element is visible in the page');
    assert(squash(seen.ghostText).startsWith(squash(firstLine)), `the page shows ${show(seen.ghostText)}, expected it to start with ${show(firstLine)}`);
    await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
  });

  test('typing the start of a shown suggestion keeps the rest of it', async function () {
    const editor = fibEditor;
    const expected = fibExpected;
    assert(editor && expected, 'needs the previous test');
    // Type plain word characters and spaces only (brackets and quotes would be auto-closed by the editor).
    const typed = /^ ?[A-Za-z0-9_]{1,3}/.exec(expected)?.[0] ?? '';
    if (!typed || typed === expected) {
      log(`# skipped: the suggestion ${show(expected)} does not start with word characters to type`);
      this.skip();
    }
    await resetTo(editor, FIB_PREFIX);
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    await sleep(500);
    for (const ch of typed) {
      await vscode.commands.executeCommand('type', { text: ch });
      await sleep(50);
    }
    assert(editor.document.getText() === FIB_PREFIX + typed, `typing gave ${show(editor.document.getText())}`);
    const rest = await triggerAndCommit(editor, 30_000);
    assert(rest === expected.slice(typed.length), `after typing ${show(typed)} the suggestion was ${show(rest)}, expected the rest ${show(expected.slice(typed.length))}`);
    // Would a fresh model call from the longer prefix have given the same rest? If not, the rest came from the
    // suggestion already shown (the provider's cache or the editor keeping it), not from a new generation.
    const fresh = await engine.expected(FIB_PREFIX + typed, (FIB_PREFIX + typed).length, editor.document.fileName, currentSettings());
    log(fresh === rest
      ? `# note: a fresh generation gives the same rest (${show(fresh)}): this run cannot tell cache from model call`
      : `# a fresh generation would give ${show(fresh)}: the rest came from the suggestion already shown`);
  });

  test('with phiComplete.enable false nothing is suggested', async () => {
    const config = vscode.workspace.getConfiguration('phiComplete');
    // A text the engine completes, so that the control below (completions on again) has something to show.
    const file = path.join(workspaceDir(), 'disabled.py');
    let text = '';
    let expected = '';
    for (const candidate of DISABLED_PROMPTS) {
      [text, expected] = [candidate, await engine.expected(candidate, candidate.length, file, currentSettings())];
      if (expected !== '') break;
    }
    assert(expected !== '', `the engine completes none of ${show(DISABLED_PROMPTS.join(' | '))}`);
    let editor: vscode.TextEditor;
    await config.update('enable', false, vscode.ConfigurationTarget.Global);
    try {
      editor = await openPython('disabled.py', text); // opened while disabled: no request is in flight
      const inserted = await triggerAndCommit(editor, 4_000);
      assert(inserted === '', `a suggestion was committed while disabled: ${show(inserted)}`);
      assert(editor.document.getText() === text, 'the document changed');
    } finally {
      await config.update('enable', undefined, vscode.ConfigurationTarget.Global);
    }
    // Control: the same document gets the engine's suggestion once completions are on again.
    // A new document version: the editor does not ask again for a version and position it already asked about.
    await resetTo(editor, text);
    const inserted = await triggerAndCommit(editor, 30_000, expected);
    assert(inserted === expected, `re-enabled: committed ${show(inserted)}, the engine produces ${show(expected)}`);
  });

  test('Explain Selection resolves once the explanation is generated, in a tab named Explanation', async () => {
    await explainFib(engine);
  });

  test('the Explanation panel shows the engine\'s explanation (page)', async function () {
    skipWithoutPage(this, 'the text inside the Explanation webview');
    const expected = await explainFib(engine);
    const want = alnum(expected).slice(0, 40);
    const seen = await seeUntil('explain', (s) => !!s.webviewText && !s.webviewText.includes('▍') && alnum(s.webviewText).includes(want), 15_000);
    log(`# screenshot ${seen.file}; panel text: ${show(seen.webviewText ?? '')}`);
    assert(seen.webviewText && seen.webviewText.trim() !== '', 'the Explanation panel shows no text');
    assert(!seen.webviewText.includes('▍'), 'the panel still shows the streaming cursor');
    assert(alnum(seen.webviewText).includes(want), `the panel shows ${show(seen.webviewText)}, expected the letters and digits of ${show(expected)} (first 40: ${want})`);
  });

  test('after the worker is killed the next completion still arrives (from a restarted worker)', async () => {
    const before = workerPids();
    assert(before.length === 1, `expected one worker child of this host (pid ${process.pid}), found ${before.join(', ') || 'none'}`);
    process.kill(before[0], 'SIGKILL');
    const deadline = Date.now() + 5000;
    while (workerPids().includes(before[0]) && Date.now() < deadline) await sleep(50);
    assert(!workerPids().includes(before[0]), `worker ${before[0]} is still alive after SIGKILL`);
    await sleep(300); // let the host see the exit
    const { editor, expected } = await openCompletable('after-kill.py', AFTER_KILL_PROMPTS, engine);
    const inserted = await triggerAndCommit(editor, 60_000, expected);
    assert(inserted === expected, `after the kill: committed ${show(inserted)}, the engine produces ${show(expected)}`);
    const after = workerPids();
    assert(after.length === 1 && after[0] !== before[0], `expected a new worker, found ${after.join(', ') || 'none'} (killed ${before[0]})`);
  });

  test('a model folder without a model: nothing is suggested; restoring the setting brings completions back', async () => {
    const config = vscode.workspace.getConfiguration('phiComplete');
    const original = config.inspect<string>('modelPath')?.globalValue;
    assert(original, 'phiComplete.modelPath is not set in the user settings');
    const { editor, text, expected } = await openCompletable('broken.py', BROKEN_PROMPTS, engine);
    await config.update('modelPath', emptyModelFolder(), vscode.ConfigurationTarget.Global);
    try {
      const inserted = await triggerAndCommit(editor, 3_000);
      assert(inserted === '', `a suggestion was committed with a broken model path: ${show(inserted)}`);
    } finally {
      await config.update('modelPath', original, vscode.ConfigurationTarget.Global);
      await vscode.commands.executeCommand('notifications.clearAll');
    }
    await resetTo(editor, text);
    const inserted = await triggerAndCommit(editor, 60_000, expected);
    assert(inserted === expected, `restored: committed ${show(inserted)}, the engine produces ${show(expected)}`);
  });

  test('a model folder without a model shows an error notification with Open Settings (page)', async function () {
    skipWithoutPage(this, 'the error notification shown in the page');
    const config = vscode.workspace.getConfiguration('phiComplete');
    const original = config.inspect<string>('modelPath')?.globalValue;
    assert(original, 'phiComplete.modelPath is not set in the user settings');
    await vscode.commands.executeCommand('notifications.clearAll');
    await config.update('modelPath', emptyModelFolder(), vscode.ConfigurationTarget.Global);
    try {
      await vscode.commands.executeCommand('phiComplete.verifyModel'); // asks for the model: the load fails
      const matches = (m: string): boolean => m.includes('has no manifest.json') || m.includes('could not be loaded');
      await vscode.commands.executeCommand('notifications.showList'); // no toasts under the runner's smoke-test driver: the center lists them
      const seen = await seeUntil('broken-model', (s) => (s.notices ?? []).some((n) => matches(n.message)), 15_000);
      log(`# screenshot ${seen.file}; notifications: ${show((seen.notices ?? []).map((n) => `${n.message} [${n.buttons.join(', ')}]`).join(' | '))}`);
      const notice = (seen.notices ?? []).find((n) => matches(n.message));
      assert(notice, `no error notification about the model; notifications: ${show((seen.notifications ?? []).join(' | '))}`);
      assert(notice.buttons.includes('Open Settings'), `the notification's buttons are ${show(notice.buttons.join(', '))}, expected Open Settings`);
    } finally {
      await config.update('modelPath', original, vscode.ConfigurationTarget.Global);
      await vscode.commands.executeCommand('notifications.clearAll');
      await vscode.commands.executeCommand('notifications.hideList');
    }
  });

  test('changing phiComplete.threads reloads the model and completions still match', async () => {
    const config = vscode.workspace.getConfiguration('phiComplete');
    const { editor, expected } = await openCompletable('threads.py', THREADS_PROMPTS, engine);
    await config.update('threads', 1, vscode.ConfigurationTarget.Global);
    try {
      const inserted = await triggerAndCommit(editor, 60_000, expected);
      assert(inserted === expected, `with 1 thread: committed ${show(inserted)}, the engine produces ${show(expected)}`);
    } finally {
      await config.update('threads', undefined, vscode.ConfigurationTarget.Global);
    }
  });

  test('changing phiComplete.threads: the extension log shows the reload, the status bar shows the CPU (page)', async function () {
    skipWithoutPage(this, 'the extension log and the status bar (model reload, device)');
    const config = vscode.workspace.getConfiguration('phiComplete');
    const loads = (seen: Seen): number => (seen.extensionLog ?? '').split('\n').filter((l) => / loaded on cpu in /.test(l)).length;
    const loadsBefore = loads(await seeUntil('status-cpu', () => true, 0));
    assert(loadsBefore > 0, 'the extension log (read by the runner) records no model load');
    await config.update('threads', 1, vscode.ConfigurationTarget.Global);
    try {
      const reloaded = await seeUntil('status-cpu', (s) => loads(s) > loadsBefore, 15_000);
      assert(loads(reloaded) > loadsBefore, `the extension log shows no new "loaded on cpu" after phiComplete.threads changed (${loadsBefore} before)`);
      const seen = await seeUntil('status-cpu', (s) => (s.statusbar ?? []).some((t) => /\bCPU\b/.test(t)), 15_000);
      const phi = (seen.statusbar ?? []).filter((t) => /CPU|phi|loading|error|ready|generating/.test(t));
      log(`# screenshot ${seen.file}; status bar: ${show(phi.join(' | '))}`);
      assert((seen.statusbar ?? []).some((t) => /\bCPU\b/.test(t)), `no status bar item shows CPU: ${show((seen.statusbar ?? []).join(' | '))}`);
    } finally {
      await config.update('threads', undefined, vscode.ConfigurationTarget.Global);
    }
  });
});
