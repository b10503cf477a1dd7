/**
 * llama.cpp as the benchmark's peer engine, through node-llama-cpp. node-llama-cpp is not a project dependency:
 * ensureNodeLlamaCpp installs a pinned version into a cache folder on first use, and every run happens in a
 * child process (llamaCppRunner) so that its memory is measured on its own.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { defaultCacheDir, ensurePinnedInstall } from '../support/cache';
import { benchRequest, greedyRequest, roundsRequest, runJsonChild, startRoundsChild, type DecodeRound, type RoundsChild } from '../support/child';
import type { GreedyResult, LlamaCppResult, RunnerCommon } from './llamaCppRunner';

export type { LlamaCppResult } from './llamaCppRunner';

export const NODE_LLAMA_CPP_VERSION = '3.22.1';
/** Prebuilt llama.cpp binaries for this platform (CPU build; GPU variants are separate, far larger packages). */
const BINARY_PACKAGE = '@node-llama-cpp/linux-x64';

/**
 * Installs node-llama-cpp (pinned) and its linux-x64 binaries into `<cacheDir>/node-llama-cpp-<version>` unless
 * they are already there, and returns the package's entry file, to be loaded with import() (it is ESM only).
 * `--omit=optional` skips the optional packages for every other platform and GPU (≈85 MB instead of ≈730 MB).
 */
export function ensureNodeLlamaCpp(cacheDir: string = defaultCacheDir()): string {
  if (`${process.platform}-${process.arch}` !== 'linux-x64') {
    throw new Error(`the llama.cpp peer is set up for linux-x64 only (this is ${process.platform}-${process.arch})`);
  }
  const prefix = path.join(cacheDir, `node-llama-cpp-${NODE_LLAMA_CPP_VERSION}`);
  ensurePinnedInstall({ prefix, packages: [`node-llama-cpp@${NODE_LLAMA_CPP_VERSION}`, `${BINARY_PACKAGE}@${NODE_LLAMA_CPP_VERSION}`] });
  // Resolve as Node would from inside the prefix (honours the package's "exports").
  return createRequire(path.join(prefix, 'package.json')).resolve('node-llama-cpp');
}

const RUNNER_SCRIPT = path.join(__dirname, 'llamaCppRunner.js');

/** What every runner request carries: the model, the threads, flash attention (off unless asked), node-llama-cpp installed. */
function runnerCommon(options: { readonly ggufPath: string; readonly threads: number; readonly flashAttention?: boolean; readonly cacheDir?: string }): RunnerCommon {
  return {
    modulePath: ensureNodeLlamaCpp(options.cacheDir),
    ggufPath: path.resolve(options.ggufPath),
    threads: options.threads,
    flashAttention: options.flashAttention ?? false,
  };
}

export interface BenchLlamaCppOptions {
  readonly ggufPath: string;
  readonly threads: number;
  readonly prompt128: number[];
  readonly prompt1024: number[];
  /** Greedy tokens timed after each prompt's first token. */
  readonly decodeTokens: number;
  /**
   * Default false. node-llama-cpp's default ("auto") lets llama.cpp turn flash attention on for the CPU, and on
   * the 2-core Zen 4 machines here that halved decode speed at 1,024 tokens of context (≈7 vs ≈15 tok/s) while
   * changing little at 128, so the peer runs without it unless asked.
   */
  readonly flashAttention?: boolean;
  readonly cacheDir?: string;
}

/**
 * llama.cpp's speed on the GGUF, CPU only: time to first token (prefill) and decode speed after a 128- and a
 * 1,024-token prompt, plus load time and memory. Token ids go in directly, so no tokenisation is timed.
 */
export async function benchLlamaCpp(options: BenchLlamaCppOptions): Promise<LlamaCppResult> {
  return runJsonChild<LlamaCppResult>(RUNNER_SCRIPT, 'llama.cpp runner', benchRequest(runnerCommon(options), options));
}

/** llama.cpp loaded with both prompts evaluated, answering decode rounds and prefills of `prefillPrompts` (see RoundsRequest). */
export function startLlamaCppRounds(options: BenchLlamaCppOptions & { readonly rounds: number; readonly prefillPrompts?: readonly (readonly number[])[] }): Promise<RoundsChild<DecodeRound>> {
  return startRoundsChild<DecodeRound>(RUNNER_SCRIPT, 'llama.cpp runner', roundsRequest(runnerCommon(options), options, options.rounds, options.prefillPrompts));
}

export interface LlamaCppGreedyOptions {
  readonly ggufPath: string;
  readonly threads: number;
  readonly prompt: number[];
  /** How many greedy tokens to generate. */
  readonly tokens: number;
  /** Default false, as for benchLlamaCpp. */
  readonly flashAttention?: boolean;
  readonly cacheDir?: string;
}

/** llama.cpp's greedy continuation (temperature 0, no repeat penalty) of `prompt`, as token ids. */
export async function llamaCppGreedy(options: LlamaCppGreedyOptions): Promise<number[]> {
  return (await runJsonChild<GreedyResult>(RUNNER_SCRIPT, 'llama.cpp runner', greedyRequest(runnerCommon(options), options.prompt, options.tokens))).tokens;
}
