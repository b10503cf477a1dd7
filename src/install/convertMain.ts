/**
 * Model conversion in a process of its own (forked by the extension host with ELECTRON_RUN_AS_NODE=1):
 * a Hugging Face phi folder → our ONNX model folder. Converting phi-1.5 takes minutes of CPU, which must
 * never block the editor. Request: argv[2] as JSON {from, to, format, kvCache?, kvOutputs?}; progress and the result over IPC.
 *
 * The build runs in a worker thread, so that the process's main thread stays free to notice the editor going
 * away (its IPC channel closes, also when it is killed) and to end the conversion then: it must not outlive VS Code.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { buildModel } from '../model/build';
import { HuggingFaceWeights } from '../model/weights';
import type { ModelBuild } from './catalogue';

export interface ConvertRequest extends ModelBuild {
  readonly from: string;
  readonly to: string;
}

/** Messages from the conversion process (and from its build thread to its main thread). */
export type ConvertMessage = { readonly type: 'progress'; readonly fraction: number } | { readonly type: 'error'; readonly message: string };

/** The build thread: converts, reporting progress and a failure to the main thread. */
function build(request: ConvertRequest, send: (message: ConvertMessage) => void): void {
  const weights = new HuggingFaceWeights(request.from);
  try {
    buildModel(weights, request.to, {
      format: request.format,
      kvCache: request.kvCache,
      kvOutputs: request.kvOutputs,
      overwrite: true,
      onProgress: (fraction) => send({ type: 'progress', fraction }),
    });
  } finally {
    weights.close();
  }
}

/** The main thread: relays the build thread's messages to the editor, and ends everything when the editor is gone. */
function supervise(request: ConvertRequest): void {
  const send = (message: ConvertMessage): void => {
    if (process.connected) process.send?.(message);
  };
  // Killed, not exited: process.exit waits for the build thread, which may be inside a long system call.
  const editorGone = (): void => {
    process.kill(process.pid, 'SIGKILL');
  };
  process.on('disconnect', editorGone);
  const thread = new Worker(__filename, { workerData: request });
  let failed = false;
  thread.on('message', (message: ConvertMessage) => {
    failed ||= message.type === 'error';
    send(message);
  });
  thread.on('error', (error) => {
    failed = true;
    send({ type: 'error', message: error.message });
  });
  thread.on('exit', (code) => {
    process.exitCode = failed || code !== 0 ? 1 : 0;
    process.off('disconnect', editorGone);
    if (process.connected) process.disconnect();
  });
}

if (isMainThread) {
  supervise(JSON.parse(process.argv[2] ?? '{}') as ConvertRequest);
} else {
  const post = (message: ConvertMessage): void => parentPort?.postMessage(message);
  try {
    build(workerData as ConvertRequest, post);
  } catch (error) {
    post({ type: 'error', message: error instanceof Error ? error.message : String(error) });
    process.exitCode = 1;
  }
}
