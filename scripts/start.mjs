// npm start: opens a real VS Code with the extension (from this checkout) and a sample Python project.
// Desktop VS Code through @vscode/test-electron where it can be downloaded; otherwise code-server (VS Code in
// the browser, served on 127.0.0.1), printing the URL. `--tiny` uses a tiny random-weight model built here,
// for an offline smoke run; without it the configured model is used (phi-1.5, downloaded on first use).
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTinyModel, findTools, freePort, repo } from './integration/tools.mjs';

const require = createRequire(import.meta.url);
const cache = path.join(os.homedir(), '.cache', 'phi-complete');
const tiny = process.argv.includes('--tiny');
const log = (message) => process.stderr.write(`[start] ${message}\n`);

const SAMPLE = {
  'shapes.py': `"""Geometry helpers: try typing below a function, or select one and run "phi-complete: Explain Selection"."""
import math
from dataclasses import dataclass


@dataclass
class Circle:
    radius: float

    def area(self) -> float:
        return math.pi * self.radius ** 2

    def circumference(self) -> float:
`,
  'fibonacci.py': `def fibonacci(n):
    """Return the n-th Fibonacci number."""
`,
};

function sampleProject() {
  const dir = path.join(cache, 'sample-project');
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(SAMPLE)) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) fs.writeFileSync(file, text);
  }
  return dir;
}

function tinyModel() {
  const dir = path.join(cache, 'tiny-model');
  if (!fs.existsSync(path.join(dir, 'manifest.json'))) {
    log(`building the tiny random-weight model into ${dir}`);
    buildTinyModel(dir, { overwrite: true });
  }
  return dir;
}

function userSettings(userDataDir) {
  const file = path.join(userDataDir, 'User', 'settings.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const settings = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : { 'workbench.startupEditor': 'none' };
  if (tiny) settings['phiComplete.modelPath'] = tinyModel();
  else delete settings['phiComplete.modelPath'];
  fs.writeFileSync(file, JSON.stringify(settings, null, 2));
}

async function desktop(project, userDataDir) {
  const { downloadAndUnzipVSCode } = require('@vscode/test-electron');
  const executable = await downloadAndUnzipVSCode({ version: 'stable', timeout: 30_000 });
  log(`opening VS Code ${executable}`);
  const child = spawn(executable, [`--extensionDevelopmentPath=${repo}`, `--user-data-dir=${userDataDir}`, project], { stdio: 'inherit' });
  await new Promise((resolve) => child.on('exit', resolve));
}

async function browser(project, userDataDir) {
  const setup = spawnSync('bash', [path.join(repo, 'scripts/integration/setup.sh')], { stdio: 'inherit' });
  if (setup.status !== 0) throw new Error('installing code-server failed (see above)');
  const { node24, codeServer } = findTools();
  const port = await freePort();
  const extensionsDir = path.join(userDataDir, 'extensions');
  const server = spawn(codeServer, [
    '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--user-data-dir', userDataDir, '--extensions-dir', extensionsDir,
    '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', project,
  ], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PATH: `${path.dirname(node24)}${path.delimiter}${process.env.PATH}` } });
  const payload = encodeURIComponent(JSON.stringify([['extensionDevelopmentPath', `vscode-remote://127.0.0.1:${port}${repo}`]]));
  process.stdout.write(`\nphi-complete is running in VS Code (code-server). Open:\n  http://127.0.0.1:${port}/?folder=${encodeURIComponent(project)}&payload=${payload}\nCtrl+C stops it.\n`);
  const stop = () => server.kill();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await new Promise((resolve) => server.on('exit', resolve));
}

const project = sampleProject();
const userDataDir = path.join(cache, 'start', 'user-data');
userSettings(userDataDir);
if (process.platform === 'linux' && !process.env.DISPLAY) {
  log('no display: using code-server');
  await browser(project, userDataDir);
} else {
  try {
    await desktop(project, userDataDir);
  } catch (error) {
    log(`desktop VS Code unavailable (${error.message}); using code-server instead`);
    await browser(project, userDataDir);
  }
}
