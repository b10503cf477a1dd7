/** Runs a conversion (src/install/convertMain.ts) in a child process, with progress and cancellation. */
import { forkNodeProcess } from '../util/fork';
import type { ConvertMessage, ConvertRequest } from './convertMain';

export function convertInChildProcess(script: string, request: ConvertRequest, onProgress?: (fraction: number) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new Error('conversion cancelled'));
      return;
    }
    const child = forkNodeProcess(script, [JSON.stringify(request)]);
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
