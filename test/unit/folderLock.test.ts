/**
 * The folder lock on its own: something unreadable in the lock's place (bounded wait, then an error that says what
 * to do), several processes breaking one stale lock at once on a slow disk without hard links (one holder at a
 * time), and a release that finds its lock taken over (the other holder's lock stays).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import nodeFs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { withFolderLock } from '../../src/install/folderLock';
import { scratchDir } from '../support/tinyModels';

const CONTENDER = path.resolve(__dirname, '../support/lockContender.js');

interface Contender {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs test/support/lockContender in a process of its own; killed after `limitMs` (a wait that never ends). */
function contend(request: Record<string, unknown>, limitMs = 30_000): Promise<Contender> {
  const started = performance.now();
  const child = spawn(process.execPath, [CONTENDER, JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  return new Promise((resolve) => child.on('close', (code, signal) => {
    clearTimeout(timer);
    resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
  }));
}

/** A lock left by a process that has ended, on this host. */
function staleLock(lock: string): void {
  const gone = spawnSync(process.execPath, ['-e', '']).pid;
  fs.writeFileSync(lock, JSON.stringify({ pid: gone, host: os.hostname(), token: 'stale', since: new Date().toISOString() }));
}

test('a folder in the lock\'s place: waited for a bounded time (the process stays responsive), then an error naming it and what to do', async () => {
  const folder = path.join(scratchDir(), 'model');
  const lock = `${folder}.lock`;
  fs.mkdirSync(lock, { recursive: true });
  const result = await contend({ folder, holdMs: 0, marker: path.join(path.dirname(folder), 'held'), unreadableWaitMs: 1_000 }, 20_000);
  assert.equal(result.signal, null, 'still waiting after 20 s (the wait is not bounded)');
  assert.equal(result.code, 1, result.stdout);
  assert.ok(result.ms >= 1_000, `gave up after ${result.ms} ms`);
  assert.equal(result.stderr, `${lock} is in the way: it is a folder, not a lock file. phi-complete keeps a small lock file there while a VS Code window `
    + `installs a model; if no window is installing one, delete ${lock} and try again`);

  // In this process: the wait yields (timers run meanwhile), and a signal still ends it first.
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  try {
    await assert.rejects(withFolderLock(folder, { unreadableWaitMs: 500 }, () => Promise.resolve()), /is in the way: it is a folder/);
    assert.ok(ticks >= 10, `only ${ticks} timer ticks during the wait`);
    await assert.rejects(withFolderLock(folder, { signal: AbortSignal.timeout(300) }, () => Promise.resolve()), /cancelled while waiting for/);
  } finally {
    clearInterval(ticker);
  }
});

test('three processes breaking one stale lock at once, on a slow disk without hard links (as FAT): one holder at a time, nothing left', async () => {
  const dir = scratchDir();
  const folder = path.join(dir, 'model');
  const lock = `${folder}.lock`;
  staleLock(lock);
  const marker = path.join(dir, 'held');
  // Started 60 ms apart, as windows are: each judges the stale lock before the first has moved it (renames take 400 ms).
  const results: Promise<Contender>[] = [];
  for (let i = 0; i < 3; i++) {
    results.push(contend({ folder, holdMs: 300, marker, slowRenameMs: 400, noHardLinks: true }));
    await sleep(60);
  }
  const outcomes = await Promise.all(results);
  for (const outcome of outcomes) assert.equal(outcome.code, 0, outcome.stderr);
  const held = outcomes.map((outcome) => JSON.parse(outcome.stdout) as { overlapped: boolean; acquiredAt: number; releasedAt: number });
  assert.deepEqual(held.map((h) => h.overlapped), [false, false, false], 'two processes held the lock at once');
  const spans = held.map((h) => [h.acquiredAt, h.releasedAt]).sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) assert.ok(spans[i][0] >= spans[i - 1][1], `held at once: ${JSON.stringify(spans)}`);
  assert.deepEqual(fs.readdirSync(dir), [], 'no lock, guard or renamed lock is left');
});

test('three contenders in one process against a stale lock take it in turn', async () => {
  const dir = scratchDir();
  const folder = path.join(dir, 'model');
  staleLock(`${folder}.lock`);
  let holders = 0;
  const order: number[] = [];
  await Promise.all([0, 1, 2].map((i) => withFolderLock(folder, {}, async () => {
    assert.equal(++holders, 1, 'two holders at once');
    order.push(i);
    await sleep(50);
    holders--;
  })));
  assert.deepEqual([...order].sort(), [0, 1, 2]);
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('a release that finds its lock taken over (its own judged stale meanwhile) leaves the other holder\'s lock', async () => {
  const folder = path.join(scratchDir(), 'model');
  const lock = `${folder}.lock`;
  const other = JSON.stringify({ pid: process.pid, host: os.hostname(), token: 'other', since: new Date().toISOString() });
  // Another process replaces the lock just after the release has read it as its own: between its check and its removal.
  const patchable: { readFileSync: typeof fs.readFileSync } = nodeFs;
  const readFileSync = fs.readFileSync;
  let armed = false;
  patchable.readFileSync = ((file: fs.PathOrFileDescriptor, options?: unknown) => {
    const content = readFileSync(file, options as BufferEncoding);
    if (armed && file === lock) {
      armed = false;
      fs.rmSync(lock);
      fs.writeFileSync(lock, other);
    }
    return content;
  }) as typeof fs.readFileSync;
  try {
    await withFolderLock(folder, {}, () => {
      armed = true;
      return Promise.resolve();
    });
  } finally {
    patchable.readFileSync = readFileSync;
  }
  assert.equal(armed, false, 'the release read the lock');
  assert.equal(fs.readFileSync(lock, 'utf8'), other, 'the other holder\'s lock was deleted');
  assert.deepEqual(fs.readdirSync(path.dirname(lock)), [path.basename(lock)]);
});
