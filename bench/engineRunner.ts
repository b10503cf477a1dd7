/**
 * Measures phi-complete's engine on one model folder, in a process of its own (so its peak memory is its own).
 * Usage: node out/bench/engineRunner.js '<json EngineBenchRequest>'; prints one JSON EngineBenchResult line.
 * With an EngineRoundsRequest it answers decode and prefill rounds instead (see support/child).
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { PhiDecoder } from '../src/inference/decoder';
import { providerOf } from '../src/inference/devices';
import type { Device } from '../src/protocol';
import { DEFAULT_PREFILL_CHUNK, Generator, type GenerationResult } from '../src/inference/generator';
import { PhiTokenizer } from '../src/tokenizer/tokenizer';
import { childMain, prefillPrompt, procStatusBytes, type DecodeRound, type PromptRunResult, type RoundsEngine, type RoundsRequest } from './support/child';
import { median } from './support/median';
import { prefillByChunk, timedPrefill, type PrefillByChunk } from './prefill';

/** Where and how our engine runs. */
export interface EngineCommon {
  readonly modelDir: string;
  readonly device: Exclude<Device, 'auto'>;
  readonly threads: number;
}

export type EngineRoundsRequest = RoundsRequest<EngineCommon>;

export interface EngineBenchRequest extends EngineCommon {
  readonly prompt128: readonly number[];
  readonly prompt1024: readonly number[];
  readonly decodeTokens: number;
  /** Code-editing-like prompt text for the speculative-decoding comparison. */
  readonly editingPrompt: string;
  /** Prefill of `prompt` at each of `chunks` tokens a pass, `repeats` times each (after the peak memory is read). */
  readonly chunkComparison?: { readonly prompt: readonly number[]; readonly chunks: readonly number[]; readonly repeats: number };
}

export interface EngineBenchResult {
  readonly engine: 'phi-complete';
  readonly threads: number;
  readonly loadSeconds: number;
  readonly prompt128: PromptRunResult;
  readonly prompt1024: PromptRunResult;
  /** Time to first token after appending 8 tokens to a cached 1,024-token prefix. */
  readonly append8ToCached1024: { readonly reusedTokens: number; readonly timeToFirstTokenMs: number };
  readonly speculative: {
    readonly promptTokens: number;
    /** Median of this many plain and as many speculative runs, alternating; the counts below are their sums. */
    readonly rounds: number;
    readonly plainTokensPerSecond: number;
    readonly speculativeTokensPerSecond: number;
    readonly speedup: number;
    readonly draftedTokens: number;
    /** The longest draft verified in one pass. */
    readonly longestDraft: number;
    readonly acceptedDraftTokens: number;
    /** Verify rows too close to call, recomputed alone so the output stays that of plain decoding. */
    readonly recomputedRows: number;
    /** Decode steps run without drafting because drafts were not paying off. */
    readonly pausedDraftSteps: number;
    readonly acceptanceRate: number;
    readonly identicalOutput: boolean;
    /** Milliseconds of one forward pass over n tokens (a verify of n − 1 drafted tokens) after 128 cached ones. */
    readonly forwardMsByTokens: Record<string, number>;
    /** n·t(1)/t(n): the speed-up when every drafted token is right (a model copying code it has seen). */
    readonly speedupWhenDraftsAreRight: Record<string, number>;
  };
  /** Read before chunkComparison, whose longer chunks need more working memory than the generator's. */
  readonly peakRssBytes: number;
  readonly prefillByChunk?: PrefillByChunk;
}

/** Plain and speculative runs each, alternating. */
const SPECULATIVE_ROUNDS = 3;

function decodeRate(result: GenerationResult): number {
  return result.stats.decodeSteps / (result.stats.decodeMs / 1000);
}

