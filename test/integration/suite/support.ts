/**
 * What the in-editor scenarios share: the engine run in-process (the expected outputs), opening and completing
 * Python documents through VS Code's own inline-suggestion commands, the suite log, the worker's pid, and the
 * page reader.
 *
 * The page reader is the runner's, when it has one (scripts/integration/run.mjs holds the browser; the
 * @vscode/test-electron runner has none): the suite asks by writing `request-<name>.json` into
 * `<workspace>/.phi-it/` and waits for `done-<name>.json`, which carries what the page shows (ghost text,
 * notifications, status bar, the Explanation webview, the extension's log) plus a screenshot. The runner says
 * whether it answers in `<workspace>/.phi-it/runner.json` (`{ "runner": …, "pageReader": true|false }`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { inProcessBackend } from '../../../src/completion/backend';
import { completionParams, shapeSuggestion } from '../../../src/completion/pipeline';
import { completionPromptAt } from '../../../src/completion/requestPrompts';
import { TextDocumentModel } from '../../support/textDocument';
import { buildExplainPrompt, EXPLAIN_STOPS } from '../../../src/explain/explainPrompt';
import { PhiDecoder } from '../../../src/inference/decoder';
import { DEFAULT_SEQUENCE, Generator } from '../../../src/inference/generator';
import { MODEL_FILE, TOKENIZER_FILE } from '../../../src/model/manifest';
import { readSettings, type Settings } from '../../../src/settings/settings';
import { PhiTokenizer } from '../../../src/tokenizer/tokenizer';

export const EXTENSION_ID = 'phi-complete.phi-complete';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

export function show(text: string): string {
  return JSON.stringify(text);
}

export function workspaceDir(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert(folder, 'no workspace folder is open');
  return folder.uri.fsPath;
}

/** `<workspace>/.phi-it`: where the suite and the runner exchange files (requests, the log, the pid records). */
export function channelDir(): string {
  return path.join(workspaceDir(), '.phi-it');
}

/**
 * Set while the extension host is being shut down on purpose (the deactivation scenario): errors other
 * extensions throw as their channels close are not the suite's failures, and the run must not report a result
 * from a host that is going away (the next host's run reports).
 */
export const hostEnding = { value: false };

/** Appends a line to the suite log (`.phi-it/suite.log`, printed by the runner) and to the console. */
export function log(line: string): void {
  console.log(line);
  fs.appendFileSync(path.join(channelDir(), 'suite.log'), `${line}\n`);
}

export function currentSettings(): Settings {
  const { settings } = readSettings((key) => vscode.workspace.getConfiguration('phiComplete').get(key));
  return settings;
}

/** The engine, loaded in this process from the same model folder the extension uses. */
export class Engine {
  private constructor(private readonly generator: Generator, private readonly decoder: PhiDecoder) {}

  static async load(modelDir: string, threads: number): Promise<Engine> {
    assert(fs.existsSync(path.join(modelDir, MODEL_FILE)), `${modelDir} has no ${MODEL_FILE}`);
    const tokenizer = PhiTokenizer.fromFile(path.join(modelDir, TOKENIZER_FILE));
    const decoder = await PhiDecoder.load(modelDir, { executionProviders: ['cpu'], threads: threads || undefined });
    return new Engine(new Generator(decoder, tokenizer), decoder);
  }

  /**
   * What the provider should show for the document's text split at `offset`, from the whole window: the completion
   * pipeline's stages (src/completion/pipeline.ts) with this process's engine as the backend.
   */
  async expected(text: string, offset: number, fileName: string, settings: Settings): Promise<string> {
    const document = new TextDocumentModel(text, 'python', fileName);
    const { prompt, text: around } = completionPromptAt(document, document.positionAt(offset), settings);
    const result = await inProcessBackend(this.generator).generate(prompt, completionParams(settings), () => undefined, new AbortController().signal, DEFAULT_SEQUENCE);
    return shapeSuggestion(result.text, { prefix: around.before, suffix: around.after, eol: '\n', languageId: 'python' });
  }

  /** The explanation the Explain Selection panel should show for `code` (before Markdown rendering). */
  async explanation(code: string, settings: Settings): Promise<string> {
    const { prompt } = buildExplainPrompt(code, 'python');
    const result = await this.generator.generate({
      prompt,
      maxNewTokens: settings.explainMaxTokens,
      sampling: { temperature: settings.temperature, topK: 0, topP: settings.topP, seed: 0 },
      stop: EXPLAIN_STOPS,
      speculative: false,
    });
    return result.text;
  }

  async dispose(): Promise<void> {
    await this.generator.dispose();
    await this.decoder.dispose();
  }
}

