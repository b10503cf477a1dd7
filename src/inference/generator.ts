/**
 * The generation engine: prompt → streamed text, on one decoder and the cached windows of the files being read.
 * The facade the worker, the tests and the benchmarks use; its parts:
 *
 *   scheduler.ts   which work runs next (latest request wins; an explanation yields only to an explanation;
 *                  warm-ups only while idle)
 *   windows.ts     the cached windows (a cache each), the longest cached prefix of a prompt, the memory budget
 *   decodeLoop.ts  prefill in chunks, then sample, stream and feed a token a step (with prompt-lookup drafts)
 *
 *   prompt tokens ──► its sequence's window sharing the longest prefix (a new window: a copy of the longest prefix
 *        another shares) ──► rewind to that prefix ──► prefill the rest in chunks ──► decode loop
 */
import { performance } from 'node:perf_hooks';
import type { FinishReason, GenerationStats, PrefillOutcome, PrefillStats, QuickPrompt, SamplingParams } from '../shared/engineTypes';
import type { PhiTokenizer } from '../tokenizer/tokenizer';
import type { PhiDecoder } from './decoder';
import { DecodeLoop, feedChunks, StatsAccumulator, TokenOutput } from './decodeLoop';
import { GREEDY } from './sampler';
import { Scheduler, type Unrun } from './scheduler';
import { SpeculationBudget } from './speculationBudget';
import { uncachedTokens, WindowPool, type CachedPrefix, type CacheWindow } from './windows';

// Re-exported for code that imports them from the engine; the host imports them from src/protocol.ts.
export type { FinishReason, GenerationStats, PrefillOutcome, PrefillStats, QuickPrompt } from '../shared/engineTypes';

export interface GenerationRequest {
  /** Text, or token ids (benchmarks and tests feed ids directly). */
  readonly prompt: string | readonly number[];
  readonly maxNewTokens: number;
  readonly sampling?: SamplingParams;
  /** Generation ends before the first occurrence of any of these strings. */
  readonly stop?: readonly string[];
  /** Prompt-lookup speculative decoding (greedy sampling only; output is identical to plain decoding). */
  readonly speculative?: boolean;
  /** Receives the text as it is generated. */
  readonly onText?: (delta: string) => void;
  /** Cancels this request. */
  readonly signal?: AbortSignal;
  /** The cached sequence this request reads and extends (one per document); DEFAULT_SEQUENCE when absent. */
  readonly sequence?: string;
  /**
   * A side request (Explain Selection): scheduled as an explanation (scheduler.ts), it keeps its prompt's start, and
   * it never evicts the most recently used sequence that is not one (the file being edited).
   */
  readonly aside?: boolean;
  /** A shorter prompt for the same place, generated from instead when `prompt` would read too much text not cached yet. */
  readonly quick?: QuickPrompt;
}

/** Warms a sequence's cache with a prompt before a request for it comes (Generator.prefill). */
export interface PrefillRequest {
  readonly sequence?: string;
  /** Text, or token ids. All but its last token are fed: the request that follows feeds that one for its logits. */
  readonly prompt: string | readonly number[];
  /** What the request that follows will ask for: the prompt is cut, and the cache sized, as that request will. */
  readonly maxNewTokens: number;
  /**
   * That request's quick prompt: where the request would answer from it (GenerationRequest.quick), its window is
   * read first, then the prompt's own.
   */
  readonly quick?: QuickPrompt;
  /**
   * Only what the request sent now would read (the quick prompt's window where it would answer from it), not the
   * prompt's own window after it: for typing, where the next keystroke comes before much more could be read.
   */
  readonly nextOnly?: boolean;
  readonly signal?: AbortSignal;
}

export interface PrefillResult {
  readonly outcome: PrefillOutcome;
  readonly stats: PrefillStats;
}

export interface GenerationResult {
  readonly text: string;
  readonly tokens: readonly number[];
  readonly finishReason: FinishReason;
  readonly stats: GenerationStats;
}

