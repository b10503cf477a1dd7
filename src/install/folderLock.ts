/**
 * One process at a time per folder: two VS Code windows installing the same model must not write the same
 * files. The lock is a file beside the folder (`<folder>.lock`) naming its owner (pid, host, a random token),
 * created exclusively (`wx`: no hard links, which FAT and exFAT lack); others wait. A lock is stale when its
 * owner's process is gone (same host), or when its heartbeat (the owner touches the file every few seconds) has
 * not moved for a minute of the waiter's own monotonic time: that covers a reused pid and another host, and
 * never counts a machine's sleep.
 *
 * A lock is only ever removed under a guard (`<folder>.lock.guard`, also created exclusively, held for the few
 * file operations of one removal): the lock is checked to be the one judged stale (or, on release, one's own),
 * renamed to a unique name (which only one process can do), and checked again there; a lock that turns out to
 * be another (a process that does not take the guard replaced it in between) is put back, never deleted. So a
 * waiter that judged a lock stale cannot remove the one that replaced it, and three or more waiters breaking a
 * stale lock at once leave one holder.
 *
 * Every wait is bounded or cancellable: a live holder is waited for while its heartbeat moves (and until the
 * signal); a lock (or guard) that exists but cannot be read — a folder in its place, no permission — fails after
 * a while with an error that names it and says what to do, as does a stale lock that cannot be removed.
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
  /** How long a lock that exists but cannot be read (a folder in its place, no permission) is waited for (default: a minute). */
  readonly unreadableWaitMs?: number;
}

export const LOCK_SUFFIX = '.lock';
const GUARD_SUFFIX = '.guard';
const POLL_MS = 250;
const GUARD_POLL_MS = 20;
const HEARTBEAT_MS = 5_000;
const ABANDONED_MS = 60_000;
/** The guard is held for a few file operations: one unchanged this long was left by a process that died holding it. */
const GUARD_ABANDONED_MS = 10_000;

/** Runs `run` while holding the lock of `folder`, waiting for another holder first. */
export async function withFolderLock<T>(folder: string, options: LockOptions, run: () => Promise<T>): Promise<T> {
  const release = await acquire(`${path.resolve(folder)}${LOCK_SUFFIX}`, options);
  try {
    return await run();
  } finally {
    await release();
  }
}

/** What is at a lock's path: nothing, a lock (its owner undefined while it is being written), or something unreadable. */
type Seen =
  | { readonly kind: 'none' }
  | { readonly kind: 'unreadable'; readonly reason: string }
  | { readonly kind: 'held'; readonly owner: LockOwner | undefined; readonly key: string };

const errorCode = (error: unknown): string | undefined => (error as NodeJS.ErrnoException).code;

function parseOwner(text: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(text) as Partial<LockOwner> | null;
    return typeof owner?.pid === 'number' && typeof owner.host === 'string' && typeof owner.token === 'string' ? owner as LockOwner : undefined;
  } catch {
    return undefined; // being written
  }
}

function inspect(file: string): Seen {
  let stat: fs.Stats;
  let text: string;
  try {
    stat = fs.statSync(file);
    if (!stat.isFile()) return { kind: 'unreadable', reason: stat.isDirectory() ? 'it is a folder, not a lock file' : 'it is not a file' };
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return { kind: 'none' };
    return { kind: 'unreadable', reason: `it cannot be read (${errorCode(error) ?? (error as Error).message})` };
  }
  const owner = parseOwner(text);
  return { kind: 'held', owner, key: `${owner?.token ?? ''}@${stat.mtimeMs}` };
}

/** Creates `file` holding `owner`, unless something is at its path already. */
function tryCreate(file: string, owner: LockOwner): boolean {
  try {
    fs.writeFileSync(file, JSON.stringify(owner), { flag: 'wx' });
    return true;
  } catch (error) {
    const code = errorCode(error);
    // A folder in the lock's place: EISDIR, or EPERM/EACCES on some systems (inspect says what it is).
    if (code === 'EEXIST' || ((code === 'EISDIR' || code === 'EPERM' || code === 'EACCES') && fs.existsSync(file))) return false;
    throw error;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === 'EPERM'; // alive, someone else's
  }
}

function newOwner(): LockOwner {
  return { pid: process.pid, host: os.hostname(), token: randomUUID(), since: new Date().toISOString() };
}

function whatToDo(file: string): string {
  return `phi-complete keeps a small lock file there while a VS Code window installs a model; if no window is installing one, delete ${file} and try again`;
}

/** What a waiter has seen of one lock file: when its heartbeat last moved, and since when it has been unreadable. */
class Watch {
  private heartbeat: { readonly key: string; readonly seenAt: number } | undefined;
  private unreadableSince: number | undefined;

  constructor(private readonly file: string, private readonly abandonedMs: number, private readonly unreadableWaitMs: number) {}

