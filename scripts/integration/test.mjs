#!/usr/bin/env node
/**
 * `npm run test:integration`: runs the in-editor suite (test/integration/suite) with the runner that works on
 * this machine, and says which one it chose and why.
 *
 *   electron     scripts/integration/electron.mjs: desktop VS Code through @vscode/test-electron. Chosen when
 *                VS Code can run here: on Linux a display or xvfb-run, and a VS Code build already in
 *                .vscode-test/ or the VS Code download site answering within a few seconds.
 *   code-server  scripts/integration/setup.sh (installs once), then scripts/integration/run.mjs: code-server from
 *                npm + Debian chromium + playwright-core. Chosen otherwise, and when the electron runner could not
 *                start VS Code at all (exit code 2).
 *
 *   node scripts/integration/test.mjs [--runner auto|electron|code-server] [runner arguments…]
 *
 * `--runner` (or PHI_IT_RUNNER) forces one; the default is auto. Other arguments go to the chosen runner
 * (--model, --keep, --timeout for both; --screenshots, --no-page-reader for code-server).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repo } from './tools.mjs';

const RUNNERS = ['auto', 'electron', 'code-server'];
const PROBE_URL = 'https://update.code.visualstudio.com/api/releases/stable';
const PROBE_TIMEOUT_MS = 5000;
const log = (message) => console.log(`[test:integration] ${message}`);

function parse(argv) {
  let runner = process.env.PHI_IT_RUNNER || 'auto';
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runner') runner = argv[++i];
    else if (argv[i].startsWith('--runner=')) runner = argv[i].slice('--runner='.length);
    else rest.push(argv[i]);
  }
  if (!RUNNERS.includes(runner)) {
    console.error(`test:integration: --runner (or PHI_IT_RUNNER) must be one of ${RUNNERS.join(', ')}, not ${JSON.stringify(runner)}`);
    process.exit(1);
  }
  return { runner, rest };
}

/** Whether desktop VS Code can run the suite here; the reason either way. */
async function probeElectron() {
  if (process.platform === 'linux' && !process.env.DISPLAY && spawnSync('sh', ['-c', 'command -v xvfb-run'], { stdio: 'ignore' }).status !== 0) {
    return { ok: false, why: 'no display ($DISPLAY unset) and no xvfb-run for desktop VS Code' };
  }
  const cache = path.join(repo, '.vscode-test');
  const builds = fs.existsSync(cache) ? fs.readdirSync(cache).filter((d) => /^vscode-/.test(d)) : [];
  if (builds.length) return { ok: true, why: `a VS Code build is already downloaded (.vscode-test/${builds.sort().at(-1)})` };
  const started = Date.now();
  try {
    const response = await fetch(PROBE_URL, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    if (!response.ok) return { ok: false, why: `no VS Code in .vscode-test/ and ${PROBE_URL} answered HTTP ${response.status}` };
    return { ok: true, why: `VS Code can be downloaded (${PROBE_URL} answered in ${Date.now() - started} ms)` };
  } catch (error) {
    const cause = error?.cause?.code ?? error?.cause?.message ?? error?.message ?? String(error);
    return { ok: false, why: `no VS Code in .vscode-test/ and it cannot be downloaded (${PROBE_URL}: ${cause}, after ${Date.now() - started} ms)` };
  }
}

function runNode(script, args) {
  return spawnSync(process.execPath, [path.join(repo, 'scripts/integration', script), ...args], { cwd: repo, stdio: 'inherit' }).status ?? 1;
}

function codeServer(args) {
  const setup = spawnSync('bash', [path.join(repo, 'scripts/integration/setup.sh')], { cwd: repo, stdio: 'inherit' });
  if (setup.status !== 0) {
    console.error('test:integration: installing the code-server runner\'s tools failed (see above)');
    return 1;
  }
  return runNode('run.mjs', args);
}

const { runner, rest } = parse(process.argv.slice(2));
let code;
if (runner === 'electron') {
  log('runner: electron (forced)');
  code = runNode('electron.mjs', rest);
} else if (runner === 'code-server') {
  log('runner: code-server (forced)');
  code = codeServer(rest);
} else {
  const probe = await probeElectron();
  if (probe.ok) {
    log(`runner: electron (@vscode/test-electron), because ${probe.why}; PHI_IT_RUNNER=code-server forces the other`);
    code = runNode('electron.mjs', rest);
    if (code === 2) {
      log('the electron runner could not start VS Code: falling back to code-server');
      code = codeServer(rest);
    }
  } else {
    log(`runner: code-server (code-server + Chromium + playwright-core), because ${probe.why}; PHI_IT_RUNNER=electron forces the other`);
    code = codeServer(rest);
  }
}
process.exit(code);