/** Prefill and decode timings after `prompt`, on a generator that has cached nothing yet (so nothing is reused). */
async function promptRun(generator: Generator, prompt: readonly number[], decodeTokens: number): Promise<PromptRunResult> {
  const first = await generator.generate({ prompt, maxNewTokens: 1 });
  if (first.stats.reusedTokens !== 0) throw new Error(`promptRun: ${first.stats.reusedTokens} prompt tokens were already cached`);
  // The same prompt again reuses every cached position but the last: the timing is decoding alone.
  const decoded = await generator.generate({ prompt, maxNewTokens: decodeTokens + 1 });
  return {
    promptTokens: prompt.length,
    timeToFirstTokenMs: first.stats.firstTokenMs,
    promptTokensPerSecond: prompt.length / (first.stats.firstTokenMs / 1000),
    decodeTokens: decoded.stats.decodeSteps,
    decodeMs: decoded.stats.decodeMs,
    decodeTokensPerSecond: decodeRate(decoded),
  };
}

/** The cost of one forward pass over n new tokens after `context` cached ones (best of 3), for each n. */
async function forwardCosts(decoder: PhiDecoder, context: readonly number[], counts: readonly number[]): Promise<Record<string, number>> {
  const cache = decoder.createCache();
  await decoder.forward(context, cache, 1);
  const costs: Record<string, number> = {};
  for (const n of counts) {
    let best = Infinity;
    for (let repeat = 0; repeat < 3; repeat++) {
      cache.rewindTo(context.length);
      const started = performance.now();
      await decoder.forward(context.slice(0, n), cache);
      best = Math.min(best, performance.now() - started);
    }
    costs[String(n)] = best;
  }
  cache.dispose();
  return costs;
}

/** Loads the model as the worker does (a warm-up pass on a GPU, where kernels compile at their first pass). */
async function loadEngine(request: EngineCommon): Promise<{ decoder: PhiDecoder; tokenizer: PhiTokenizer; loadSeconds: number }> {
  const loadStarted = performance.now();
  const decoder = await PhiDecoder.load(request.modelDir, { executionProviders: [providerOf(request.device)], threads: request.threads });
  const tokenizer = PhiTokenizer.fromFile(path.join(request.modelDir, 'tokenizer.json'));
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  if (request.device !== 'cpu') await decoder.warmUp(tokenizer.eosTokenId, DEFAULT_PREFILL_CHUNK);
  return { decoder, tokenizer, loadSeconds };
}

