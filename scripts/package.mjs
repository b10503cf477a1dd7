#!/usr/bin/env node
/**
 * Builds a platform-specific VSIX: the production bundle (dist/), package.json, README, media/ and the runtime
 * dependencies esbuild leaves external (onnxruntime-node with only the target's native binaries, gpt-3-encoder).
 *
 *   node scripts/package.mjs [--target linux-x64|linux-arm64|win32-x64|win32-arm64|darwin-arm64|darwin-x64] [--out <file.vsix>] [--skip-build]
 *
 * Default target: the current platform. Prints the VSIX path and size. `.vscodeignore` holds the exclusions shared by
 * every target; the other platforms' ONNX Runtime binaries are excluded here, through a temporary ignore file.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TARGETS = ['linux-x64', 'linux-arm64', 'win32-x64', 'win32-arm64', 'darwin-x64', 'darwin-arm64'];
const ORT_BIN = 'node_modules/onnxruntime-node/bin/napi-v6';

function fail(message) {
  console.error(`package: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const options = { target: `${process.platform}-${process.arch}`, out: undefined, build: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--target') options.target = argv[++i] ?? fail('--target needs a value');
    else if (arg === '--out') options.out = path.resolve(argv[++i] ?? fail('--out needs a file'));
    else if (arg === '--skip-build') options.build = false;
    else if (arg === '--help' || arg === '-h') {
      console.log(`usage: node scripts/package.mjs [--target ${TARGETS.join('|')}] [--out <file.vsix>] [--skip-build]`);
      process.exit(0);
    } else fail(`unknown argument ${arg}`);
  }
  if (!TARGETS.includes(options.target)) fail(`unsupported target ${options.target} (one of ${TARGETS.join(', ')})`);
  return options;
}

function run(command, args, extra = {}) {
  const result = spawnSync(command, args, { cwd: repo, stdio: 'inherit', ...extra });
  if (result.error) fail(`${command} failed to start: ${result.error.message}`);
  if (result.status !== 0) fail(`${path.basename(command)} ${args.join(' ')} exited with ${result.status}`);
}

/** ONNX Runtime binary folders of every platform but the target's (darwin ships one folder per arch too). */
function otherOrtFolders(target) {
  const [platform, arch] = target.split('-');
  const root = path.join(repo, ORT_BIN);
  if (!fs.existsSync(path.join(root, platform, arch))) fail(`${ORT_BIN}/${platform}/${arch} is missing: onnxruntime-node has no binaries for ${target}`);
  const excluded = [];
  for (const p of fs.readdirSync(root)) {
    for (const a of fs.readdirSync(path.join(root, p))) {
      if (p !== platform || a !== arch) excluded.push(`${ORT_BIN}/${p}/${a}/**`);
    }
  }
  return excluded;
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
  const vsce = path.join(repo, 'node_modules', '.bin', process.platform === 'win32' ? 'vsce.cmd' : 'vsce');
  if (!fs.existsSync(vsce)) fail('@vscode/vsce is not installed: run `npm install`');

  if (options.build) {
    console.log('[package] production build');
    run(process.execPath, ['scripts/build.mjs', '--production']);
  }
  for (const file of ['dist/extension.js', 'dist/worker.js', 'dist/convert.js']) {
    if (!fs.existsSync(path.join(repo, file))) fail(`${file} is missing: run \`npm run build\``);
  }
  // A development build leaves source maps next to the bundle; .vscodeignore keeps them out anyway.

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi-package-'));
  try {
    const ignoreFile = path.join(tmp, '.vscodeignore');
    const shared = fs.readFileSync(path.join(repo, '.vscodeignore'), 'utf8');
    fs.writeFileSync(ignoreFile, `${shared.trimEnd()}\n# Other platforms' ONNX Runtime binaries (target ${options.target})\n${otherOrtFolders(options.target).join('\n')}\n`);

    const out = options.out ?? path.join(repo, `${pkg.name}-${options.target}-${pkg.version}.vsix`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.rmSync(out, { force: true });
    const args = ['package', '--target', options.target, '--out', out, '--ignoreFile', ignoreFile, '--allow-missing-repository',
    // No repository URL in package.json: keep README's relative links (media/ghost-text.png ships in the VSIX).
    '--no-rewrite-relative-links'];
    if (!['LICENSE', 'LICENSE.md', 'LICENSE.txt'].some((f) => fs.existsSync(path.join(repo, f)))) args.push('--skip-license');
    console.log(`[package] vsce ${args.join(' ')}`);
    run(vsce, args, { env: { ...process.env, VSCE_TELEMETRY: 'false' }, shell: process.platform === 'win32' });

    const size = fs.statSync(out).size / (1024 * 1024);
    console.log(`[package] ${out} (${size.toFixed(1)} MB, ${options.target}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
