/// <reference types="mocha" />
/**
 * The server backend in a real VS Code against a real llama-server (built from llama.cpp's sources and started on
 * 127.0.0.1 by the runner: scripts/integration/llamaServer.mjs, which writes `.phi-it/server.json`). The server
 * serves a different random model than the local worker's, so a suggestion that equals what the server generates
 * came from the server. Checked: the committed suggestion (and, with a page reader, the ghost text and the status
 * bar) is exactly the server's completion; Explain Selection goes to the server; a keystroke aborts the request in
 * flight and llama-server stops decoding it (its /slots); a server that wants a token answers 401, and the user is
 * told so with Open Settings and Use the local model.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { completionParams, shapeSuggestion } from '../../../src/completion/pipeline';
import { completionPromptAt } from '../../../src/completion/requestPrompts';
import { buildExplainPrompt } from '../../../src/explain/explainPrompt';
import type { Settings } from '../../../src/settings/settings';
import { VERIFY_PARAMS, VERIFY_PROMPT } from '../../../src/shared/verifyPrompt';
import { TextDocumentModel } from '../../support/textDocument';
import {
  actInPage, alnum, assert, assertButtons, channelDir, clearNotifications, currentSettings, Engine, log, openCompletable, openPython, pageAccess, seeUntil, show,
  skipWithoutPage, sleep, triggerAndCommit, waitForNotice, workspaceDir,
} from './support';

interface ServerInfo {
  url: string;
  keyedUrl: string;
  /** The open server's log file. */
  log: string;
}

interface Slot {
  id: number;
  is_processing: boolean;
  id_task?: number;
  prompt?: string;
  generated?: string;
  next_token?: { n_decoded: number }[];
}

const COMPLETION_PROMPTS = ['def server_fibonacci(n):\n    ', 'def server_total(items):\n    ', 'class ServerPoint:\n    def __init__(self, x, y):\n        '];
const CANCEL_PROMPTS = ['import os\n\ndef walk_server_tree(root):\n    ', 'def parse_server_args(argv):\n    ', 'def server_loop(queue):\n    '];
const EXPLAIN_CODE = 'def server_fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n';
/** Tokens the cancelled request asks for: seconds of decoding on the test server, so it is surely still running at the keystroke. */
const LONG_COMPLETION = 1024;

function serverInfo(): ServerInfo | undefined {
  const file = path.join(channelDir(), 'server.json');
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as ServerInfo) : undefined;
}

/** What llama-server generates for `prompt`, asked directly (greedy, as the extension asks). */
async function serverGenerates(url: string, prompt: string, nPredict: number, stop: readonly string[], settings: Settings): Promise<{ text: string; stopType: string }> {
  const response = await fetch(`${url}/completion`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, n_predict: nPredict, temperature: 0, top_k: 0, top_p: settings.topP, min_p: 0, repeat_penalty: 1, seed: 0, stop, cache_prompt: true }),
  });
  assert(response.ok, `llama-server answered ${response.status}`);
  const answer = (await response.json()) as { content: string; stop_type: string };
  return { text: answer.content, stopType: answer.stop_type };
}

/** The suggestion the provider should show for `text` with the cursor at its end, from the server's completion of the same prompt. */
async function expectedFromServer(url: string, text: string, fileName: string, settings: Settings): Promise<string> {
  const document = new TextDocumentModel(text, 'python', fileName);
  const { prompt, text: around } = completionPromptAt(document, document.positionAt(text.length), settings);
  const params = completionParams(settings);
  const { text: raw } = await serverGenerates(url, prompt, params.maxNewTokens, params.stop, settings);
  return shapeSuggestion(raw, { prefix: around.before, suffix: around.after, eol: '\n', languageId: 'python' });
}

async function slots(url: string): Promise<Slot[]> {
  return (await (await fetch(`${url}/slots`)).json()) as Slot[];
}

/**
 * Where the committed text differs from the server's separate run of the same prompt (`expected`): the server's own
 * run for the extension's request (its slot) is the exact reference, since a prompt read in pieces (warm-up, then
 * the request) may round differently from one read at once and flip a near tie.
 */