async function main(request: EngineBenchRequest): Promise<EngineBenchResult> {
  const { decoder, tokenizer, loadSeconds } = await loadEngine(request);
  // Warm-up: a full prefill chunk, a shorter one and a few steps.
  const warmUp = new Generator(decoder, tokenizer);
  await warmUp.generate({ prompt: request.prompt128.slice(0, DEFAULT_PREFILL_CHUNK + 8), maxNewTokens: 4 });
  await warmUp.dispose();

  // Each prompt on a generator of its own: the 1,024-token prompt starts with the 128-token one, which a shared
  // generator would reuse (its cached prefix, or a copy of it for a new sequence), timing 896 tokens for 1,024.
  const first = new Generator(decoder, tokenizer);
  const prompt128 = await promptRun(first, request.prompt128, request.decodeTokens);
  await first.dispose();
  const generator = new Generator(decoder, tokenizer);
  const prompt1024 = await promptRun(generator, request.prompt1024, request.decodeTokens);
  const appended = await generator.generate({ prompt: [...request.prompt1024, 13, 198, 50284, 7783, 2124, 1635, 362, 198], maxNewTokens: 1 });

  // Speculative decoding: the model's own continuation is already in the context, as when code is edited.
  const editing = tokenizer.encode(request.editingPrompt);
  const continuation = (await generator.generate({ prompt: editing, maxNewTokens: 48 })).tokens;
  const repetitive = [...editing, ...continuation, 198, ...editing];
  const measure = async (speculative: boolean): Promise<GenerationResult> => {
    await generator.generate({ prompt: repetitive, maxNewTokens: 0 });
    return generator.generate({ prompt: repetitive, maxNewTokens: request.decodeTokens * 2, speculative });
  };
  // Plain and speculative runs alternate, and each rate is the median of its runs: this machine's speed drifts
  // by more than the difference being measured. The generator (and its SpeculationBudget) persists across runs,
  // as it does in the extension.
  const plainRuns: GenerationResult[] = [];
  const fastRuns: GenerationResult[] = [];
  for (let round = 0; round < SPECULATIVE_ROUNDS; round++) {
    plainRuns.push(await measure(false));
    fastRuns.push(await measure(true));
  }
  const forwardMsByTokens = await forwardCosts(decoder, request.prompt128, [1, 2, 3, 5, 9]);
  const rate = (run: GenerationResult): number => run.stats.generatedTokens / (run.stats.decodeMs / 1000);
  const plainRate = median(plainRuns.map(rate));
  const fastRate = median(fastRuns.map(rate));
  const total = (stat: 'draftedTokens' | 'acceptedDraftTokens' | 'recomputedRows' | 'pausedDraftSteps'): number => fastRuns.reduce((sum, run) => sum + run.stats[stat], 0);

  const result: EngineBenchResult = {
    engine: 'phi-complete',
    threads: request.threads,
    loadSeconds,
    prompt128,
    prompt1024,
    append8ToCached1024: { reusedTokens: appended.stats.reusedTokens, timeToFirstTokenMs: appended.stats.firstTokenMs },
    speculative: {
      promptTokens: repetitive.length,
      plainTokensPerSecond: plainRate,
      speculativeTokensPerSecond: fastRate,
      speedup: fastRate / plainRate,
      rounds: SPECULATIVE_ROUNDS,
      draftedTokens: total('draftedTokens'),
      longestDraft: Math.max(...fastRuns.map((run) => run.stats.longestDraft)),
      acceptedDraftTokens: total('acceptedDraftTokens'),
      recomputedRows: total('recomputedRows'),
      pausedDraftSteps: total('pausedDraftSteps'),
      acceptanceRate: total('draftedTokens') ? total('acceptedDraftTokens') / total('draftedTokens') : 0,
      identicalOutput: fastRuns.every((run) => JSON.stringify(run.tokens) === JSON.stringify(plainRuns[0].tokens)),
      forwardMsByTokens,
      speedupWhenDraftsAreRight: Object.fromEntries(Object.entries(forwardMsByTokens).map(([n, ms]) => [n, (Number(n) * forwardMsByTokens['1']) / ms])),
    },
    peakRssBytes: procStatusBytes('VmHWM'),
  };
  await generator.dispose();
  const comparison = request.chunkComparison;
  const byChunk = comparison && await prefillByChunk(decoder, tokenizer, comparison.prompt, comparison.chunks, comparison.repeats);
  await decoder.dispose();
  return byChunk ? { ...result, prefillByChunk: byChunk } : result;
}

/**
 * Decode rounds: one generator (so one cache) per prompt, each round continuing where the last one stopped.
 * Prefills: each on a generator of its own, so into an empty cache, in the generator's chunks (timedPrefill).
 */
async function prepareRounds(request: EngineRoundsRequest): Promise<RoundsEngine<DecodeRound>> {
  const { decoder, tokenizer } = await loadEngine(request);
  const eos = tokenizer.eosTokenId;
  // An <|endoftext|> (random weights pick it like any other token) ends a request; the next one goes on after it.
  const extend = (history: number[], result: GenerationResult): void => {
    history.push(...result.tokens, ...(result.finishReason === 'eos' ? [eos] : []));
  };
  const slots: { readonly generator: Generator; readonly history: number[] }[] = [];
  for (const prompt of [request.prompt128, request.prompt1024]) {
    const generator = new Generator(decoder, tokenizer);
    const history = [...prompt];
    extend(history, await generator.generate({ prompt: history, maxNewTokens: 1 }));
    slots.push({ generator, history });
  }
  const decode = async ({ generator, history }: (typeof slots)[number]): Promise<number> => {
    let steps = 0;
    let ms = 0;
    for (let tries = 0; steps < request.decodeTokens && tries < request.decodeTokens; tries++) {
      const result = await generator.generate({ prompt: history, maxNewTokens: request.decodeTokens - steps + 1 });
      extend(history, result);
      steps += result.stats.decodeSteps;
      ms += result.stats.decodeMs;
    }
    return steps / (ms / 1000);
  };
  return {
    round: async () => ({ context128: await decode(slots[0]), context1024: await decode(slots[1]) }),
    prefill: (index) => timedPrefill(decoder, tokenizer, prefillPrompt(request, index)),
    dispose: async () => {
      for (const { generator } of slots) await generator.dispose();
      await decoder.dispose();
    },
  };
}

childMain('engine bench', main, prepareRounds);
