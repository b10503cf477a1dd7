/** Runs a conversion (src/install/convertMain.ts) in a child process, with progress and cancellation. */
import { fork } from 'node:child_process';
import type { ConvertMessage, ConvertRequest } from './convertMain';

export function convertInChildProcess(script: string, request: ConvertRequest, onProgress?: (fraction: number) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new Error('conversion cancelled'));
      return;
    }
    const child = fork(script, [JSON.stringify(request)], {
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      execArgv: [],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let failure = '';
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-2000)));
    child.on('message', (message: ConvertMessage) => {
      if (message.type === 'progress') onProgress?.(message.fraction);
      else failure = message.message;
    });
    const cancel = (): void => {
      child.kill('SIGKILL');
    };
    signal?.addEventListener('abort', cancel, { once: true });
    child.on('error', (error) => reject(error));
    child.on('exit', (code, killedBy) => {
      signal?.removeEventListener('abort', cancel);
      if (signal?.aborted) reject(new Error('conversion cancelled'));
      else if (code === 0) resolve();
      else reject(new Error(failure || `conversion failed (${killedBy ?? `exit code ${String(code)}`}) ${stderr.trim()}`.trim()));
    });
  });
}
