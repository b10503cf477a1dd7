/// <reference types="mocha" />
/**
 * Getting a model, as a user without one sees it in the page (so each test is skipped, mocha: pending, under a
 * runner that cannot read the page): the first-run notification and its actions, Use a Local Folder through the
 * editor's own folder picker, a download that fails with its actions, and Set Hub Token (masked as it is typed,
 * and sent with the next download). A server on the loopback interface stands in for the model hub: nothing
 * leaves the machine.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as vscode from 'vscode';
import { actInPage, assert, assertButtons, clearNotifications, log, openPython, seeUntil, show, skipWithoutPage, sleep, triggerAndCommit, waitForNotice } from './support';

/** A stand-in for the model hub on 127.0.0.1: answers every request with `status`, recording each. */
class LoopbackHub {
  status = 404;
  readonly requests: { url: string; authorization: string | undefined }[] = [];
  private readonly server = http.createServer((request, response) => {
    this.requests.push({ url: request.url ?? '', authorization: request.headers.authorization });
    response.writeHead(this.status, { 'content-type': 'text/plain' });
    response.end(`status ${this.status}`);
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

suite('getting a model (page)', () => {
  const hub = new LoopbackHub();
  let endpoint = '';

  suiteSetup(async () => {
    endpoint = await hub.start();
  });

  suiteTeardown(async () => {
    await hub.close();
  });

  test('first run without a model: the notification offers Download, Use a Local Folder and Settings; Use a Local Folder with the model\'s folder loads it (page)', async function () {
    skipWithoutPage(this, 'the first-run notification and the folder picker');
    const config = vscode.workspace.getConfiguration('phiComplete');
    const original = config.inspect<string>('modelPath')?.globalValue;
    assert(original, 'phiComplete.modelPath is not set in the user settings');
    await clearNotifications();
    // No modelPath: the catalogue model, which is not in this fresh profile's storage.
    await config.update('modelPath', undefined, vscode.ConfigurationTarget.Global);
    try {
      const editor = await openPython('first-run.py', 'def first_run(values):\n    ');
      void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger'); // asks for the model
      const { notice } = await waitForNotice('first-run', (m) => m.includes('is needed for local completions'), 20_000);
      assertButtons(notice, ['Download', 'Use a Local Folder', 'Settings']);

      await actInPage('first-run-use-folder', { click: 'Use a Local Folder' });
      const picker = await seeUntil('first-run-picker', (s) => !!s.quickInput?.visible, 10_000);
      assert(picker.quickInput?.visible, 'Use a Local Folder opened no folder picker');
      // The browser's folder picker is a quick input: typing a folder with a trailing slash opens it, Enter picks it.
      await actInPage('first-run-picker', { fill: `${original}/` });
      await sleep(1000);
      for (let attempt = 0; attempt < 3 && config.inspect<string>('modelPath')?.globalValue !== original; attempt++) {
        if ((await seeUntil('first-run-picker', () => true, 0)).quickInput?.visible) await actInPage('first-run-picker', { press: 'Enter' });
        await sleep(1500);
      }
      const chosen = config.inspect<string>('modelPath')?.globalValue;
      assert(chosen === original, `after picking ${show(original)} phiComplete.modelPath is ${show(chosen ?? '(unset)')}`);
      const inserted = await triggerAndCommit(editor, 60_000);
      assert(inserted.length > 0, 'no completion after the folder was picked');
      const seen = await seeUntil('first-run-loaded', (s) => (s.statusbar ?? []).some((t) => /\bCPU\b/.test(t)), 15_000);
      assert((seen.statusbar ?? []).some((t) => /\bCPU\b/.test(t)), `no status bar item shows CPU: ${show((seen.statusbar ?? []).join(' | '))}`);
    } finally {
      await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
      await config.update('modelPath', original, vscode.ConfigurationTarget.Global);
      await clearNotifications();
    }
  });

  test('a download the hub refuses (404) shows the error with Show Manual Steps and Use a Local Folder (page)', async function () {
    skipWithoutPage(this, 'the download error notification');
    const config = vscode.workspace.getConfiguration('phiComplete');
    await clearNotifications();
    await config.update('hubEndpoint', endpoint, vscode.ConfigurationTarget.Global);
    hub.status = 404;
    const before = hub.requests.length;
    try {
      void vscode.commands.executeCommand('phiComplete.downloadModel'); // settles once the error is dismissed
      const { notice } = await waitForNotice('download-404', (m) => m.startsWith('phi-complete:') && m.includes('404'), 30_000);
      assertButtons(notice, ['Show Manual Steps', 'Use a Local Folder']);
      assert(hub.requests.length > before, 'the download never reached the loopback hub');
      log(`# the hub was asked for ${show(hub.requests.slice(before).map((r) => r.url).join(', '))}`);
    } finally {
      await config.update('hubEndpoint', undefined, vscode.ConfigurationTarget.Global);
      await clearNotifications();
    }
  });

  test('Set Hub Token: the token is masked as it is typed, never shown, and sent with the next download; a refused token offers Set Hub Token (page)', async function () {
    skipWithoutPage(this, 'the token input box');
    const config = vscode.workspace.getConfiguration('phiComplete');
    const token = `hf_phiTest${Date.now().toString(36)}`;
    await clearNotifications();
    void vscode.commands.executeCommand('phiComplete.setHubToken');
    const box = await seeUntil('hub-token', (s) => !!s.quickInput?.visible, 10_000);
    assert(box.quickInput?.visible, 'Set Hub Token opened no input box');
    assert(box.quickInput.prompt.includes('secret storage'), `the input box says ${show(box.quickInput.prompt)}`);
    const typed = await actInPage('hub-token-typed', { fill: token });
    assert(typed.quickInput?.inputType === 'password', `the token is typed into an input of type ${show(typed.quickInput?.inputType ?? '')}, not a password field`);
    assert(typed.quickInput.valueLength === token.length, `the input holds ${typed.quickInput.valueLength} characters, typed ${token.length}`);
    assert(!(typed.pageText ?? '').includes(token), 'the token is shown in the page');
    const accepted = await actInPage('hub-token-accepted', { press: 'Enter' });
    assert(!accepted.quickInput?.visible, 'the input box is still open after Enter');

    await config.update('hubEndpoint', endpoint, vscode.ConfigurationTarget.Global);
    hub.status = 401;
    const before = hub.requests.length;
    try {
      void vscode.commands.executeCommand('phiComplete.downloadModel');
      const { notice, seen } = await waitForNotice('download-401', (m) => m.startsWith('phi-complete:') && m.includes('401'), 30_000);
      assertButtons(notice, ['Set Hub Token', 'Use a Local Folder']);
      const sent = hub.requests.slice(before);
      assert(sent.length > 0, 'the download never reached the loopback hub');
      assert(sent.every((r) => r.authorization === `Bearer ${token}`), `the hub got authorization ${show(sent.map((r) => r.authorization ?? '(none)').join(', '))}, expected the stored token`);
      assert(!(seen.pageText ?? '').includes(token) && !(seen.extensionLog ?? '').includes(token), 'the token appears in the page or in the extension log');
    } finally {
      await config.update('hubEndpoint', undefined, vscode.ConfigurationTarget.Global);
      await clearNotifications();
    }
  });
});
