#!/usr/bin/env node
/**
 * Smoke test of the packaged extension: installs the VSIX into a fresh code-server (`--install-extension`, temporary
 * extensions dir), opens a .py file in headless Chromium, types `def fibonacci(n):` + Enter, triggers an inline
 * suggestion and checks that ghost text appears and that the status bar shows "CPU" — so the installed VSIX
 * activates, starts its worker (ONNX Runtime from the VSIX's node_modules) and completes.
 *
 *   node scripts/integration/vsix-smoke.mjs [--vsix <file.vsix>] [--model <model folder>] [--keep] [--timeout <seconds>]
 *
 * Without --vsix it packages first (scripts/package.mjs, current platform). Builds a tiny random model like run.mjs
 * (needs `npm run compile`; compiled here when out/ is missing). Exits 0 on success, 1 otherwise.
 * Tools: the same as run.mjs (PHI_IT_NODE24, PHI_IT_CODE_SERVER, PHI_IT_CHROMIUM, PHI_IT_PLAYWRIGHT).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  findTools, makeRunDirs, openBrowser, parseArgs, prepareModel, readGhostText, readWorkbenchTexts, repo, runSession,
  startCodeServer, writeUserSettings,
} from './tools.mjs';

const USAGE = 'node scripts/integration/vsix-smoke.mjs [--vsix <file.vsix>] [--model <model folder>] [--keep] [--timeout <seconds>]';
const log = (message) => console.log(`[vsix-smoke] ${message}`);

function fail(message) {
  console.error(`vsix-smoke: FAIL: ${message}`);
  process.exit(1);
}

function checkTools() {
  const found = findTools();
  if (found.problems.length) fail(`cannot run:\n  - ${found.problems.join('\n  - ')}`);
  return found;
}

/** In the page: the text of the open editor. */
function readEditorText() {
  return (document.querySelector('.editor-group-container .monaco-editor .view-lines')?.textContent ?? '').replace(/\u00a0/g, ' ').trim();
}

/** The ghost text, the status bar items' texts and the editor's text, as shown in the page. */
async function readPage(page) {
  return { ...(await page.evaluate(readGhostText)), statusbar: (await page.evaluate(readWorkbenchTexts)).statusbar, document: await page.evaluate(readEditorText) };
}

