/**
 * Child process that runs a GGUF through llama.cpp (node-llama-cpp) on the CPU and prints one JSON object on
 * stdout. It runs in its own process so that its memory figures (VmHWM) are llama.cpp's alone.
 *
 *   node out/bench/peers/llamaCppRunner.js '<RunnerRequest as JSON>'
 *
 * Token ids go in and come out directly: nothing is tokenised, so the timings are llama.cpp's evaluation only.
 * llama.cpp's own log lines go to stderr.
 */
import { pathToFileURL } from 'node:url';
import { checkPeerRequest, childMain, prefillPrompt, prefillRun, procStatusBytes, promptRunResult, type DecodeRound, type PeerRequest, type PrefillRun, type PromptRunResult, type RoundsEngine, type RoundsRequest, type TimedGeneration } from '../support/child';

export type { PromptRunResult } from '../support/child';

export interface RunnerCommon {
  /** Entry file of the node-llama-cpp package (see ensureNodeLlamaCpp). */
  readonly modulePath: string;
  readonly ggufPath: string;
  readonly threads: number;
  readonly flashAttention: boolean;
}

export type RunnerRequest = PeerRequest<RunnerCommon>;
export type RunnerRoundsRequest = RoundsRequest<RunnerCommon>;

export interface LlamaCppResult {
  readonly engine: 'llama.cpp';
  /** node-llama-cpp's llama.cpp release, e.g. "v0.5.0" of ggml-org/llama.cpp. */
  readonly llamaCppRelease: string;
  readonly threads: number;
  readonly contextSize: number;
  readonly batchSize: number;
  /** Whether llama.cpp used flash attention: as its log says, else as requested. */
  readonly flashAttention: boolean | 'auto';
  readonly kvCacheType: string;
  /** getLlama + loadModel + createContext. */
  readonly loadSeconds: number;
  readonly rssAfterLoadBytes: number;
  /** VmHWM at the end: the process's peak resident set (mmap'ed model pages included). */
  readonly peakRssBytes: number;
  readonly prompt128: PromptRunResult;
  readonly prompt1024: PromptRunResult;
}

export interface GreedyResult {
  readonly tokens: number[];
}

// ---------------------------------------------------------------------------------------------------------------
// The part of node-llama-cpp 3.22's API used here (from its .d.ts files). node-llama-cpp is not a project
// dependency, so its own types are not available at compile time.

type LogLevel = 'disabled' | 'fatal' | 'error' | 'warn' | 'info' | 'log' | 'debug';

interface NodeLlamaCpp {
  getLlama(options: {
    gpu: false;
    /** "never": fail loudly if no prebuilt binary fits, instead of trying a cmake build (offline machines). */
    build: 'never';
    maxThreads: number;
    logLevel: LogLevel;
    logger: (level: LogLevel, message: string) => void;
  }): Promise<Llama>;
}

