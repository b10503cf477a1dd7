/// <reference types="mocha" />
/**
 * The Explanation panel shows what the model writes as text, never as HTML: a scripted tiny model
 * (test/support/scriptedModel.ts) answers Explain Selection with a script, an image with an onerror handler and a
 * style element, and the test reads the panel's webview document in the page (skipped, mocha: pending, under a
 * runner that cannot read the page).
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { buildScriptedModel, HOSTILE_TEXT } from '../../support/scriptedModel';
import { assert, channelDir, currentSettings, Engine, log, openPython, seeUntil, show, skipWithoutPage } from './support';

const SELECTION = 'total = 0\nfor value in values:\n    total += value\n';

suite('the Explanation panel and what the model writes (page)', () => {
  teardown(async () => {
    await vscode.commands.executeCommand('workbench.action.closeEditorsInOtherGroups');
  });

  test('model output with <script>, <img onerror> and <style> is shown as text: no element from it, a nonce CSP without \'unsafe-inline\' (page)', async function () {
    skipWithoutPage(this, 'the Explanation webview\'s document');
    const config = vscode.workspace.getConfiguration('phiComplete');
    const original = config.inspect<string>('modelPath')?.globalValue;
    assert(original, 'phiComplete.modelPath is not set in the user settings');
    const scripted = path.join(channelDir(), 'scripted-model');
    buildScriptedModel(scripted, 'Answer:', HOSTILE_TEXT);
    // The premise: the real engine on this model explains any selection with exactly the hostile text.
    const engine = await Engine.load(scripted, 0);
    try {
      const explanation = await engine.explanation(SELECTION, currentSettings());
      assert(explanation === HOSTILE_TEXT, `the scripted model explains with ${show(explanation)}, expected ${show(HOSTILE_TEXT)}`);
    } finally {
      await engine.dispose();
    }

    await config.update('modelPath', scripted, vscode.ConfigurationTarget.Global);
    try {
      const editor = await openPython('hostile.py', `def add_all(values):\n${SELECTION}`);
      editor.selection = new vscode.Selection(new vscode.Position(1, 0), new vscode.Position(4, 0));
      await vscode.commands.executeCommand('phiComplete.explainSelection'); // resolves once generated and posted
      const seen = await seeUntil('explain-hostile', (s) => !!s.webview && s.webview.textContent.includes('<script>'), 15_000);
      const panel = seen.webview;
      log(`# screenshot ${seen.file}; panel: ${show(JSON.stringify(panel ?? null))}`);
      assert(panel, 'no Explanation panel (an element with id "explanation") in any frame of the page');
      for (const literal of ['<script>alert(1)</SCRIPT >', '<img src=x onerror="print()">', '<Style/>*{background:#f00}</style>']) {
        assert(panel.textContent.includes(literal), `the panel's text ${show(panel.textContent)} does not show ${show(literal)} as text`);
      }
      const fromModel = panel.elementsInOutput.filter((tag) => tag === 'script' || tag === 'img' || tag === 'style');
      assert(fromModel.length === 0, `the model's text became elements in the panel: ${fromModel.join(', ')}`);
      assert(panel.images === 0, `the panel's document has ${panel.images} img element(s)`);
      assert(!panel.scripts.some((s) => s.text.includes('alert(1)')) && !panel.styles.some((s) => s.includes('#f00')), 'a script or style element of the document holds the model\'s text');
      assert(panel.bodyBackground !== 'rgb(255, 0, 0)', 'the model\'s style applied: the panel\'s background is red');
      assert(panel.csp, 'the panel has no Content-Security-Policy');
      assert(/default-src 'none'/.test(panel.csp), `the CSP ${show(panel.csp)} does not default to 'none'`);
      assert(!panel.csp.includes('unsafe-inline'), `the CSP ${show(panel.csp)} allows 'unsafe-inline'`);
      const scriptSources = /script-src([^;]*)/.exec(panel.csp)?.[1];
      assert(scriptSources === undefined || /^\s*'nonce-[A-Za-z0-9+/=_-]{16,}'\s*$/.test(scriptSources), `the CSP's script-src ${show(scriptSources ?? '')} is not a random nonce alone`);
    } finally {
      await config.update('modelPath', original, vscode.ConfigurationTarget.Global);
    }
  });
});