export interface GeneratorOptions {
  /** Prompt tokens per forward pass while prefilling; cancellation is checked between chunks. */
  readonly prefillChunk?: number;
  /** Prompt tokens in Generator.prefill's first forward pass (see DEFAULT_WARM_UP_CHUNK). */
  readonly warmUpChunk?: number;
  /** Longest draft verified in one pass. */
  readonly maxDraftTokens?: number;
  /**
   * Pause drafting while verify passes yield fewer tokens per millisecond than plain steps (SpeculationBudget).
   * Default true; false drafts whenever the context offers one (output is the same, only timing-free).
   */
  readonly adaptiveSpeculation?: boolean;
  /** Bytes the windows' caches may hold together (see Generator.cacheBudget); unlimited by default. */
  readonly cacheBudgetBytes?: number;
}

/** The stats of a request cancelled before it ran. */
const NO_GENERATION: GenerationStats = new StatsAccumulator(0).stats(0);
const NO_PREFILL: PrefillStats = { quick: false, promptTokens: 0, truncatedTokens: 0, reusedTokens: 0, prefilledTokens: 0, prefillMs: 0 };

/** The sequence of requests that name none. */
export const DEFAULT_SEQUENCE = 'default';

/** A long prompt's start is cut in steps of this many tokens, so the kept part stays stable while the user types. */
const TRUNCATION_STEP = 256;

/**
 * Prompt tokens per forward pass while prefilling: on a 2-core CPU larger chunks read hardly faster on a quiet
 * machine and take more working memory (docs/benchmarks.md, Where prefill time goes); smaller ones also let a
 * newer request cancel a prefill sooner.
 */
export const DEFAULT_PREFILL_CHUNK = 32;
/**
 * Prompt tokens in a prefill's (a warm-up's) first forward pass; each further pass doubles it, up to the prefill
 * chunk. A request that comes meanwhile waits for the pass in flight: a warm-up that follows typing reads a few
 * tokens at a time anyway, and one that starts when the cursor rests starts short, in case typing resumes, and
 * reads at full speed once the rest has lasted.
 */
export const DEFAULT_WARM_UP_CHUNK = 8;

/** A prompt's tokens as a request reads them: cut at the start, in steps, when too long for the model. */
interface PromptTokens {
  readonly tokens: readonly number[];
  /** Before the cut. */
  readonly promptTokens: number;
  readonly truncatedTokens: number;
}

/** The prompt a request reads (its own or its quick one) and where it is cached. */
interface ChosenPrompt {
  readonly prompt: PromptTokens;
  readonly found: CachedPrefix;
  readonly quick: boolean;
}

/** A prompt made ready on its window: the window rewound to the reused prefix and sized for the request. */
interface Prepared extends PromptTokens {
  readonly window: CacheWindow;
  readonly reusedTokens: number;
  readonly copiedTokens: number;
}

function cancelledGeneration(): GenerationResult {
  return { text: '', tokens: [], finishReason: 'cancelled', stats: NO_GENERATION };
}

export class Generator {
  private readonly windows: WindowPool;
  private readonly scheduler = new Scheduler();
  private readonly prefillChunk: number;
  private readonly warmUpChunk: number;
  private readonly maxDraftTokens: number;
  /** Kept across requests: what a verify pass costs depends on the model and the machine, not the prompt. */
  private readonly speculation: SpeculationBudget | undefined;

  constructor(private readonly decoder: PhiDecoder, private readonly tokenizer: PhiTokenizer, options: GeneratorOptions = {}) {
    this.prefillChunk = options.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
    this.warmUpChunk = options.warmUpChunk ?? DEFAULT_WARM_UP_CHUNK;
    // Drafts start at 2 tokens and grow to 4 while accepted whole (why 4: docs/benchmarks.md, Speculative decoding).
    this.maxDraftTokens = options.maxDraftTokens ?? 4;
    this.speculation = options.adaptiveSpeculation === false ? undefined : new SpeculationBudget();
    this.windows = new WindowPool(() => decoder.createCache(), options.cacheBudgetBytes ?? Infinity);
  }

  /** Tokens whose keys and values are cached for `sequence`'s most recently used window (for inspection and tests). */
  cachedTokens(sequence = DEFAULT_SEQUENCE): readonly number[] {
    return this.windows.tokensOf(sequence);
  }

  /** The cached sequences' names, a name per window, least recently used first. */
  get sequenceNames(): string[] {
    return this.windows.names;
  }

  /** Bytes the windows' caches hold together. */
  get cacheBytes(): number {
    return this.windows.bytes;
  }