async function assertCommittedIsTheServers(url: string, inserted: string, expected: string, text: string, fileName: string, settings: Settings): Promise<void> {
  if (inserted === expected) return;
  const document = new TextDocumentModel(text, 'python', fileName);
  const { prompt, text: around } = completionPromptAt(document, document.positionAt(text.length), settings);
  const slot = (await slots(url)).find((s) => s.prompt === prompt && (s.generated ?? '') !== '');
  const generated = slot && shapeSuggestion(slot.generated ?? '', { prefix: around.before, suffix: around.after, eol: '\n', languageId: 'python' });
  log(`# the committed text differs from llama-server's separate run; its slot for the request generated ${show(generated ?? '(no slot)')}`);
  assert(inserted === generated, `committed ${show(inserted)}, llama-server generates ${show(expected)} (and for the extension's request ${show(generated ?? '(no slot found)')})`);
}

const decoded = (slot: Slot): number => slot.next_token?.[0]?.n_decoded ?? 0;

suite('the server settings are the user\'s: a workspace cannot set them', () => {
  test('a workspace\'s .vscode/settings.json naming a server: nothing is sent there, suggestions stay the local model\'s', async () => {
    const requests: string[] = [];
    const recorder = http.createServer((request, response) => {
      requests.push(request.url ?? '');
      response.writeHead(500);
      response.end();
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    const settingsFile = path.join(workspaceDir(), '.vscode', 'settings.json');
    const engine = await Engine.load(currentSettings().modelPath, currentSettings().threads);
    try {
      fs.mkdirSync(path.dirname(settingsFile), { recursive: true });
      fs.writeFileSync(settingsFile, JSON.stringify({ 'phiComplete.backend': 'server', 'phiComplete.server.url': `http://127.0.0.1:${(recorder.address() as AddressInfo).port}` }));
      await sleep(1500); // the editor reads the file and tells the extension
      const { editor, expected } = await openCompletable('workspace-server.py', ['def workspace_only(n):\n    ', 'def workspace_check(items):\n    ', 'class WorkspaceThing:\n    '], engine);
      const inserted = await triggerAndCommit(editor, 60_000, expected);
      assert(inserted === expected, `committed ${show(inserted)}, the local engine produces ${show(expected)}`);
      assert(requests.length === 0, `the workspace's server was sent ${requests.length} request(s): ${requests.join(', ')}`);
    } finally {
      fs.rmSync(path.dirname(settingsFile), { recursive: true, force: true });
      await engine.dispose();
      await new Promise((resolve) => recorder.close(resolve));
    }
  });
});

suite('the server backend: a real llama-server', () => {
  let info: ServerInfo | undefined;
  const config = (): vscode.WorkspaceConfiguration => vscode.workspace.getConfiguration('phiComplete');

  suiteSetup(async function () {
    info = serverInfo();
    if (!info) {
      log('# skipped: the runner started no llama-server (.phi-it/server.json is missing)');
      this.skip();
    }
    await config().update('server.url', info.url, vscode.ConfigurationTarget.Global);
    await config().update('backend', 'server', vscode.ConfigurationTarget.Global);
    await sleep(300);
  });

  suiteTeardown(async () => {
    for (const key of ['backend', 'server.url', 'completion.maxTokens']) await config().update(key, undefined, vscode.ConfigurationTarget.Global);
  });

  teardown(async () => {
    await vscode.commands.executeCommand('workbench.action.closeEditorsInOtherGroups');
  });

  let shown: { editor: vscode.TextEditor; text: string; expected: string } | undefined;

  test('backend server: the suggestion committed is exactly what llama-server generates for the prompt', async () => {
    const url = info!.url;
    const settings = currentSettings();
    assert(settings.backend === 'server' && settings.serverUrl === url, `the settings read ${settings.backend} ${settings.serverUrl}`);
    for (const text of COMPLETION_PROMPTS) {
      const expected = await expectedFromServer(url, text, path.join(workspaceDir(), 'server.py'), settings);
      if (expected.trim() === '') continue;
      log(`# llama-server completes ${show(text)} with ${show(expected)}`);
      const editor = await openPython('server.py', text);
      const inserted = await triggerAndCommit(editor, 60_000, expected);
      await assertCommittedIsTheServers(url, inserted, expected, text, editor.document.fileName, settings);
      shown = { editor, text, expected };
      return;
    }
    throw new Error(`llama-server completes none of ${show(COMPLETION_PROMPTS.join(' | '))} with visible text`);
  });

  test('backend server: the ghost text is the server\'s, and the status bar names the server with its timings (page)', async function () {
    skipWithoutPage(this, 'the ghost text and the status bar in the page');
    assert(shown, 'needs the previous test');
    const { editor, text, expected } = shown;
    const host = new URL(info!.url).host;
    const edit = new vscode.WorkspaceEdit();
    edit.replace(editor.document.uri, new vscode.Range(editor.document.positionAt(0), editor.document.positionAt(editor.document.getText().length)), text);
    await vscode.workspace.applyEdit(edit);
    const end = editor.document.positionAt(text.length);
    editor.selection = new vscode.Selection(end, end);
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    const squash = (s: string): string => s.replace(/\s+/g, '');
    const seen = await seeUntil('server-ghost-text', (s) => squash(s.ghostText).length > 0 && (s.statusbar ?? []).some((t) => t.includes(host)), 15_000);
    log(`# screenshot ${seen.file}; ghost text ${show(seen.ghostText)}; status bar ${show((seen.statusbar ?? []).filter((t) => t.includes(host)).join(' | '))}`);
    assert(squash(seen.ghostText).length > 0 && squash(expected).startsWith(squash(seen.ghostText).slice(0, 20)), `the page shows ${show(seen.ghostText)}, llama-server generates ${show(expected)}`);
    const item = (seen.statusbar ?? []).find((t) => t.includes(host));
    assert(item && /· \d+ ms/.test(item), `no status bar item names ${host} with a time: ${show((seen.statusbar ?? []).join(' | '))}`);
    await vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
  });

  test('backend server, API openai: the suggestion committed is exactly what llama-server\'s /v1/completions generates', async () => {
    const url = info!.url;
    await config().update('server.api', 'openai', vscode.ConfigurationTarget.Global);
    await sleep(200);
    try {
      const settings = currentSettings();
      assert(settings.serverApi === 'openai', `the settings read ${settings.serverApi}`);
      const params = completionParams(settings);
      for (const text of COMPLETION_PROMPTS.map((prompt) => prompt.replace(/server_|Server/g, 'openai_'))) {
        const document = new TextDocumentModel(text, 'python', 'openai.py');
        const { prompt, text: around } = completionPromptAt(document, document.positionAt(text.length), settings);
        // The OpenAI request the extension sends, without streaming: greedy, so its text is the reference.
        const response = await fetch(`${url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt, max_tokens: params.maxNewTokens, temperature: params.temperature, top_p: params.topP, seed: params.seed, stop: params.stop }),
        });
        assert(response.ok, `llama-server's /v1/completions answered ${response.status}`);
        const raw = ((await response.json()) as { choices: { text: string }[] }).choices[0].text;
        const expected = shapeSuggestion(raw, { prefix: around.before, suffix: around.after, eol: '\n', languageId: 'python' });
        if (expected.trim() === '') continue;
        log(`# llama-server's /v1/completions completes ${show(text)} with ${show(expected)}`);
        const editor = await openPython('server-openai.py', text);
        const inserted = await triggerAndCommit(editor, 60_000, expected);
        await assertCommittedIsTheServers(url, inserted, expected, text, editor.document.fileName, settings);
        return;
      }
      throw new Error('llama-server\'s /v1/completions completes none of the prompts with visible text');
    } finally {
      await config().update('server.api', undefined, vscode.ConfigurationTarget.Global);
    }
  });

  test('backend server: Explain Selection is generated by llama-server (its slot holds the selection and the explanation)', async () => {
    const url = info!.url;
    await config().update('explain.maxTokens', 48, vscode.ConfigurationTarget.Global);
    try {
      const editor = await openPython('server-explain.py', EXPLAIN_CODE);
      editor.selection = new vscode.Selection(new vscode.Position(0, 0), new vscode.Position(5, 0));
      await vscode.commands.executeCommand('phiComplete.explainSelection');
      const tabs = vscode.window.tabGroups.all.flatMap((g) => g.tabs).map((t) => t.label);
      assert(tabs.includes('Explanation'), `no Explanation tab; tabs: ${tabs.join(', ')}`);
      const { prompt } = buildExplainPrompt(EXPLAIN_CODE, 'python');
      // The slot that served it: its prompt is the explanation prompt, its text what llama-server generated for it.
      const slot = (await slots(url)).find((s) => s.prompt === prompt);
      assert(slot, 'no llama-server slot holds the explanation prompt: the explanation did not go to the server');
      const generated = slot.generated ?? '';
      log(`# llama-server generated the explanation ${show(generated)}`);
      assert(alnum(generated).length >= 10, `llama-server generated ${show(generated)}: too few letters to recognise in the panel`);
      if (pageAccess('the explanation text in the panel')) {
        const want = alnum(generated).slice(0, 40);
        const seen = await seeUntil('server-explain', (s) => !(s.webviewText ?? '').includes('▍') && alnum(s.webviewText ?? '').startsWith(want), 15_000);
        log(`# screenshot ${seen.file}; panel text: ${show(seen.webviewText ?? '')}`);
        const shown = alnum(seen.webviewText ?? '');
        assert(shown.startsWith(want) && alnum(generated).startsWith(shown), `the panel shows ${show(seen.webviewText ?? '')}, llama-server generated ${show(generated)}`);
      }
    } finally {
      await config().update('explain.maxTokens', undefined, vscode.ConfigurationTarget.Global);
    }
  });

  test('backend server: a keystroke aborts the request in flight and llama-server stops decoding it; typing is not held up', async () => {
    const url = info!.url;
    await config().update('completion.maxTokens', LONG_COMPLETION, vscode.ConfigurationTarget.Global);
    await sleep(200);
    const settings = currentSettings();
    // A prompt whose completion runs to the token limit on one line: the pipeline stops a request on a keystroke
    // until its first line is shown (after that it keeps it for the cache), so the request must not show one.
    let text: string | undefined;
    for (const candidate of CANCEL_PROMPTS) {
      const document = new TextDocumentModel(candidate, 'python', 'cancel.py');
      const { prompt } = completionPromptAt(document, document.positionAt(candidate.length), settings);
      const answer = await serverGenerates(url, prompt, LONG_COMPLETION, completionParams(settings).stop, settings);
      if (answer.stopType === 'limit' && !answer.text.includes('\n')) {
        text = candidate;
        break;
      }
    }
    assert(text, `llama-server's completions of ${show(CANCEL_PROMPTS.join(' | '))} all end early or hold a newline: pick other prompts`);
    const marker = text.split('\n').find((line) => line.includes('def '))!;
    const editor = await openPython('server-cancel.py', text);
    void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    // The request, decoding on the server.
    let running: Slot | undefined;
    const deadline = Date.now() + 20_000;
    while (!running && Date.now() < deadline) {
      running = (await slots(url)).find((s) => s.is_processing && decoded(s) > 0 && (s.prompt ?? '').includes(marker));
      if (!running) await sleep(20);
    }
    assert(running, 'no llama-server slot started decoding the completion request within 20 s');
    const task = running.id_task;
    const decodedBefore = decoded(running);
    const typedAt = Date.now();
    await vscode.commands.executeCommand('type', { text: 'x' });
    const typingMs = Date.now() - typedAt;
    // Stopped: the slot no longer runs that task (it is idle, or runs the next request).
    let last: Slot | undefined;
    let stoppedMs: number | undefined;
    while (Date.now() - typedAt < 5_000) {
      last = (await slots(url)).find((s) => s.id === running.id);
      if (!last || last.id_task !== task || !last.is_processing) {
        stoppedMs = Date.now() - typedAt;
        break;
      }
      await sleep(20);
    }
    log(`# the request was decoding (task ${task}, ${decodedBefore} tokens so far) when "x" was typed (the type command took ${typingMs} ms); its slot stopped running it ${stoppedMs} ms later`);
    assert(stoppedMs !== undefined, `llama-server still decodes task ${task} 5 s after the keystroke`);
    // The server's own word: it cancelled the task (the connection closed) with far fewer tokens than asked for.
    const released = new RegExp(`task ${task} \\| stop processing: n_tokens = (\\d+)`);
    let serverLog = '';
    for (const until = Date.now() + 3_000; Date.now() < until && !released.test(serverLog); await sleep(100)) serverLog = fs.readFileSync(info!.log, 'utf8');
    const tokens = Number(released.exec(serverLog)?.[1]);
    log(`# llama-server's log: ${serverLog.includes(`cancel task, id_task = ${task}`) ? `cancel task ${task}` : 'no cancel line'}; released with ${tokens} tokens in its cache (prompt and generated)`);
    assert(serverLog.includes(`cancel task, id_task = ${task}`), `llama-server's log (${info!.log}) does not say it cancelled task ${task}`);
    assert(tokens < LONG_COMPLETION / 2, `llama-server released task ${task} with ${tokens} tokens: it decoded on after the keystroke`);
    // Bounds for what a held-up host would show (the request decodes 1,024 tokens: many seconds), not timings: the
    // tokens it was released with above say when it stopped.
    assert(typingMs < 5_000, `typing took ${typingMs} ms while the server was busy`);
    assert(editor.document.getText() === `${text}x`, `the document is ${show(editor.document.getText())}`);
    await config().update('completion.maxTokens', undefined, vscode.ConfigurationTarget.Global);
  });

  test('backend server: Verify Model asks llama-server, and reports its answer to the verify prompt and its host', async () => {
    const url = info!.url;
    const { text } = await serverGenerates(url, VERIFY_PROMPT, VERIFY_PARAMS.maxNewTokens, VERIFY_PARAMS.stop, currentSettings());
    const report = await vscode.commands.executeCommand<string | undefined>('phiComplete.verifyModel');
    log(`# Verify Model: ${show(report ?? '(none)')}`);
    const expected = `the server at ${new URL(url).host} ${text.trim() !== '' && !text.includes('\uFFFD') ? 'answers' : 'answered nothing usable'}: "def add(a, b): return${text}"`;
    assert(report?.startsWith(expected), `Verify Model reported ${show(report ?? '(none)')}, llama-server completes the prompt with ${show(text)}`);
  });

  test('backend server: a server that wants a token (llama-server --api-key) answers 401 and nothing is suggested', async () => {
    await config().update('server.url', info!.keyedUrl, vscode.ConfigurationTarget.Global);
    try {
      const editor = await openPython('server-401.py', 'def needs_a_token(x):\n    ');
      const inserted = await triggerAndCommit(editor, 3_000);
      assert(inserted === '', `a suggestion was committed from a server that refused the request: ${show(inserted)}`);
    } finally {
      await config().update('server.url', info!.url, vscode.ConfigurationTarget.Global);
    }
  });

  test('backend server: the 401 is told once, with Open Settings and Use the local model; Use the local model switches back (page)', async function () {
    skipWithoutPage(this, 'the notification shown in the page');
    await clearNotifications();
    await config().update('server.url', info!.keyedUrl, vscode.ConfigurationTarget.Global);
    try {
      await openPython('server-401b.py', 'def still_needs_a_token(x):\n    ');
      await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
      const { notice } = await waitForNotice('server-401', (m) => m.startsWith('phi-complete:') && m.includes('(401)'), 20_000);
      assert(/Set Server Token/.test(notice.message), `the message ${show(notice.message)} does not say how to set the token`);
      assertButtons(notice, ['Open Settings', 'Use the local model']);
      await actInPage('server-401-use-local', { click: 'Use the local model' });
      const deadline = Date.now() + 5_000;
      while (currentSettings().backend !== 'local' && Date.now() < deadline) await sleep(100);
      assert(currentSettings().backend === 'local', 'Use the local model did not set phiComplete.backend to local');
    } finally {
      await clearNotifications();
      await config().update('server.url', info!.url, vscode.ConfigurationTarget.Global);
    }
  });
});
