/**
 * Child process that scores a GGUF through llama.cpp (node-llama-cpp) for the eval, on the CPU:
 *   node out/bench/eval/llamaCppEvalRunner.js '{"requestFile": "<EvalRequest as JSON>"}'
 * (a file, because the prompts' token ids are far more than one command-line argument may hold).
 * Perplexity: each window evaluated in one controlledEvaluate call, reading at every position the logit of the
 * window's next token, the row's largest logit (includeTop 1: node-llama-cpp 3.22's includeMax returns no extra
 * entry) and its total weight Σ exp(logit − max), so
 * −log p = max + log(weight) − logit. Completions: greedy tokens after each prompt from an empty history, to
 * `maxTokens` or <|endoftext|>; the parent detokenises them and cuts at the stop sequences.
 */
import * as fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { childMain } from '../support/child';

export interface EvalRequest {
  /** Entry file of the node-llama-cpp package (see ensureNodeLlamaCpp). */
  readonly modulePath: string;
  readonly ggufPath: string;
  readonly threads: number;
  readonly windows: readonly (readonly number[])[];
  readonly prompts: readonly (readonly number[])[];
  readonly maxTokens: number;
  readonly eosTokenId: number;
}

export interface EvalResult {
  readonly llamaCppRelease: string;
  /** −log p of every window's tokens but the first, window after window. */
  readonly nll: number[];
  readonly completions: number[][];
  readonly perplexitySeconds: number;
  readonly completionSeconds: number;
}

// The part of node-llama-cpp 3.22's API used here (from its .d.ts files; it is not a project dependency).
type Options = { generateNext: { logits: { filter: { tokens: number[]; includeTop: number } }; totalLogitWeight: boolean } };
interface Sequence {
  controlledEvaluate(input: (number | [number, Options])[]): Promise<({ next: { logits?: Map<number, number>; totalLogitWeight?: number } } | undefined)[]>;
  evaluate(tokens: number[], options: { temperature: number; yieldEogToken: boolean }): AsyncGenerator<number, void, void | number | number[]>;
  clearHistory(): Promise<void>;
}
interface Context {
  getSequence(): Sequence;
  dispose(): Promise<void>;
}
interface Model {
  createContext(options: { contextSize: number; sequences: number; threads: { ideal: number; min: number }; flashAttention: boolean }): Promise<Context>;
  dispose(): Promise<void>;
}
interface Llama {
  readonly llamaCppRelease: { readonly repo: string; readonly release: string };
  loadModel(options: { modelPath: string; gpuLayers: number }): Promise<Model>;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(options: { gpu: false; build: 'never'; maxThreads: number; logLevel: 'warn'; logger: (level: string, message: string) => void }): Promise<Llama>;
}

async function windowNll(sequence: Sequence, window: readonly number[]): Promise<number[]> {
  await sequence.clearHistory();
  const input = window.map((token, i): number | [number, Options] => (i + 1 < window.length
    ? [token, { generateNext: { logits: { filter: { tokens: [window[i + 1]], includeTop: 1 } }, totalLogitWeight: true } }]
    : token));
  const outputs = await sequence.controlledEvaluate(input);
  const nll: number[] = [];
  for (let i = 0; i + 1 < window.length; i++) {
    const next = outputs[i]?.next;
    const target = next?.logits?.get(window[i + 1]);
    if (!next?.logits || target === undefined || next.totalLogitWeight === undefined) throw new Error(`llama.cpp gave no logits at position ${i}`);
    const max = Math.max(...next.logits.values());
    nll.push(max + Math.log(next.totalLogitWeight) - target);
  }
  return nll;
}

async function greedy(sequence: Sequence, prompt: readonly number[], maxTokens: number, eos: number): Promise<number[]> {
  await sequence.clearHistory();
  const tokens: number[] = [];
  if (maxTokens <= 0) return tokens;
  for await (const token of sequence.evaluate([...prompt], { temperature: 0, yieldEogToken: true })) {
    if (token === eos) break;
    tokens.push(token);
    if (tokens.length >= maxTokens) break;
  }
  return tokens;
}

async function run(argument: { readonly requestFile: string }): Promise<EvalResult> {
  const request = JSON.parse(fs.readFileSync(argument.requestFile, 'utf8')) as EvalRequest;
  const nodeLlamaCpp = (await import(pathToFileURL(request.modulePath).href)) as NodeLlamaCpp;
  const llama = await nodeLlamaCpp.getLlama({
    gpu: false, build: 'never', maxThreads: request.threads, logLevel: 'warn',
    logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),
  });
  const model = await llama.loadModel({ modelPath: request.ggufPath, gpuLayers: 0 });
  const longest = Math.max(...request.windows.map((w) => w.length), ...request.prompts.map((p) => p.length + request.maxTokens), 1);
  const context = await model.createContext({ contextSize: longest + 8, sequences: 1, threads: { ideal: request.threads, min: request.threads }, flashAttention: false });
  try {
    const sequence = context.getSequence();
    let started = performance.now();
    const nll: number[] = [];
    for (const window of request.windows) nll.push(...(await windowNll(sequence, window)));
    const perplexitySeconds = (performance.now() - started) / 1000;
    started = performance.now();
    const completions: number[][] = [];
    for (const prompt of request.prompts) completions.push(await greedy(sequence, prompt, request.maxTokens, request.eosTokenId));
    return {
      llamaCppRelease: `${llama.llamaCppRelease.repo}@${llama.llamaCppRelease.release}`,
      nll, completions, perplexitySeconds, completionSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }
}

childMain('llamaCppEvalRunner', run);