  /** Whether the holder is gone: its process has ended (on this host), or its heartbeat has not moved for abandonedMs. */
  isStale(seen: Extract<Seen, { kind: 'held' }>): boolean {
    this.unreadableSince = undefined;
    if (this.heartbeat?.key !== seen.key) this.heartbeat = { key: seen.key, seenAt: performance.now() };
    const gone = seen.owner !== undefined && seen.owner.host === os.hostname() && !isRunning(seen.owner.pid);
    return gone || performance.now() - this.heartbeat.seenAt > this.abandonedMs;
  }

  /** Notes that the file cannot be read; throws once it has not been readable for unreadableWaitMs. */
  unreadable(reason: string): void {
    this.unreadableSince ??= performance.now();
    if (performance.now() - this.unreadableSince >= this.unreadableWaitMs) {
      throw new Error(`${this.file} is in the way: ${reason}. ${whatToDo(this.file)}`);
    }
  }
}

function throwIfCancelled(signal: AbortSignal | undefined, file: string): void {
  if (signal?.aborted) throw new Error(`cancelled while waiting for ${file}`);
}

/**
 * Removes the lock at `file` if it is still one `expected` accepts: renamed to a unique name (only one process
 * can rename it), checked again there, and deleted; a lock found to be another one is put back (by an exclusive
 * create: never over a lock made meanwhile). Returns whether it removed one.
 */
function removeIfStill(file: string, expected: (seen: Extract<Seen, { kind: 'held' }>) => boolean, purpose: string): boolean {
  const seen = inspect(file);
  if (seen.kind !== 'held' || !expected(seen)) return false;
  const aside = `${file}.${purpose}-${process.pid}-${randomUUID()}`;
  try {
    fs.renameSync(file, aside);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw new Error(`cannot remove ${file} (${errorCode(error) ?? (error as Error).message}). ${whatToDo(file)}`);
  }
  const moved = inspect(aside);
  if (moved.kind === 'held' && expected(moved)) {
    fs.rmSync(aside, { force: true });
    return true;
  }
  try {
    fs.copyFileSync(aside, file, fs.constants.COPYFILE_EXCL);
  } catch {
    // A lock was made in its place meanwhile.
  }
  fs.rmSync(aside, { force: true });
  return false;
}

/**
 * Runs `run` (a few file operations) holding the guard of the lock `file`, waiting for another holder of the
 * guard first; a guard whose process is gone, or that has not changed for GUARD_ABANDONED_MS, is removed.
 */
async function withGuard<T>(file: string, options: Pick<LockOptions, 'signal' | 'unreadableWaitMs'>, run: () => T): Promise<T> {
  const guard = `${file}${GUARD_SUFFIX}`;
  const owner = newOwner();
  const watch = new Watch(guard, GUARD_ABANDONED_MS, options.unreadableWaitMs ?? ABANDONED_MS);
  while (!tryCreate(guard, owner)) {
    const seen = inspect(guard);
    if (seen.kind === 'none') continue;
    if (seen.kind === 'held' && watch.isStale(seen)) {
      removeIfStill(guard, (now) => now.key === seen.key, 'stale');
      continue;
    }
    if (seen.kind === 'unreadable') watch.unreadable(seen.reason);
    throwIfCancelled(options.signal, file);
    await sleep(GUARD_POLL_MS);
  }
  try {
    return run();
  } finally {
    removeIfStill(guard, (now) => now.owner?.token === owner.token, 'released');
  }
}

async function acquire(file: string, options: LockOptions): Promise<() => Promise<void>> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const owner = newOwner();
  const watch = new Watch(file, ABANDONED_MS, options.unreadableWaitMs ?? ABANDONED_MS);
  let waiting = false;
  for (;;) {
    throwIfCancelled(options.signal, file);
    if (tryCreate(file, owner)) break;
    const seen = inspect(file);
    if (seen.kind === 'none') continue; // released meanwhile
    if (seen.kind === 'held' && watch.isStale(seen)) {
      // Removed only if it is still the lock judged stale: not one that another waiter has made since.
      if (await withGuard(file, options, () => removeIfStill(file, (now) => now.key === seen.key, 'stale'))) continue;
    }
    if (seen.kind === 'unreadable') watch.unreadable(seen.reason);
    if (!waiting) options.onWait?.(seen.kind === 'held' ? seen.owner : undefined);
    waiting = true;
    await sleep(POLL_MS, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
  }
  const beat = setInterval(() => {
    const seen = inspect(file);
    if (seen.kind !== 'held' || seen.owner?.token !== owner.token) return; // not ours any more: leave it be
    const now = new Date();
    fs.utimes(file, now, now, () => undefined);
  }, HEARTBEAT_MS);
  beat.unref();
  return () => {
    clearInterval(beat);
    return release(file, owner);
  };
}

/** Removes the lock if it is still `owner`'s (a lock another process took over, its own having been judged stale, stays). */
async function release(file: string, owner: LockOwner): Promise<void> {
  const ours = (seen: Extract<Seen, { kind: 'held' }>): boolean => seen.owner?.token === owner.token;
  try {
    await withGuard(file, { unreadableWaitMs: GUARD_ABANDONED_MS }, () => removeIfStill(file, ours, 'released'));
  } catch {
    removeIfStill(file, ours, 'released'); // the guard is in the way: without it, still never another's lock
  }
}