async function main() {
  const options = parseArgs(process.argv.slice(2), { '--vsix': 'path', '--model': 'path', '--keep': 'flag', '--timeout': 'number' },
    { keep: false, timeout: 90 }, { name: 'vsix-smoke', usage: USAGE });
  const found = checkTools();
  const { codeServer, playwright } = found;
  const started = Date.now();
  const seconds = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const dirs = makeRunDirs('phi-vsix-');
  const { tmp, home, userData, extensions, workspace } = dirs;
  const env = { ...process.env, HOME: home, PATH: `${path.dirname(found.node24)}${path.delimiter}${process.env.PATH ?? ''}` };

  const session = runSession(tmp, options.keep, log);
  let page;

  try {
    let vsix = options.vsix;
    if (vsix && !fs.existsSync(vsix)) throw new Error(`${vsix} does not exist`);
    if (!vsix) {
      vsix = path.join(tmp, 'phi-complete.vsix');
      log('packaging (scripts/package.mjs)');
      const pack = spawnSync(process.execPath, [path.join(repo, 'scripts', 'package.mjs'), '--out', vsix], { cwd: repo, stdio: 'inherit' });
      if (pack.status !== 0) throw new Error('packaging failed');
    }
    log(`VSIX ${vsix} (${(fs.statSync(vsix).size / 2 ** 20).toFixed(1)} MB)`);

    if (!options.model && !fs.existsSync(path.join(repo, 'out/src/model/build.js'))) {
      log('compiling (tsc -p .) for the tiny-model builder');
      const tsc = spawnSync(process.execPath, [path.join(repo, 'node_modules/typescript/bin/tsc'), '-p', '.'], { cwd: repo, stdio: 'inherit' });
      if (tsc.status !== 0) throw new Error('tsc -p . failed');
    }
    const modelDir = prepareModel(options.model, path.join(tmp, 'model'), log);

    log('installing the VSIX into a fresh extensions dir');
    const install = spawnSync(codeServer, ['--user-data-dir', userData, '--extensions-dir', extensions, '--install-extension', vsix], { cwd: tmp, env, encoding: 'utf8', timeout: 120_000 });
    if (install.status !== 0) throw new Error(`code-server --install-extension failed (${install.status ?? install.signal}):\n${install.stdout}\n${install.stderr}`);
    const installed = fs.readdirSync(extensions).filter((d) => d.startsWith('phi-complete.phi-complete-'));
    if (!installed.length) throw new Error(`the VSIX did not land in ${extensions}:\n${install.stdout}\n${install.stderr}`);
    log(`installed ${installed.join(', ')} after ${seconds()}`);

    writeUserSettings(userData, modelDir, {
      'editor.acceptSuggestionOnEnter': 'off',
      'editor.quickSuggestions': { other: false, comments: false, strings: false },
      'editor.suggestOnTriggerCharacters': false,
    });
    const pyFile = path.join(workspace, 'smoke.py');
    fs.writeFileSync(pyFile, '');

    log('starting code-server');
    let origin;
    ({ server: session.server, origin } = await startCodeServer(found, dirs));
    log(`code-server is up on ${origin} after ${seconds()}`);
    ({ browser: session.browser, page } = await openBrowser(found));
    const payload = [['openFile', `vscode-remote://${origin}${pyFile}`]];
    await page.goto(`http://${origin}/?folder=${encodeURIComponent(workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`);
    const editor = page.locator('.editor-group-container .monaco-editor').first();
    try {
      await editor.waitFor({ state: 'visible', timeout: 30_000 });
    } catch {
      // The payload did not open it: Quick Open instead.
      await page.locator('.monaco-workbench').waitFor({ timeout: 30_000 });
      await page.keyboard.press('Control+P');
      await page.keyboard.type('smoke.py');
      await page.keyboard.press('Enter');
      await editor.waitFor({ state: 'visible', timeout: 30_000 });
    }
    log(`smoke.py is open after ${seconds()}`);
    // Type only once the extension has activated (its status bar item shows "phi"): typing triggers a completion.
    const activationDeadline = Date.now() + 60_000;
    while (Date.now() < activationDeadline && !(await readPage(page)).statusbar.some((t) => /phi/.test(t))) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    log(`status bar: ${JSON.stringify((await readPage(page)).statusbar)} after ${seconds()}`);
    await editor.click();
    await page.keyboard.type('def fibonacci(n):');
    await page.keyboard.press('Enter');

    const deadline = Date.now() + options.timeout * 1000;
    let seen = { ghostText: '', statusbar: [], document: '' };
    let lastTrigger = 0;
    while (Date.now() < deadline) {
      seen = await readPage(page);
      const hasCpu = seen.statusbar.some((t) => /\bCPU\b/.test(t));
      if (seen.ghostText.trim() && hasCpu) break;
      if (Date.now() - lastTrigger > 5000) {
        // editor.action.inlineSuggest.trigger: Alt+\\ first, then through the command palette.
        await editor.click().catch(() => undefined);
        await page.keyboard.press('End');
        if (lastTrigger === 0) await page.keyboard.press('Alt+Backslash');
        else {
          await page.keyboard.press('F1');
          await page.keyboard.type('Trigger Inline Suggestion');
          await new Promise((resolve) => setTimeout(resolve, 300));
          await page.keyboard.press('Enter');
        }
        lastTrigger = Date.now();
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const hasCpu = seen.statusbar.some((t) => /\bCPU\b/.test(t));
    if (!seen.ghostText.trim() || !hasCpu) {
      const shot = path.join(os.tmpdir(), `phi-vsix-smoke-failure-${Date.now()}.png`);
      await page.screenshot({ path: shot }).catch(() => undefined);
      const problems = [];
      if (!seen.ghostText.trim()) problems.push('no ghost text (.ghost-text-decoration) appeared');
      if (!hasCpu) problems.push('the status bar shows no "CPU" item');
      throw new Error(`${problems.join('; ')} within ${options.timeout} s after typing.\n  document: ${JSON.stringify(seen.document)}\n  status bar: ${JSON.stringify(seen.statusbar)}\n  screenshot: ${shot}\n  code-server log: ${path.join(tmp, 'code-server.log')} (kept with --keep)`);
    }
    log(`ghost text: ${JSON.stringify(seen.ghostText.slice(0, 80))}`);
    log(`status bar: ${JSON.stringify(seen.statusbar.filter((t) => /CPU/.test(t)))}`);
    log(`PASS: the installed VSIX activated, started its worker and completed (${seconds()} in all)`);
    return 0;
  } finally {
    await session.cleanup();
  }
}

main().then((code) => process.exit(code), (error) => {
  console.error(`vsix-smoke: FAIL: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