/** Creates `name` in the workspace with `text`, opens it, and puts the cursor at the end. */
export async function openPython(name: string, text: string): Promise<vscode.TextEditor> {
  const uri = vscode.Uri.file(path.join(workspaceDir(), name));
  await vscode.workspace.fs.writeFile(uri, new TextEncoder().encode(text));
  const document = await vscode.workspace.openTextDocument(uri);
  if (document.languageId !== 'python') await vscode.languages.setTextDocumentLanguage(document, 'python');
  const editor = await vscode.window.showTextDocument(document, { preview: false });
  const end = document.positionAt(document.getText().length);
  editor.selection = new vscode.Selection(end, end);
  return editor;
}

/**
 * Triggers the inline suggestion and commits it, until the document changes or `timeoutMs` passes.
 * Returns the inserted text ('' when nothing was ever inserted). `full`: when given, a commit that inserted only a
 * strict prefix of it (the provider shows the first line while the rest is generated) is undone and retried.
 */
export async function triggerAndCommit(editor: vscode.TextEditor, timeoutMs: number, full?: string): Promise<string> {
  const document = editor.document;
  const before = document.getText();
  const offset = document.offsetAt(editor.selection.active);
  const deadline = Date.now() + timeoutMs;
  let inserted = '';
  while (Date.now() < deadline) {
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    await sleep(250);
    await vscode.commands.executeCommand('editor.action.inlineSuggest.commit');
    const after = document.getText();
    if (after !== before) {
      assert(after.startsWith(before.slice(0, offset)) && after.endsWith(before.slice(offset)), `the commit changed text outside the cursor: ${show(after)}`);
      inserted = after.slice(offset, after.length - (before.length - offset));
      if (full === undefined || inserted === full || !full.startsWith(inserted) || Date.now() + 1000 > deadline) return inserted;
      await vscode.commands.executeCommand('undo');
      assert(document.getText() === before, 'undo did not restore the document');
      const cursor = document.positionAt(offset);
      editor.selection = new vscode.Selection(cursor, cursor);
    }
  }
  return inserted;
}

export async function resetTo(editor: vscode.TextEditor, text: string): Promise<void> {
  const document = editor.document;
  await editor.edit((edit) => edit.replace(new vscode.Range(document.positionAt(0), document.positionAt(document.getText().length)), text));
  const end = document.positionAt(text.length);
  editor.selection = new vscode.Selection(end, end);
  await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
}

/**
 * A notification as the page shows it: an entry of the notification center (or a toast, which the workbench never
 * shows under run.mjs's smoke-test driver: open the center with `notifications.showList` to see notifications).
 */
export interface SeenNotice {
  message: string;
  buttons: string[];
}

/** The Explanation panel's webview document as the page shows it. */
export interface SeenPanel {
  /** The output element's rendered text (`#explanation`), and its raw text content. */
  text: string;
  textContent: string;
  /** The status line (`#status`), null when the panel has none. */
  status: string | null;
  /** Tag names of the elements inside the output. */
  elementsInOutput: string[];
  /** img elements in the whole document; its script and style elements. */
  images: number;
  scripts: { nonce: string; text: string }[];
  styles: string[];
  /** The Content-Security-Policy meta tag's content. */
  csp: string | null;
  bodyBackground: string;
}

/** What the runner's page reader saw in the workbench page. */
export interface Seen {
  ghostText: string;
  classes: string[];
  file: string;
  /** Texts of the notification toasts, of the status bar items, and of the Explanation webview's content. */
  notifications?: string[];
  statusbar?: string[];
  webviewText?: string;
  /** The notifications with their buttons; the quick input; the page's whole visible text; the Explanation panel. */
  notices?: SeenNotice[];
  quickInput?: { visible: boolean; title: string; prompt: string; inputType: string; valueLength: number };
  pageText?: string;
  webview?: SeenPanel;
  /** The extension's log file as written so far. */
  extensionLog?: string;
  /** Why an action asked of the page failed (then the page was read as it was). */
  actionError?: string;
}

/** What the page reader does in the page before reading it (scripts/integration/run.mjs `act`). */
export type PageAction = { click: string } | { fill: string } | { press: string };

/** Which runner started this host and whether it answers page requests (its `.phi-it/runner.json`). */
export function runnerInfo(): { runner: string; pageReader: boolean } {
  try {
    const info = JSON.parse(fs.readFileSync(path.join(channelDir(), 'runner.json'), 'utf8')) as { runner?: unknown; pageReader?: unknown };
    return { runner: typeof info.runner === 'string' ? info.runner : 'unknown', pageReader: info.pageReader === true };
  } catch {
    return { runner: 'unknown', pageReader: false };
  }
}

/** Whether the runner can read the page; logs the skip line for `what` when it cannot. */
export function pageAccess(what: string): boolean {
  if (runnerInfo().pageReader) return true;
  log(`# skipped: no page access under this runner (${runnerInfo().runner}): ${what}`);
  return false;
}

/** Skips the running test (mocha counts it pending) when the runner cannot read the page, with the log line. */
export function skipWithoutPage(test: { skip(): void }, what: string): void {
  if (!pageAccess(what)) test.skip();
}

