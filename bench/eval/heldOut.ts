/**
 * The held-out Python files: a folder of .py files (all of them, recursively), or a list of paths (one a line, as
 * the fixture's data/eval_files.txt) relative to a root, by default the lib/python3.x/ of the machine's python3
 * (the fixture's lists are relative to CPython's standard library).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HeldOutFile } from './cursors';

function pythonFiles(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.py')).sort().map((name) => path.join(dir, name));
}

/** The standard library folder of `python` (the folder that holds os.py). */
export function pythonLibDir(python = 'python3'): string {
  const run = spawnSync(python, ['-c', 'import os; print(os.path.dirname(os.__file__))'], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${python} is needed to find the standard library the file list is relative to (or pass --data-root)`);
  return run.stdout.trim();
}

/** The files `data` names (a folder, or a list relative to `root`), read; unreadable or missing files are an error. */
export function readHeldOutFiles(data: string, root?: string): HeldOutFile[] {
  const paths = fs.statSync(data).isDirectory()
    ? pythonFiles(data)
    : fs.readFileSync(data, 'utf8').split('\n').map((line) => line.trim()).filter((line) => line !== '').map((name) => path.resolve(root ?? pythonLibDir(), name));
  if (paths.length === 0) throw new Error(`${data} names no Python files`);
  return paths.map((file) => ({ path: file, text: fs.readFileSync(file, 'utf8') }));
}

/** The default list for a model folder: its data/eval_files.txt when it has one (the fixture has). */
export function defaultDataFor(modelDir: string): string | undefined {
  const list = path.join(modelDir, 'data', 'eval_files.txt');
  return fs.existsSync(list) ? list : undefined;
}
