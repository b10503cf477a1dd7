#!/usr/bin/env node
/**
 * Runs test/integration/suite in desktop VS Code through @vscode/test-electron (`runTests`): the same compiled
 * suite (out/test/integration/suite/index.js), the same tiny model and user settings as run.mjs, a fresh user data
 * and extensions folder and workspace. This runner has no page reader: the suite skips its checks of the page
 * (it says so in its log) and runs everything else.
 *
 * Needs `npm run compile && npm run build`, and VS Code: downloaded into .vscode-test/ on first use (network), or
 * the one already there. On Linux without a display it runs under `xvfb-run` when that exists.
 *
 *   node scripts/integration/electron.mjs [--model <model folder>] [--keep] [--timeout <seconds>] [--vscode-version <version|stable>]
 *
 * Exits with the suite's code (1 also when the deactivation check fails: the worker outlived the extension host),
 * or 2 when VS Code could not be had or started at all (no download, no display, the suite never began), so that
 * test.mjs can fall back to the code-server runner.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { makeRunDirs, missingFiles, parseArgs, prepareModel, repo, runSession, SUITE_BUILD_OUTPUTS, suiteVerdict, writeRunnerInfo, writeUserSettings } from './tools.mjs';
import { startTestServers } from './llamaServer.mjs';

const require = createRequire(import.meta.url);
const USAGE = 'node scripts/integration/electron.mjs [--model <model folder>] [--keep] [--timeout <seconds>] [--vscode-version <version|stable>]';
const log = (message) => console.log(`[electron] ${message}`);

/** Linux without a display: run this script again under xvfb-run, when there is one. Returns its exit code, or undefined to go on here. */
function underXvfb() {
  if (process.platform !== 'linux' || process.env.DISPLAY || process.env.PHI_IT_UNDER_XVFB) return undefined;
  if (spawnSync('sh', ['-c', 'command -v xvfb-run'], { stdio: 'ignore' }).status !== 0) {
    console.error('integration (electron): no display ($DISPLAY is unset) and no xvfb-run: install xvfb (apt-get install -y xvfb), or use the code-server runner');
    return 2;
  }
  log('no display: running under xvfb-run');
  const child = spawnSync('xvfb-run', ['-a', process.execPath, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, PHI_IT_UNDER_XVFB: '1' } });
  return child.status ?? 1;
}

async function main() {
  const options = parseArgs(process.argv.slice(2),
    { '--model': 'path', '--keep': 'flag', '--timeout': 'number', '--vscode-version': 'string' },
    { keep: false, timeout: 300, vscodeVersion: 'stable' }, { name: 'electron', usage: USAGE });
  const problems = missingFiles(SUITE_BUILD_OUTPUTS);
  if (problems.length) throw new Error(`cannot run the integration tests:\n  - ${problems.join('\n  - ')}`);
  const xvfb = underXvfb();
  if (xvfb !== undefined) return xvfb;

  const { downloadAndUnzipVSCode, runTests } = require('@vscode/test-electron');
  const started = Date.now();
  const dirs = makeRunDirs('phi-it-electron-');
  const session = runSession(dirs.tmp, options.keep, log);
  try {
    const modelDir = prepareModel(options.model, path.join(dirs.tmp, 'model'), log);
    session.llamaServers = await startTestServers(dirs.tmp, dirs.channel, log);
    writeUserSettings(dirs.userData, modelDir, { 'files.exclude': { '.phi-it': true }, 'editor.wordWrap': 'on' });
    writeRunnerInfo(dirs.channel, '@vscode/test-electron', false);

    let vscodeExecutablePath;
    try {
      vscodeExecutablePath = await downloadAndUnzipVSCode({ version: options.vscodeVersion, cachePath: path.join(repo, '.vscode-test'), timeout: 30_000 });
    } catch (error) {
      console.error(`integration (electron): no VS Code to run: ${error instanceof Error ? error.message : String(error)}`);
      return 2;
    }
    log(`VS Code ${vscodeExecutablePath}`);
    let timer;
    const code = await Promise.race([
      runTests({
        vscodeExecutablePath,
        extensionDevelopmentPath: repo,
        extensionTestsPath: path.join(repo, 'out/test/integration/suite/index.js'),
        launchArgs: [
          dirs.workspace, `--user-data-dir=${dirs.userData}`, `--extensions-dir=${dirs.extensions}`,
          '--disable-telemetry', '--disable-gpu', // runTests adds --no-sandbox, --disable-updates, --disable-workspace-trust and the rest
        ],
      }).then(() => 0, (error) => {
        log(`VS Code reported failure: ${error instanceof Error ? error.message : String(error)}`);
        return 1;
      }),
      new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), options.timeout * 1000))),
    ]);
    clearTimeout(timer);
    const suiteLog = path.join(dirs.channel, 'suite.log');
    if (!fs.existsSync(suiteLog) && code !== 'timeout') {
      console.error('integration (electron): VS Code ran, but the suite never started in it');
      return 2;
    }
    console.log(fs.existsSync(suiteLog) ? fs.readFileSync(suiteLog, 'utf8').trimEnd() : '(the suite wrote no log)');
    if (code === 'timeout') {
      console.error(`integration: the suite did not finish within ${options.timeout} s`);
      return 1;
    }
    log(`suite exited with code ${code} after ${((Date.now() - started) / 1000).toFixed(1)} s in all`);
    return suiteVerdict(dirs.channel, code, log);
  } finally {
    await session.cleanup();
  }
}

main().then((code) => process.exit(code), (error) => {
  console.error(`integration (electron): ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
