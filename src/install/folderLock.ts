/**
 * One process at a time per folder: two VS Code windows installing the same model must not write the same
 * files. The lock is a file beside the folder (`<folder>.lock`) naming its owner (pid, host, a random token),
 * created exclusively; others wait. A lock is stale when its owner's process is gone (same host), or when its
 * heartbeat (the owner touches the file every few seconds) has not moved for a minute of the waiter's own
 * monotonic time: that covers a reused pid and another host, and never counts a machine's sleep.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly token: string;
  readonly since: string;
}

export interface LockOptions {
  readonly signal?: AbortSignal;
  /** Called once when another process holds the lock and the wait begins (its owner, when readable). */
  readonly onWait?: (owner: LockOwner | undefined) => void;
}

export const LOCK_SUFFIX = '.lock';
const POLL_MS = 250;
const HEARTBEAT_MS = 5_000;
const ABANDONED_MS = 60_000;

/** Runs `run` while holding the lock of `folder`, waiting for another holder first. */
export async function withFolderLock<T>(folder: string, options: LockOptions, run: () => Promise<T>): Promise<T> {
  const release = await acquire(`${path.resolve(folder)}${LOCK_SUFFIX}`, options);
  try {
    return await run();
  } finally {
    release();
  }
}

interface Held {
  readonly owner: LockOwner | undefined;
  readonly mtimeMs: number;
}

/** The lock as it is now, or undefined when there is none. An owner that cannot be read yet is undefined. */
function readLock(file: string): Held | undefined {
  let mtimeMs: number;
  let text: string;
  try {
    mtimeMs = fs.statSync(file).mtimeMs;
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return { owner: JSON.parse(text) as LockOwner, mtimeMs };
  } catch {
    return { owner: undefined, mtimeMs }; // being written
  }
}

function tryCreate(file: string, owner: LockOwner): boolean {
  try {
    fs.writeFileSync(file, JSON.stringify(owner), { flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

/**
 * Removes a stale lock, unless it was replaced since it was judged: it is renamed aside first (only one
 * process can), and put back if its token is not the one judged stale.
 */
function breakLock(file: string, staleToken: string | undefined): void {
  const aside = `${file}.stale-${process.pid}-${randomUUID()}`;
  try {
    fs.renameSync(file, aside);
  } catch {
    return; // gone already
  }
  if (readLock(aside)?.owner?.token !== staleToken) {
    try {
      fs.linkSync(aside, file);
    } catch {
      // Another process took the lock meanwhile: it holds it now.
    }
  }
  fs.rmSync(aside, { force: true });
}

async function acquire(file: string, options: LockOptions): Promise<() => void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const owner: LockOwner = { pid: process.pid, host: os.hostname(), token: randomUUID(), since: new Date().toISOString() };
  /** The holder's heartbeat as last seen, and when (this process's monotonic clock) it last moved. */
  let heartbeat: { readonly key: string; readonly seenAt: number } | undefined;
  let waiting = false;
  while (!tryCreate(file, owner)) {
    const held = readLock(file);
    if (held === undefined) continue; // released meanwhile
    const key = `${held.owner?.token ?? ''}@${held.mtimeMs}`;
    if (heartbeat?.key !== key) heartbeat = { key, seenAt: performance.now() };
    const gone = held.owner !== undefined && held.owner.host === owner.host && !isRunning(held.owner.pid);
    if (gone || performance.now() - heartbeat.seenAt > ABANDONED_MS) {
      breakLock(file, held.owner?.token);
      continue;
    }
    if (!waiting) options.onWait?.(held.owner);
    waiting = true;
    if (options.signal?.aborted) throw new Error(`cancelled while waiting for ${file}`);
    await sleep(POLL_MS, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
  }
  const beat = setInterval(() => {
    const now = new Date();
    fs.utimes(file, now, now, () => undefined);
  }, HEARTBEAT_MS);
  beat.unref();
  return () => {
    clearInterval(beat);
    if (readLock(file)?.owner?.token === owner.token) fs.rmSync(file, { force: true });
  };
}
