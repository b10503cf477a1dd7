/**
 * Inference worker entry point: runs in its own process (forked with ELECTRON_RUN_AS_NODE=1) so that ONNX
 * Runtime's native code can never take the extension host down. One model, one generator with a KV cache per
 * sequence; the latest generation request wins (but only a newer explanation cancels an explanation), and prefills
 * run only while no generation is in flight or queued (src/inference/scheduler.ts). Protocol: src/protocol.ts.
 */
import { parseArgs } from 'node:util';
import { Generator } from '../inference/generator';
import { DEFAULT_CACHE_BYTES, EXPLAIN_SEQUENCE, validateHostMessage, type GenerateRequest, type HostMessage, type LoadRequest, type PrefillRequest, type WorkerMessage } from '../protocol';
import { startHeartbeat } from './heartbeat';
import { loadModel, ModelInvalidError, type LoadedModel } from './session';

/** How often the worker checks that the process that started it is still alive. */
const PARENT_CHECK_MS = 2000;

let model: LoadedModel | undefined;
let generator: Generator | undefined;
/** The load in progress: generation requests wait for it. */
let loading: Promise<void> = Promise.resolve();
const cancellers = new Map<number, AbortController>();
/** The KV caches' memory budget (configure); kept across model loads. */
let cacheBytes = DEFAULT_CACHE_BYTES;

function send(message: WorkerMessage): void {
  if (process.connected) process.send!(message);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function load(request: LoadRequest): Promise<void> {
  send({ type: 'progress', id: request.id, message: 'loading model' });
  const started = Date.now();
  await generator?.dispose();
  generator = undefined;
  await model?.decoder.dispose();
  model = undefined;
  try {
    model = await loadModel(request.modelDir, request.device, request.threads);
    generator = new Generator(model.decoder, model.tokenizer, { cacheBudgetBytes: cacheBytes });
    send({ type: 'loaded', id: request.id, device: model.device, fallbacks: model.fallbacks, advice: model.advice, loadMs: Date.now() - started });
  } catch (error) {
    send({ type: 'error', id: request.id, code: error instanceof ModelInvalidError ? 'model-invalid' : 'device-unavailable', message: messageOf(error) });
  }
}

/**
 * Runs a model request once any load has finished: `no-model` when none is loaded; `cancel {id}` aborts it; a
 * throw becomes its `error`.
 */
async function withGenerator(id: number, work: (generator: Generator, signal: AbortSignal) => Promise<void>): Promise<void> {
  // Cancellable from the start: a cancel may arrive while the request waits for a load.
  const controller = new AbortController();
  cancellers.set(id, controller);
  try {
    await loading;
    if (!generator) {
      send({ type: 'error', id, code: 'no-model', message: 'no model is loaded' });
      return;
    }
    await work(generator, controller.signal);
  } catch (error) {
    send({ type: 'error', id, code: 'generation-failed', message: messageOf(error) });
  } finally {
    cancellers.delete(id);
  }
}

function generate(request: GenerateRequest): Promise<void> {
  return withGenerator(request.id, async (model, signal) => {
    const { params } = request;
    const result = await model.generate({
      prompt: request.prompt,
      maxNewTokens: params.maxNewTokens,
      sampling: { temperature: params.temperature, topK: params.topK, topP: params.topP, seed: params.seed },
      stop: params.stop,
      speculative: params.speculative,
      quick: params.quick,
      signal,
      onText: (text) => send({ type: 'delta', id: request.id, text }),
      sequence: request.sequence,
      aside: request.sequence === EXPLAIN_SEQUENCE,
    });
    send({ type: 'done', id: request.id, text: result.text, finishReason: result.finishReason, stats: result.stats });
  });
}

function prefill(request: PrefillRequest): Promise<void> {
  return withGenerator(request.id, async (model, signal) => {
    const result = await model.prefill({ sequence: request.sequence, prompt: request.prompt, maxNewTokens: request.maxNewTokens, quick: request.quick, nextOnly: request.nextOnly, signal });
    send({ type: 'prefilled', id: request.id, outcome: result.outcome, stats: result.stats });
  });
}

async function shutdown(): Promise<never> {
  await generator?.dispose();
  await model?.decoder.dispose();
  process.exit(0);
}

function handle(message: HostMessage): void {
  switch (message.type) {
    case 'load':
      loading = loading.then(() => load(message));
      break;
    case 'generate':
      void generate(message);
      break;
    case 'prefill':
      void prefill(message);
      break;
    case 'cancel':
      cancellers.get(message.id)?.abort();
      break;
    case 'configure':
      cacheBytes = message.cacheBytes;
      if (generator) generator.cacheBudget = cacheBytes;
      break;
    case 'shutdown':
      void shutdown();
      break;
  }
}

process.on('message', (raw: unknown) => {
  const problem = validateHostMessage(raw);
  if (problem) {
    const id = (raw as { id?: unknown } | null)?.id;
    send({ type: 'error', ...(Number.isInteger(id) ? { id: id as number } : {}), code: 'bad-message', message: problem });
    return;
  }
  handle(raw as HostMessage);
});

// Never outlive the extension host: it may die without a chance to say goodbye. These checks wait while a native call
// blocks the main thread: the heartbeat thread makes the same ones meanwhile.
process.on('disconnect', () => process.exit(0));
const parentPid = process.ppid;
setInterval(() => {
  try {
    // An orphan is re-parented (its ppid changes); kill(pid, 0) checks that the pid still exists.
    if (process.ppid !== parentPid) process.exit(0);
    process.kill(parentPid, 0);
  } catch {
    process.exit(0);
  }
}, PARENT_CHECK_MS);
// Given by the host (WorkerClient): the heartbeat pipe's fd and the stall limit. Absent when started otherwise.
const { values: launch } = parseArgs({ options: { 'heartbeat-fd': { type: 'string' }, 'stall-limit-ms': { type: 'string' } }, strict: false });
const pipeFd = Number(launch['heartbeat-fd']);
const stallLimitMs = Number(launch['stall-limit-ms']);
startHeartbeat({
  parentPid,
  pipeFd: Number.isInteger(pipeFd) && pipeFd > 2 ? pipeFd : undefined,
  stallLimitMs: stallLimitMs > 0 ? stallLimitMs : Infinity,
  send: () => send({ type: 'heartbeat' }),
  warn: (message) => console.error(message),
});
send({ type: 'ready', pid: process.pid });