/** Asks the runner's page reader to do `actions` and take a screenshot; returns what it saw in the page. Needs a page reader. */
async function screenshot(name: string, actions: readonly PageAction[] = []): Promise<Seen> {
  const dir = channelDir();
  const done = path.join(dir, `done-${name}.json`);
  fs.rmSync(done, { force: true });
  fs.writeFileSync(path.join(dir, `request-${name}.json`), JSON.stringify({ name, actions }));
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (fs.existsSync(done)) return JSON.parse(fs.readFileSync(done, 'utf8')) as Seen;
    await sleep(100);
  }
  throw new Error(`the runner (${runnerInfo().runner}) says it reads the page but did not answer the request for ${name} within 20 s`);
}

/** Has the page reader do `actions` in the page (click a notification's button, fill the quick input, press a key); returns what it saw after. */
export async function actInPage(name: string, ...actions: PageAction[]): Promise<Seen> {
  const seen = await screenshot(name, actions);
  assert(!seen.actionError, `the page reader could not ${JSON.stringify(actions)}: ${seen.actionError}`);
  return seen;
}

/** Reads the page (with a screenshot `name`) until `ok` holds for what the runner saw, or `timeoutMs` passes; returns the last sighting. */
export async function seeUntil(name: string, ok: (seen: Seen) => boolean, timeoutMs: number): Promise<Seen> {
  const deadline = Date.now() + timeoutMs;
  let seen: Seen;
  do {
    seen = await screenshot(name);
    if (ok(seen)) return seen;
    await sleep(300);
  } while (Date.now() < deadline);
  return seen;
}

/** Whether process `pid` exists and is not a zombie (Linux /proc). */
export function processAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The pids of this extension host's children running dist/worker.js. */
export function workerPids(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.includes('dist/worker.js')) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Letters and digits only: what survives Markdown rendering of the random model's text. */
export function alnum(text: string): string {
  return text.replace(/[^A-Za-z0-9]/g, '');
}

/** Opens `name` with the first of `texts` the engine completes with something; returns it, the editor and the completion. */
export async function openCompletable(name: string, texts: string[], engine: Engine): Promise<{ editor: vscode.TextEditor; text: string; expected: string }> {
  for (const text of texts) {
    const expected = await engine.expected(text, text.length, path.join(workspaceDir(), name), currentSettings());
    if (expected !== '') return { editor: await openPython(name, text), text, expected };
  }
  throw new Error(`the engine completes none of ${show(texts.join(' | '))}`);
}

/**
 * The deactivation scenario's records in `.phi-it/`: `deactivate.json` (written before the suite ends the
 * extension host: the worker's and the host's pids) and `deactivate-exit.json` (written by the old host as it
 * exits, after VS Code ran the extension's deactivate: whether the worker was still alive then). The runner and
 * the suite's second run (in the new host) both check them.
 */
export const DEACTIVATE_RECORD = 'deactivate.json';
export const DEACTIVATE_EXIT_RECORD = 'deactivate-exit.json';
/** Mocha's counts from the first run (before the window reload), for the second run's summary. */
export const FIRST_RUN_RESULTS = 'first-run.json';
/** The totals of the finished suite ({ passed, failed, pending }), which the runner checks. */
export const FINAL_RESULTS = 'results.json';

export interface DeactivateRecord {
  workerPid: number;
  hostPid: number;
  requestedAt: number;
}

export interface DeactivateExitRecord {
  hostPid: number;
  workerPid: number;
  exitedAt: number;
  workerAliveAtHostExit: boolean;
}

export function describeNotices(seen: Seen): string {
  return show((seen.notices ?? []).map((n) => `${n.message} [${n.buttons.join(', ')}]`).join(' | '));
}

/**
 * Reads the page until a notification whose message `matches` shows; returns it and the sighting. The notification
 * center is opened first: under the runner's smoke-test driver (which reports the suite's exit) the workbench
 * shows no toasts at all, and the center lists each notification with its buttons as the toast would.
 */
export async function waitForNotice(name: string, matches: (message: string) => boolean, timeoutMs: number): Promise<{ notice: SeenNotice; seen: Seen }> {
  await vscode.commands.executeCommand('notifications.showList');
  const seen = await seeUntil(name, (s) => (s.notices ?? []).some((n) => matches(n.message)), timeoutMs);
  log(`# screenshot ${seen.file}; notifications: ${describeNotices(seen)}`);
  const notice = (seen.notices ?? []).find((n) => matches(n.message));
  assert(notice, `no such notification within ${timeoutMs / 1000} s; notifications: ${describeNotices(seen)}`);
  return { notice, seen };
}

export function assertButtons(notice: SeenNotice, expected: string[]): void {
  for (const button of expected) assert(notice.buttons.includes(button), `the notification ${show(notice.message)} has buttons ${show(notice.buttons.join(', '))}, expected ${show(expected.join(', '))}`);
}

export async function clearNotifications(): Promise<void> {
  await vscode.commands.executeCommand('notifications.clearAll');
  await vscode.commands.executeCommand('notifications.hideList');
}
