/**
 * What the benchmark keeps outside the repo, under ~/.cache/phi-complete: models keyed by the code that wrote
 * them, and peer engines installed from npm at pinned versions.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export function defaultCacheDir(): string {
  return path.join(os.homedir(), '.cache', 'phi-complete');
}

/** A key that changes whenever any of `files` (the code that writes a cached artefact) or `salt` changes. */
export function codeKey(files: readonly string[], salt: string): string {
  const hash = createHash('sha256');
  for (const file of files) hash.update(fs.readFileSync(file));
  hash.update(salt);
  return hash.digest('hex').slice(0, 16);
}

/** The version of `packageName` installed under `prefix`, if any. */
export function installedVersion(prefix: string, packageName: string): string | undefined {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(prefix, 'node_modules', packageName, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof manifest.version === 'string' ? manifest.version : undefined;
  } catch {
    return undefined;
  }
}

export interface PinnedInstall {
  /** The folder that gets node_modules/. */
  readonly prefix: string;
  /** npm specs, each pinned (name@version). */
  readonly packages: readonly string[];
  /** Extra environment for npm (e.g. to skip an install script's download). */
  readonly env?: NodeJS.ProcessEnv;
}

/** The specs of `install` are all installed at their pinned versions. */
function isInstalled(prefix: string, packages: readonly string[]): boolean {
  return packages.every((spec) => {
    const at = spec.lastIndexOf('@');
    return installedVersion(prefix, spec.slice(0, at)) === spec.slice(at + 1);
  });
}

/**
 * Installs pinned packages into `prefix` unless they are there already. `--omit=optional` skips every other
 * platform's binaries. The install happens beside the final folder and is renamed into place, so an interrupted
 * install never looks complete.
 */
export function ensurePinnedInstall(install: PinnedInstall): void {
  if (isInstalled(install.prefix, install.packages)) return;
  fs.mkdirSync(path.dirname(install.prefix), { recursive: true });
  const staging = fs.mkdtempSync(`${install.prefix}.installing-`);
  try {
    process.stderr.write(`installing ${install.packages.join(' ')} into ${install.prefix}\n`);
    execFileSync('npm', ['install', '--omit=optional', '--no-save', '--no-audit', '--no-fund', '--prefix', staging, ...install.packages], {
      stdio: ['ignore', process.stderr, process.stderr],
      timeout: 10 * 60 * 1000,
      env: { ...process.env, ...install.env },
    });
    if (!isInstalled(staging, install.packages)) throw new Error(`npm install finished but ${staging} lacks one of ${install.packages.join(', ')}`);
    fs.rmSync(install.prefix, { recursive: true, force: true });
    fs.renameSync(staging, install.prefix);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