  /** The memory budget for all caches together, in bytes. */
  get cacheBudget(): number {
    return this.windows.budget;
  }

  /**
   * Sets the memory budget and evicts least recently used windows down to it now (never the one in use, or,
   * while none is, the most recently used).
   */
  set cacheBudget(bytes: number) {
    if (!(bytes >= 0)) throw new RangeError(`Generator: cache budget ${bytes} bytes`);
    this.windows.budget = bytes;
  }

  /** Starts a request: a completion, or with `aside` an explanation (see scheduler.ts for which cancels which). */
  generate(request: GenerationRequest): Promise<GenerationResult> {
    const called = performance.now();
    const cancelled = cancelledGeneration();
    const priority = request.aside ? 'explanation' : 'request';
    return this.scheduler.run(priority, request.signal, { cancelled, refused: cancelled }, (signal) => this.whileActive(() => this.runGeneration(request, signal, called)));
  }

  /**
   * Warms `request.sequence`'s cache for the request that would be sent now, in chunks, as a window read: refused
   * ("busy") while a generation is in flight or queued; any later request cancels it at its next chunk boundary,
   * and the rows fed until then stay cached. Reads what that request would read first (its quick prompt, where it
   * would answer from it), then, unless `nextOnly`, the prompt's own window. A cache that already holds a prompt,
   * or extends it (a completion generated after it), is left as it is.
   */
  prefill(request: PrefillRequest): Promise<PrefillResult> {
    const unrun: Unrun<PrefillResult> = { cancelled: { outcome: 'cancelled', stats: NO_PREFILL }, refused: { outcome: 'busy', stats: NO_PREFILL } };
    return this.scheduler.run('windowRead', request.signal, unrun, (signal) => this.whileActive(() => this.runPrefill(request, signal)));
  }

  /** Cancels every request in flight or waiting. */
  cancel(): void {
    this.scheduler.cancel();
  }

  /** Cancels every request and waits for them to stop before freeing the caches (ONNX Runtime may be using one). */
  async dispose(): Promise<void> {
    this.cancel();
    await this.scheduler.drained();
    this.windows.dispose();
  }