interface Llama {
  readonly llamaCppRelease: { readonly repo: string; readonly release: string };
  loadModel(options: { modelPath: string; gpuLayers: number }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}

interface LlamaModel {
  createContext(options: {
    contextSize: number;
    sequences: number;
    threads: { ideal: number; min: number };
    flashAttention: boolean;
  }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}

interface LlamaContext {
  readonly contextSize: number;
  readonly batchSize: number;
  readonly flashAttention: boolean | 'auto';
  /** ggml_type: 0 = F32, 1 = F16, … */
  readonly kvCacheKeyType: number;
  getSequence(): LlamaContextSequence;
  dispose(): Promise<void>;
}

/** The sampler settings this runner passes; see GREEDY. */
interface SamplingOptions {
  temperature: number;
  yieldEogToken: boolean;
}

interface LlamaContextSequence {
  /**
   * Appends `tokens` to the sequence and yields one sampled token per step; each further step evaluates the
   * token just yielded. Breaking out of the loop stops before evaluating the last yielded token.
   */
  evaluate(tokens: number[], options: SamplingOptions): AsyncGenerator<number, void, void | number | number[]>;
  clearHistory(): Promise<void>;
}

/**
 * Greedy decoding. In node-llama-cpp 3.22, temperature 0 puts llama.cpp's greedy (argmax) sampler in the chain
 * instead of top-k/top-p/temperature, and leaving repeatPenalty out adds no penalty sampler. yieldEogToken keeps
 * going past <|endoftext|> (random weights produce it like any other token) so the token count is exact.
 */
const GREEDY: SamplingOptions = { temperature: 0, yieldEogToken: true };

const GGML_TYPE_NAMES: Record<number, string> = { 0: 'F32', 1: 'F16', 8: 'Q8_0', 2: 'Q4_0' };

/** Context size at least this large, so the 1,024-token prompt plus its decode always fits. */
const MIN_CONTEXT_SIZE = 1100;

// ---------------------------------------------------------------------------------------------------------------

/** Greedy tokens after `prompt`, starting from an empty sequence; `count` ≥ 1. */
async function generate(sequence: LlamaContextSequence, prompt: readonly number[], count: number): Promise<TimedGeneration> {
  await sequence.clearHistory();
  return continueGreedy(sequence, prompt, count);
}

/** Evaluates `tokens` after the sequence's history and yields `count` ≥ 1 greedy tokens, timed (the last one is not evaluated). */
async function continueGreedy(sequence: LlamaContextSequence, tokens: readonly number[], count: number): Promise<TimedGeneration> {
  const generated: number[] = [];
  const started = performance.now();
  let firstTokenAt = started;
  for await (const token of sequence.evaluate([...tokens], GREEDY)) {
    if (generated.length === 0) firstTokenAt = performance.now();
    generated.push(token);
    if (generated.length === count) break;
  }
  const finished = performance.now();
  if (generated.length !== count) throw new Error(`llama.cpp stopped after ${generated.length} of ${count} tokens`);
  return { tokens: generated, timeToFirstTokenMs: firstTokenAt - started, decodeMs: finished - firstTokenAt };
}

async function timePrompt(sequence: LlamaContextSequence, prompt: readonly number[], decodeTokens: number): Promise<PromptRunResult> {
  return promptRunResult(prompt.length, await generate(sequence, prompt, decodeTokens + 1));
}

/** node-llama-cpp loaded with the model; `flashAttention()` is what llama.cpp's log said about its last context. */
async function loadModel(common: RunnerCommon): Promise<{ llama: Llama; model: LlamaModel; flashAttention: () => boolean | undefined }> {
  const nodeLlamaCpp = (await import(pathToFileURL(common.modulePath).href)) as NodeLlamaCpp;
  // What llama.cpp actually did about flash attention shows only in an info log line; it is reported as a check.
  let flashAttention: boolean | undefined;
  const llama = await nodeLlamaCpp.getLlama({
    gpu: false,
    build: 'never',
    maxThreads: common.threads,
    logLevel: 'info',
    logger: (level, message) => {
      const choice = /Flash Attention (enabled|disabled)/i.exec(message);
      if (choice) flashAttention = choice[1].toLowerCase() === 'enabled';
      if (level === 'warn' || level === 'error' || level === 'fatal') process.stderr.write(`[llama.cpp ${level}] ${message}\n`);
    },
  });
  const model = await llama.loadModel({ modelPath: common.ggufPath, gpuLayers: 0 });
  return { llama, model, flashAttention: () => flashAttention };
}

function createContext(model: LlamaModel, common: RunnerCommon, positions: number): Promise<LlamaContext> {
  return model.createContext({
    contextSize: Math.max(MIN_CONTEXT_SIZE, positions),
    sequences: 1,
    // min = ideal: always this many threads, never fewer.
    threads: { ideal: common.threads, min: common.threads },
    flashAttention: common.flashAttention,
  });
}

async function run(request: RunnerRequest): Promise<LlamaCppResult | GreedyResult> {
  checkPeerRequest(request);
  const loadStarted = performance.now();
  const { llama, model, flashAttention } = await loadModel(request);
  const longest = request.mode === 'bench'
    ? Math.max(request.prompt128.length, request.prompt1024.length) + request.decodeTokens + 1
    : request.prompt.length + request.tokens;
  const context = await createContext(model, request, longest);
  const sequence = context.getSequence();
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const rssAfterLoadBytes = procStatusBytes('VmRSS');

  try {
    if (request.mode === 'greedy') {
      return { tokens: (await generate(sequence, request.prompt, request.tokens)).tokens };
    }
    // Warm-up: the first evaluation pays for page faults on the mmap'ed weights and one-time allocations.
    await generate(sequence, request.prompt128.slice(0, 16), 4);
    const prompt128 = await timePrompt(sequence, request.prompt128, request.decodeTokens);
    const prompt1024 = await timePrompt(sequence, request.prompt1024, request.decodeTokens);
    return {
      engine: 'llama.cpp',
      llamaCppRelease: `${llama.llamaCppRelease.repo}@${llama.llamaCppRelease.release}`,
      threads: request.threads,
      contextSize: context.contextSize,
      batchSize: context.batchSize,
      flashAttention: flashAttention() ?? context.flashAttention,
      kvCacheType: GGML_TYPE_NAMES[context.kvCacheKeyType] ?? `ggml type ${context.kvCacheKeyType}`,
      loadSeconds,
      rssAfterLoadBytes,
      peakRssBytes: procStatusBytes('VmHWM'),
      prompt128,
      prompt1024,
    };
  } finally {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }
}

/**
 * Decode rounds: one context per prompt (in one context, llama.cpp's attention would span both sequences' cells),
 * each round continuing from the token the last one yielded. Prefills: a third context, its history cleared before
 * each, so every prefill starts from an empty cache; llama.cpp evaluates the prompt in batches of the context's
 * batch size, as its own generation does.
 */
async function prepareRounds(request: RunnerRoundsRequest): Promise<RoundsEngine<DecodeRound>> {
  checkPeerRequest(request);
  const { llama, model } = await loadModel(request);
  const slots: { readonly context: LlamaContext; readonly sequence: LlamaContextSequence; next: number }[] = [];
  for (const prompt of [request.prompt128, request.prompt1024]) {
    const context = await createContext(model, request, prompt.length + 1 + request.rounds * (request.decodeTokens + 1));
    const sequence = context.getSequence();
    slots.push({ context, sequence, next: (await generate(sequence, prompt, 1)).tokens[0] });
  }
  const decode = async (slot: (typeof slots)[number]): Promise<number> => {
    // The first token comes from evaluating the last one yielded; decodeTokens more are timed, as in generate.
    const run = await continueGreedy(slot.sequence, [slot.next], request.decodeTokens + 1);
    slot.next = run.tokens[run.tokens.length - 1];
    return request.decodeTokens / (run.decodeMs / 1000);
  };
  let prefillSlot: { readonly context: LlamaContext; readonly sequence: LlamaContextSequence } | undefined;
  if (request.prefillPrompts.length > 0) {
    const longest = request.prefillPrompts.reduce((a, b) => (b.length > a.length ? b : a));
    const context = await createContext(model, request, longest.length + 1);
    prefillSlot = { context, sequence: context.getSequence() };
    // Warm-up: the context's first evaluation of a full batch.
    await generate(prefillSlot.sequence, longest.slice(0, context.batchSize), 1);
  }
  const prefill = async (index: number): Promise<PrefillRun> => {
    const prompt = prefillPrompt(request, index);
    if (!prefillSlot) throw new Error('llamaCppRunner: no prefill prompts were given');
    return prefillRun(prompt.length, (await generate(prefillSlot.sequence, prompt, 1)).timeToFirstTokenMs);
  };
  return {
    round: async () => ({ context128: await decode(slots[0]), context1024: await decode(slots[1]) }),
    prefill,
    dispose: async () => {
      await prefillSlot?.context.dispose();
      for (const { context } of slots) await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

childMain('llamaCppRunner', run, prepareRounds);
