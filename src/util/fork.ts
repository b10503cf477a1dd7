/**
 * Starts one of the extension's bundled scripts (dist/worker.js, dist/convert.js) as a plain Node child process.
 * Inside VS Code the host is Electron: ELECTRON_RUN_AS_NODE makes the child run as Node, and the host's own Node
 * flags (execArgv: an inspector port, say) are not handed on.
 */
import { fork, type ChildProcess } from 'node:child_process';

/** The child's first pipe after stdin, stdout (both ignored), stderr (piped: the log, error messages) and the IPC channel. */
export const FIRST_EXTRA_FD = 4;

export interface ForkNodeOptions {
  /** Pipes from FIRST_EXTRA_FD on (the worker's heartbeat); none by default. */
  readonly extraPipes?: number;
}

export function forkNodeProcess(script: string, args: readonly string[], options: ForkNodeOptions = {}): ChildProcess {
  return fork(script, args, {
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    execArgv: [],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc', ...Array.from({ length: options.extraPipes ?? 0 }, () => 'pipe' as const)],
  });
}
