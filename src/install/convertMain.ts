/**
 * Model conversion in a process of its own (forked by the extension host with ELECTRON_RUN_AS_NODE=1):
 * a Hugging Face phi folder → our ONNX model folder. Converting phi-1.5 takes minutes of CPU, which must
 * never block the editor. Request: argv[2] as JSON {from, to, format, kvCache?, kvOutputs?}; progress and the result over IPC.
 */
import { buildModel } from '../model/build';
import { HuggingFaceWeights } from '../model/weights';
import type { ModelBuild } from './catalogue';

export interface ConvertRequest extends ModelBuild {
  readonly from: string;
  readonly to: string;
}

/** Messages from the conversion process. */
export type ConvertMessage = { readonly type: 'progress'; readonly fraction: number } | { readonly type: 'error'; readonly message: string };

function send(message: ConvertMessage): void {
  process.send?.(message);
}

function main(): void {
  const request = JSON.parse(process.argv[2] ?? '{}') as ConvertRequest;
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

try {
  main();
  process.exitCode = 0;
} catch (error) {
  send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  process.exitCode = 1;
}
if (process.connected) process.disconnect();