  /** Runs work that marks the window it uses active (never evicted); none is once it ends. */
  private async whileActive<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } finally {
      this.windows.active = undefined;
    }
  }

  /** The prompt's tokens as a request for `maxNewTokens` reads them: a prompt too long for the model loses its start, in steps. */
  private promptTokens(prompt: string | readonly number[], maxNewTokens: number): PromptTokens {
    let tokens = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [...prompt];
    if (tokens.length === 0) tokens = [this.tokenizer.eosTokenId];
    const room = this.decoder.config.max_position_embeddings - maxNewTokens;
    const truncatedTokens = tokens.length > room ? Math.min(tokens.length - 1, Math.ceil((tokens.length - room) / TRUNCATION_STEP) * TRUNCATION_STEP) : 0;
    return { tokens: tokens.slice(truncatedTokens), promptTokens: tokens.length, truncatedTokens };
  }

  /**
   * The prompt a request on sequence `name` reads: its own, or its quick prompt where its own has more tokens
   * cached nowhere than the quick prompt's readLimit.
   */
  private choosePrompt(name: string, prompt: PromptTokens, quick: QuickPrompt | undefined, maxNewTokens: number): ChosenPrompt {
    const found = this.windows.cachedPrefix(name, prompt.tokens);
    if (!quick || uncachedTokens(found, prompt.tokens) <= quick.readLimit) return { prompt, found, quick: false };
    const quickTokens = this.promptTokens(quick.prompt, maxNewTokens);
    return { prompt: quickTokens, found: this.windows.cachedPrefix(name, quickTokens.tokens), quick: true };
  }

  /**
   * Readies the prompt's window for a request of `maxNewTokens` (WindowPool.prepare) and makes it the active one.
   * `found`: the prompt's cachedPrefix, when known.
   */
  private prepare(name: string, aside: boolean, prompt: PromptTokens, maxNewTokens: number, keepLonger: boolean, found = this.windows.cachedPrefix(name, prompt.tokens)): Prepared {
    // The positions the request may fill: the prompt, what it generates and the longest draft verified past it.
    const positions = Math.min(this.decoder.config.max_position_embeddings, prompt.tokens.length + maxNewTokens + this.maxDraftTokens);
    const prepared = this.windows.prepare(name, aside, prompt.tokens, positions, keepLonger, found);
    this.windows.active = prepared.window;
    return { ...prompt, ...prepared };
  }

  private async runPrefill(request: PrefillRequest, signal: AbortSignal): Promise<PrefillResult> {
    const started = performance.now();
    let prefilled = 0;
    let quick = false;
    let last: Prepared | undefined;
    const result = (outcome: PrefillOutcome): PrefillResult => ({
      outcome,
      stats: {
        quick,
        promptTokens: last?.promptTokens ?? 0,
        truncatedTokens: last?.truncatedTokens ?? 0,
        reusedTokens: last?.reusedTokens ?? 0,
        prefilledTokens: prefilled,
        prefillMs: performance.now() - started,
      },
    });
    if (signal.aborted) return result('cancelled');
    const name = request.sequence ?? DEFAULT_SEQUENCE;
    const maxNewTokens = Math.max(0, Math.min(request.maxNewTokens, this.decoder.config.max_position_embeddings - 1));
    const own = this.promptTokens(request.prompt, maxNewTokens);
    const next = this.choosePrompt(name, own, request.quick, maxNewTokens);
    quick = next.quick;
    const reads: { prompt: PromptTokens; found?: CachedPrefix }[] = [next];
    if (next.quick && !request.nextOnly) reads.push({ prompt: own });
    for (const read of reads) {
      last = this.prepare(name, false, read.prompt, maxNewTokens, true, read.found);
      const { window, tokens } = last;
      const before = window.tokens.length;
      // All but the last token: the request that follows feeds it for its logits (and typing changes it first).
      const fed = await feedChunks(this.decoder, window, tokens, before, tokens.length - 1, signal, this.prefillChunk, this.warmUpChunk);
      prefilled += window.tokens.length - before;
      if (fed === undefined) return result('cancelled');
    }
    return result('done');
  }

  /** Prefills the prompt's uncached tokens (at least its last, for its logits), then runs the decode loop. */
  private async runGeneration(request: GenerationRequest, signal: AbortSignal, called: number): Promise<GenerationResult> {
    if (signal.aborted) return cancelledGeneration();
    const stats = new StatsAccumulator(called);
    const prefillStarted = performance.now();
    const maxPositions = this.decoder.config.max_position_embeddings;
    let maxNewTokens = Math.max(0, Math.min(request.maxNewTokens, maxPositions - 1));
    const name = request.sequence ?? DEFAULT_SEQUENCE;
    // A side request (an explanation) is about its prompt's start: it keeps the whole prompt when that fits, and
    // gives up answer tokens instead. A completion is about the prompt's end, whose start goes first.
    const prompt = this.promptTokens(request.prompt, request.aside ? 1 : maxNewTokens);
    if (request.aside) maxNewTokens = Math.min(maxNewTokens, maxPositions - prompt.tokens.length);
    const chosen = this.choosePrompt(name, prompt, request.quick, maxNewTokens);
    const prepared = this.prepare(name, request.aside ?? false, chosen.prompt, maxNewTokens, false, chosen.found);
    const { window, tokens } = prepared;
    stats.promptRead(prepared, chosen.quick);
    // A quick answer is short, so that reading the window it left unread comes next (QuickPrompt.maxNewTokens).
    const quickCap = chosen.quick ? request.quick?.maxNewTokens : undefined;
    const tokenLimit = quickCap === undefined ? maxNewTokens : Math.min(maxNewTokens, quickCap);
    const output = new TokenOutput(this.tokenizer, tokenLimit, request.stop ?? [], request.onText, stats, quickCap !== undefined);
    const logits = await feedChunks(this.decoder, window, tokens, prepared.reusedTokens, tokens.length, signal, this.prefillChunk);
    stats.prefillMs = performance.now() - prefillStarted;
    let finishReason: FinishReason = 'cancelled';
    if (logits) {
      const options = { sampling: request.sampling ?? GREEDY, speculative: request.speculative ?? false, maxDraftTokens: this.maxDraftTokens, speculation: this.speculation };
      finishReason = await new DecodeLoop(this.decoder, this.tokenizer, window, logits, options, stats).run(output, signal);
    }
    return { text: output.text, tokens: output.tokens, finishReason, stats: stats.stats(output.tokens.length) };
  }
}
