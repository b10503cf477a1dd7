/**
 * The worker's signs of life for the host. ONNX Runtime creates sessions and runs passes synchronously on the main
 * thread, for seconds at a time with a large model on a slow disk or a GPU provider starting up, and a heartbeat
 * sent from the main thread stops meanwhile. So a thread, which native work on the main thread does not block,
 * writes a byte to a pipe to the host every HEARTBEAT_MS; it stops when the process is frozen or dead, or when the
 * main thread has made no progress for `stallLimitMs` (a native call that never returns). The main thread still
 * sends IPC heartbeats: they keep the worker alive where the pipe is missing (the host then knows no better).
 * The thread also ends the process when the host is gone (its pid is gone or the worker was re-parented, or the
 * pipe is broken): the main thread's own checks (src/worker/main.ts) wait while a native call blocks it, maybe
 * forever, and an orphaned worker would keep its model's memory.
 */
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { HEARTBEAT_MS } from '../protocol';

export interface HeartbeatOptions {
  /** The pipe to the host the thread writes to (undefined: none was given; only IPC heartbeats are sent). */
  readonly pipeFd: number | undefined;
  /** The host's pid: when it is gone the thread kills the process. */
  readonly parentPid: number;
  /** How long the main thread may stay blocked (no tick) before the thread stops beating. */
  readonly stallLimitMs: number;
  /** Sends the IPC heartbeat. */
  readonly send: () => void;
  /** Reports a problem (the host logs the worker's stderr). */
  readonly warn: (message: string) => void;
}

/**
 * The thread's code, evaluated on its own (eval: true) so it loads neither the bundle nor ONNX Runtime again. It
 * writes with fs.writeSync: process.stderr in a thread goes through the main thread, which may be the one blocked.
 */
const THREAD_SOURCE = `
const fs = require('node:fs');
const { workerData } = require('node:worker_threads');
const { fd, parentPid, intervalMs, stallLimitMs, ticks } = workerData;
const mainTicks = new Int32Array(ticks);
let seen = Atomics.load(mainTicks, 0);
let progressAt = Date.now();
let reported = false;
// process.exit in a thread ends only the thread: the process is killed instead (nothing in it is worth saving).
function orphaned(why) {
  try { fs.writeSync(2, 'the extension host is gone (' + why + '): exiting\\n'); } catch {}
  process.kill(process.pid, 'SIGKILL');
}
function parentGone() {
  // An orphan is re-parented (its ppid changes); kill(pid, 0) checks that the pid still exists.
  if (process.ppid !== parentPid) return true;
  try {
    process.kill(parentPid, 0);
    return false;
  } catch (error) {
    return error.code === 'ESRCH';
  }
}
setInterval(() => {
  if (parentGone()) return orphaned('its process ' + parentPid + ' has ended');
  const now = Date.now();
  const tick = Atomics.load(mainTicks, 0);
  if (tick !== seen) {
    seen = tick;
    progressAt = now;
    reported = false;
  }
  if (now - progressAt > stallLimitMs) {
    if (!reported) {
      reported = true;
      try { fs.writeSync(2, 'the main thread has been blocked for ' + (now - progressAt) + ' ms: heartbeat stopped\\n'); } catch {}
    }
    return;
  }
  if (fd === undefined) return;
  try {
    fs.writeSync(fd, '.');
  } catch (error) {
    // The reading end closed: the host is gone. Any other failure (not reading for now) is left to the next beat.
    if (error.code === 'EPIPE' || error.code === 'EOF') orphaned('its heartbeat pipe is closed');
  }
}, intervalMs);
`;

/** Whether `fd` is an open pipe or socket: writing to any other descriptor could corrupt a file. */
function isPipe(fd: number): boolean {
  try {
    const stat = fs.fstatSync(fd);
    return stat.isFIFO() || stat.isSocket();
  } catch {
    return false;
  }
}

/** Starts the heartbeats for the life of the process. */
export function startHeartbeat(options: HeartbeatOptions): void {
  // The main thread ticks this counter; the thread watches it to tell a blocked main thread from a busy one.
  const ticks = new SharedArrayBuffer(4);
  const mainTicks = new Int32Array(ticks);
  setInterval(() => {
    Atomics.add(mainTicks, 0, 1);
    options.send();
  }, HEARTBEAT_MS);
  let fd = options.pipeFd;
  if (fd !== undefined && !isPipe(fd)) {
    options.warn(`heartbeat: fd ${fd} is not a pipe; liveness relies on IPC heartbeats, which a long native call delays`);
    fd = undefined;
  }
  // Started without a pipe too: it still watches the host.
  const thread = new Worker(THREAD_SOURCE, {
    eval: true,
    workerData: { fd, parentPid: options.parentPid, intervalMs: HEARTBEAT_MS, stallLimitMs: options.stallLimitMs, ticks },
  });
  thread.on('error', (error) => options.warn(`heartbeat thread failed: ${error.message}; liveness relies on IPC heartbeats`));
  // The heartbeat never keeps the worker alive on its own.
  thread.unref();
}
