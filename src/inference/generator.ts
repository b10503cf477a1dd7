/**
 * The generation engine: prompt → streamed text, on one decoder and a KV cache per sequence.
 *
 *   prompt tokens ──► the sequence's cache (a new sequence: a copy of the longest prefix another one shares)
 *        ──► longest common prefix with it ──► rewind ──► prefill the rest in chunks
 *        ──► decode loop: sample, stream text (stop sequences, <|endoftext|>, max tokens),
 *                         feed the token (plus a prompt-lookup draft when greedy), accept what the model agrees with
 *
 * A sequence is what one stream of requests extends (the editor's documents, one each; Explain Selection): each keeps
 * its own cache, so switching files does not re-read the one switched back to. Caches live within a memory budget,
 * least recently used out first (see fit).
 * One request runs at a time and the latest wins: a new request cancels the one in flight, which stops at its
 * next step boundary and leaves the cache consistent, so the new request can reuse whatever prefix they share.
 * A side request (an explanation, which the user asked for and reads as it streams) is the exception: only a newer
 * side request cancels it. A completion that comes meanwhile waits behind it, and a newer completion
 * cancels that one as usual, so the completion for where the user is now runs as soon as the explanation ends.
 * A prefill (warming a sequence before it is asked for) runs only while no generation is in flight or queued, and
 * any request cancels it at its next chunk boundary; the rows it fed stay for the request that follows.
 */
import { performance } from 'node:perf_hooks';
import type { PhiTokenizer } from '../tokenizer/tokenizer';
import { StreamingDetokenizer } from '../tokenizer/detokenizer';
import type { DecoderCache, PhiDecoder } from './decoder';
import { KvCache } from './kvCache';
import { draftFromContext } from './promptLookup';
import { argmax, GREEDY, standardDeviation, Sampler, topTwoGap, type SamplingParams } from './sampler';
import { SpeculationBudget } from './speculationBudget';
import { StopMatcher } from './stopSequences';

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
   * A side request (Explain Selection): only a newer side request cancels it (others wait behind it), it keeps its
   * prompt's start, and it never evicts the most recently used sequence that is not one (the file being edited).
   */
  readonly aside?: boolean;
  /** A shorter prompt for the same place, generated from instead when `prompt` would read too much text not cached yet. */
  readonly quick?: QuickPrompt;
}

/**
 * A quick first answer where the model has not read the text yet (a place in a file never completed in): reading
 * a whole window costs seconds on a CPU, a few lines of it a fraction of one. The whole window is warmed in the
 * background (src/completion/warmer.ts) and used once it is cached.
 */
export interface QuickPrompt {
  /** The text before the cursor in a smaller budget, ending where the full prompt ends. */
  readonly prompt: string;
  /** Used when the full prompt has more uncached tokens than this (what can be read in the time allowed). */
  readonly readLimit: number;
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

/** done: the cache holds the prompt (but its last token); cancelled: a newer request took over; busy: a generation was in flight or queued, so it never ran. */
export type PrefillOutcome = 'done' | 'cancelled' | 'busy';

export interface PrefillStats {
  /** Whether the quick prompt's window was read first (the request sent then would have answered from it); the counts below are of the last prompt read. */
  readonly quick: boolean;
  readonly promptTokens: number;
  readonly truncatedTokens: number;
  /** Prompt tokens already cached (copied from another sequence included). */
  readonly reusedTokens: number;
  /** Prompt tokens fed by this prefill. */
  readonly prefilledTokens: number;
  readonly prefillMs: number;
}

export interface PrefillResult {
  readonly outcome: PrefillOutcome;
  readonly stats: PrefillStats;
}

export type FinishReason = 'stop' | 'eos' | 'length' | 'cancelled';

export interface GenerationStats {
  readonly promptTokens: number;
  /** Prompt tokens dropped from the start because prompt + maxNewTokens exceeded the model's positions. */
  readonly truncatedTokens: number;
  /** Prompt tokens whose keys and values were already in the cache. */
  readonly reusedTokens: number;
  /** Of reusedTokens, those copied from another sequence's cache (a new sequence sharing a prefix with it). */
  readonly copiedTokens: number;
  readonly prefillMs: number;
  /** From the call to the first generated token (queueing behind a cancelled request, or an explanation, included). */
  readonly firstTokenMs: number;
  readonly generatedTokens: number;
  readonly decodeMs: number;
  /** Forward passes in the decode loop (fewer than generated tokens when drafts are accepted). */
  readonly decodeSteps: number;
  readonly draftedTokens: number;
  /** The longest draft verified in one pass (drafts grow while they are accepted whole). */
  readonly longestDraft: number;
  readonly acceptedDraftTokens: number;
  /** Rows of a verify pass too close to call, recomputed alone (see NEAR_TIE). */
  readonly recomputedRows: number;
  /** Decode steps run without looking for a draft because drafts were not paying off (see SpeculationBudget). */
  readonly pausedDraftSteps: number;
  /** Whether the request's quick prompt was generated from (the stats above are its). */
  readonly quick: boolean;
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
  /** Bytes the sequences' caches may hold together (see Generator.cacheBudget); unlimited by default. */
  readonly cacheBudgetBytes?: number;
}

/** The stats of a request cancelled before it ran. */
const NO_GENERATION: GenerationStats = {
  promptTokens: 0, truncatedTokens: 0, reusedTokens: 0, copiedTokens: 0, prefillMs: 0, firstTokenMs: 0, generatedTokens: 0,
  decodeMs: 0, decodeSteps: 0, draftedTokens: 0, longestDraft: 0, acceptedDraftTokens: 0, recomputedRows: 0, pausedDraftSteps: 0, quick: false,
};
const NO_PREFILL: PrefillStats = { quick: false, promptTokens: 0, truncatedTokens: 0, reusedTokens: 0, prefilledTokens: 0, prefillMs: 0 };

/** The sequence of requests that name none. */
export const DEFAULT_SEQUENCE = 'default';

/** Work taken over the queue and not yet finished (running or waiting): how to cancel it, and whether it is an explanation. */
interface Turn {
  readonly controller: AbortController;
  readonly explanation: boolean;
}

/**
 * One cached window of a sequence: its cache and the token at each of its positions. A sequence (a document) may
 * hold several windows (the end of the file and a function in its middle read different text): see `use`.
 */
interface CachedSequence {
  /** The key it is stored under: the sequence's name, then `#n` for further windows. */
  readonly key: string;
  readonly name: string;
  readonly cache: DecoderCache;
  tokens: number[];
  /** When it was last used (Generator.clock): least recently used goes first. */
  used: number;
  /** Whether its last request was a side request (GenerationRequest.aside). */
  aside: boolean;
}

/** A prompt's tokens as a request reads them: cut at the start, in steps, when too long for the model. */
interface PromptTokens {
  readonly tokens: readonly number[];
  /** Before the cut. */
  readonly promptTokens: number;
  readonly truncatedTokens: number;
}

/** Where a prompt's tokens are cached longest (Generator.cachedPrefix). */
interface CachedPrefix {
  /** The window of the prompt's sequence sharing the longest prefix with it, and how long that prefix is. */
  readonly window: CachedSequence | undefined;
  readonly windowCommon: number;
  /** The host-memory cache, of any sequence, sharing the longest prefix: a new window copies its rows. */
  readonly donor: CachedSequence | undefined;
  readonly donorCommon: number;
}

/** A prompt made ready on its sequence: tokens, truncation, and the reused prefix (the cache rewound to it and sized for the request). */
interface Prepared {
  readonly sequence: CachedSequence;
  readonly tokens: readonly number[];
  readonly promptTokens: number;
  readonly truncatedTokens: number;
  readonly reusedTokens: number;
  readonly copiedTokens: number;
}

/**
 * A verified draft's logits come from a forward pass over several rows, whose kernels round differently from
 * the one-row pass of plain decoding (int8 activations, other summation orders): on the full-size int4 model,
 * by up to 0.08 in a logit whose row has a standard deviation of 1. A row whose two best logits are closer than
 * this fraction of the row's standard deviation is recomputed alone before its token is chosen, so that choice is plain decoding's.
 * (Rows a batched pass wrote into the cache can still tip a later, nearly exact tie: exact identity would need
 * kernels that do not depend on the batch; even float activations differ by ~0.003 on the full-size model.)
 */
const NEAR_TIE = 0.25;

/** A request's first draft: long drafts are earned by accepted ones (a rejected long verify costs several steps). */
const INITIAL_DRAFT_TOKENS = 2;

/** A long prompt's start is cut in steps of this many tokens, so the kept part stays stable while the user types. */
const TRUNCATION_STEP = 256;

/**
 * Lets the messages that came during a model pass be handled before the next one starts. A pass blocks the
 * thread (ONNX Runtime runs it synchronously), and the next one would start before a cancelling request that came
 * meanwhile is read: that request would wait a whole pass more.
 */
function eventsFirst(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** The prompt a request reads (its own or its quick one) and where it is cached. */
interface ChosenPrompt {
  readonly prompt: PromptTokens;
  readonly found: CachedPrefix;
  readonly quick: boolean;
}

/** Prompt tokens a request would feed: those cached nowhere it can reuse or copy from (at least one). */
function uncachedTokens(found: CachedPrefix, tokens: readonly number[]): number {
  return tokens.length - Math.min(Math.max(found.windowCommon, found.donorCommon), tokens.length - 1);
}

/**
 * Prompt tokens per forward pass while prefilling. 32-token chunks prefill as fast as 64 or 128 on a 2-core CPU
 * (phi-1.5 int4, 1,024 tokens: 26.6 s vs 27.5 s for 64) and need less working memory (peak RSS 50 MiB lower than
 * 64, 150 MiB lower than 128); they also let a newer request cancel a prefill sooner.
 */
export const DEFAULT_PREFILL_CHUNK = 32;
/**
 * Prompt tokens in a prefill's (a warm-up's) first forward pass; each further pass doubles it, up to the prefill
 * chunk. A request that comes meanwhile waits for the pass in flight: a warm-up that follows typing reads a few
 * tokens at a time anyway, and one that starts when the cursor rests starts short (8 tokens take ≈0.1 s on a
 * 2-core CPU with phi-1.5 int4, at ≈60% of the speed of 32-token passes), in case typing resumes, and reads at
 * full speed once the rest has lasted.
 */
export const DEFAULT_WARM_UP_CHUNK = 8;

export class Generator {
  private readonly sequences = new Map<string, CachedSequence>();
  private clock = 0;
  /** Windows created after a sequence's first (their keys' numbers). */
  private windows = 0;
  /** The sequence the request in flight uses (never evicted). */
  private active: CachedSequence | undefined;
  private budget: number;
  /** Generations called and not yet finished: a prefill waits for none of them, it gives way. */
  private generations = 0;
  private readonly turns = new Set<Turn>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly prefillChunk: number;
  private readonly warmUpChunk: number;
  private readonly maxDraftTokens: number;
  /** Kept across requests: what a verify pass costs depends on the model and the machine, not the prompt. */
  private readonly speculation: SpeculationBudget | undefined;

  constructor(private readonly decoder: PhiDecoder, private readonly tokenizer: PhiTokenizer, options: GeneratorOptions = {}) {
    this.prefillChunk = options.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
    this.warmUpChunk = options.warmUpChunk ?? DEFAULT_WARM_UP_CHUNK;
    // On a 2-core CPU a pass over 2 tokens costs 1.0–1.3 single steps, over 3 tokens 1.5–1.7 and over 5 tokens
    // 2.0–2.1 (phi-1.5 int4, `npm run bench`): when every drafted token is right that is up to 1.8×, 2.0× and
    // 2.35×. Drafts start at 2 tokens and grow to 4 only while they are accepted whole, a miss shortens them,
    // and the SpeculationBudget pauses drafting while it loses.
    this.maxDraftTokens = options.maxDraftTokens ?? 4;
    this.speculation = options.adaptiveSpeculation === false ? undefined : new SpeculationBudget();
    this.budget = options.cacheBudgetBytes ?? Infinity;
  }

  /** Tokens whose keys and values are cached for `sequence`'s most recently used window (for inspection and tests). */
  cachedTokens(sequence = DEFAULT_SEQUENCE): readonly number[] {
    return this.leastRecentlyUsed().filter((s) => s.name === sequence).at(-1)?.tokens ?? [];
  }

  /** The cached sequences' names, a name per window, least recently used first. */
  get sequenceNames(): string[] {
    return [...this.sequences.values()].sort((a, b) => a.used - b.used).map((s) => s.name);
  }

  /** Bytes the sequences' caches hold together. */
  get cacheBytes(): number {
    let total = 0;
    for (const sequence of this.sequences.values()) total += sequence.cache.bytes;
    return total;
  }

  /** The memory budget for all caches together, in bytes. */
  get cacheBudget(): number {
    return this.budget;
  }

  /**
   * Sets the memory budget and evicts least recently used sequences down to it now (never the one in use, or,
   * while none is, the most recently used).
   */
  set cacheBudget(bytes: number) {
    if (!(bytes >= 0)) throw new RangeError(`Generator: cache budget ${bytes} bytes`);
    this.budget = bytes;
    const keep = this.active ?? this.leastRecentlyUsed().at(-1);
    if (keep) this.fit(keep, keep.cache.bytes);
  }

  /**
   * Starts a request, cancelling the ones in flight or waiting (latest wins), except that a request other than a
   * side request cancels no side request: it waits for it to end.
   */
  generate(request: GenerationRequest): Promise<GenerationResult> {
    const called = performance.now();
    this.generations++;
    const cancelled: GenerationResult = { text: '', tokens: [], finishReason: 'cancelled', stats: NO_GENERATION };
    return this.takeOver(request.signal, request.aside ?? false, cancelled, (signal) => this.run(request, signal, called)).finally(() => this.generations--);
  }

  /**
   * Warms `request.sequence`'s cache for the request that would be sent now, in chunks, at low priority: not at
   * all while a generation is in flight or queued ("busy"); any later request (a generation, a newer prefill)
   * cancels it at its next chunk boundary, and the rows fed until then stay cached. Reads what that request would
   * read first (its quick prompt, where it would answer from it), then, unless `nextOnly`, the prompt's own window.
   * A cache that already holds a prompt, or extends it (a completion generated after it), is left as it is.
   */
  prefill(request: PrefillRequest): Promise<PrefillResult> {
    if (this.generations > 0) return Promise.resolve({ outcome: 'busy', stats: NO_PREFILL });
    return this.takeOver(request.signal, false, { outcome: 'cancelled', stats: NO_PREFILL }, (signal) => this.runPrefill(request, signal));
  }

  /**
   * Cancels the work in flight or waiting (an explanation only for a newer explanation) and queues `work` after it,
   * cancelled by `signal` or by a later request that may cancel it. Cancelled while it waits, it answers `cancelled`
   * at once (a completion waiting behind an explanation); its place in the queue then passes without work.
   */
  private takeOver<T>(signal: AbortSignal | undefined, explanation: boolean, cancelled: T, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    for (const turn of this.turns) if (explanation || !turn.explanation) turn.controller.abort();
    const turn: Turn = { controller: new AbortController(), explanation };
    this.turns.add(turn);
    const cancel = (): void => turn.controller.abort();
    signal?.addEventListener('abort', cancel, { once: true });
    if (signal?.aborted) cancel();
    let started = false;
    const ran = this.queue.then(() => {
      started = true;
      return turn.controller.signal.aborted ? cancelled : work(turn.controller.signal);
    });
    this.queue = ran.catch(() => undefined);
    const gaveUp = new Promise<T>((resolve) => {
      const stopWaiting = (): void => {
        if (!started) resolve(cancelled);
      };
      if (turn.controller.signal.aborted) stopWaiting();
      else turn.controller.signal.addEventListener('abort', stopWaiting, { once: true });
    });
    return Promise.race([ran, gaveUp]).finally(() => {
      signal?.removeEventListener('abort', cancel);
      this.turns.delete(turn);
    });
  }

  /** Cancels every request in flight or waiting. */
  cancel(): void {
    for (const turn of this.turns) turn.controller.abort();
  }

  /** Cancels every request and waits for them to stop before freeing the caches (ONNX Runtime may be using one). */
  async dispose(): Promise<void> {
    this.cancel();
    await this.queue;
    for (const sequence of [...this.sequences.values()]) this.drop(sequence);
  }

  /**
   * Where `tokens` are cached longest: in a window of sequence `name`, and in any host-memory cache (a new window
   * copies from it). One pass over the windows serves `use`, `prepare` and the quick prompt's choice.
   */
  private cachedPrefix(name: string, tokens: readonly number[]): CachedPrefix {
    let window: CachedSequence | undefined;
    let windowCommon = -1;
    let donor: CachedSequence | undefined;
    let donorCommon = 0;
    for (const candidate of this.sequences.values()) {
      const common = commonPrefixLength(candidate.tokens, tokens);
      if (candidate.name === name && common > windowCommon) [window, windowCommon] = [candidate, common];
      if (candidate.cache instanceof KvCache && common > donorCommon) [donor, donorCommon] = [candidate, common];
    }
    return { window, windowCommon: Math.max(0, windowCommon), donor, donorCommon };
  }

  /**
   * The window of sequence `name` that `tokens` continue (`found.window`), made the most recently used. A prompt
   * that shares less than half of the best window's cached tokens reads other text of the same file (the cursor
   * moved far away, or the prompt's start jumped): it gets a window of its own (created empty; prepare copies into
   * it the longest prefix another window shares), so that going back to where the user was re-reads nothing. Old
   * windows age out with the LRU.
   */
  private use(name: string, aside: boolean, found: CachedPrefix): CachedSequence {
    let sequence = found.window;
    // Only a host-memory cache can start a window from another's rows; a GPU cache rewinds in place instead.
    const otherText = sequence !== undefined && sequence.cache instanceof KvCache && sequence.tokens.length > 0 && 2 * found.windowCommon < sequence.tokens.length;
    if (!sequence || otherText) {
      const key = sequence ? `${name}#${++this.windows}` : name;
      sequence = { key, name, cache: this.decoder.createCache(), tokens: [], used: 0, aside };
      this.sequences.set(key, sequence);
    }
    sequence.used = ++this.clock;
    sequence.aside = aside;
    return sequence;
  }

  private leastRecentlyUsed(): CachedSequence[] {
    return [...this.sequences.values()].sort((a, b) => a.used - b.used);
  }

  /**
   * Evicts least recently used sequences until all caches fit the budget, `inUse` counted at `inUseBytes` (what it
   * is about to hold). Never evicted: `inUse`, `alsoKeep`, and, when `inUse` is a side request's, the most recently
   * used sequence that is not (the file being edited). When even those do not fit, they are kept over the budget.
   */
  private fit(inUse: CachedSequence, inUseBytes: number, alsoKeep?: CachedSequence): void {
    const others = this.leastRecentlyUsed().filter((s) => s !== inUse);
    let total = inUseBytes + others.reduce((sum, s) => sum + s.cache.bytes, 0);
    const editing = inUse.aside ? others.filter((s) => !s.aside).at(-1) : undefined;
    for (const sequence of others) {
      if (total <= this.budget) break;
      if (sequence === editing || sequence === alsoKeep) continue;
      total -= sequence.cache.bytes;
      this.drop(sequence);
    }
  }

  private drop(sequence: CachedSequence): void {
    sequence.cache.dispose();
    sequence.tokens = [];
    this.sequences.delete(sequence.key);
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
   * Finds the prefix the prompt's sequence has cached (a window with nothing cached copies the longest prefix
   * another shares), rewinds the cache to it, evicts what the budget needs and sizes the cache for a request of
   * `maxNewTokens`. `keepLonger`: a cache that already holds every prompt token but the last is left as it is (a
   * prefill must not forget a completion generated after it). `found`: the prompt's cachedPrefix, when known.
   */
  private prepare(name: string, aside: boolean, prompt: PromptTokens, maxNewTokens: number, keepLonger: boolean, found = this.cachedPrefix(name, prompt.tokens)): Prepared {
    const { tokens } = prompt;
    const sequence = this.use(name, aside, found);
    // The positions the request may fill: the prompt, what it generates and the longest draft verified past it.
    const positions = Math.min(this.decoder.config.max_position_embeddings, tokens.length + maxNewTokens + this.maxDraftTokens);
    let copiedTokens = 0;
    const { donor } = found;
    const shared = Math.min(found.donorCommon, tokens.length - 1);
    if (sequence.tokens.length === 0 && sequence.cache instanceof KvCache && donor && donor !== sequence && shared > 0) {
      // A new window (a file opened after another with the same header): copy rather than recompute what another one shares.
      this.fit(sequence, sequence.cache.projectedBytes(positions), donor);
      sequence.cache.reserve(positions);
      sequence.cache.copyPrefix(donor.cache as KvCache, shared);
      sequence.tokens = tokens.slice(0, shared);
      copiedTokens = shared;
    }
    const common = commonPrefixLength(sequence.tokens, tokens);
    const reusedTokens = keepLonger && common >= tokens.length - 1 ? sequence.tokens.length : Math.min(common, tokens.length - 1);
    this.rewind(sequence, reusedTokens);
    // Size the cache for the whole request now: growing it later copies it, and holds two copies meanwhile.
    const rows = Math.max(0, positions - reusedTokens);
    this.fit(sequence, sequence.cache.projectedBytes(rows));
    sequence.cache.reserve(rows);
    return { sequence, tokens, promptTokens: prompt.promptTokens, truncatedTokens: prompt.truncatedTokens, reusedTokens: Math.min(reusedTokens, tokens.length - 1), copiedTokens };
  }

  private rewind(sequence: CachedSequence, length: number): void {
    sequence.cache.rewindTo(length);
    sequence.tokens.length = length;
  }

  /** Feeds tokens into the sequence's cache; returns the logits of the last `logitsFor` of them. */
  private async feed(sequence: CachedSequence, tokens: readonly number[], logitsFor = tokens.length): Promise<Float32Array> {
    const logits = await this.decoder.forward(tokens, sequence.cache, logitsFor);
    sequence.tokens.push(...tokens);
    return logits;
  }

  /**
   * Feeds tokens[from, to) in chunks of prefillChunk tokens (the first `firstChunk`, doubling up to prefillChunk),
   * checking `signal` before each; returns the last chunk's last logits, or undefined when cancelled (the chunks
   * fed until then stay cached).
   */
  private async feedChunks(sequence: CachedSequence, tokens: readonly number[], from: number, to: number, signal: AbortSignal, firstChunk = this.prefillChunk): Promise<Float32Array | undefined> {
    let logits: Float32Array = new Float32Array(0);
    let chunk = Math.min(firstChunk, this.prefillChunk);
    for (let start = from; start < to; start += chunk, chunk = Math.min(2 * chunk, this.prefillChunk)) {
      await eventsFirst();
      if (signal.aborted) return undefined;
      logits = await this.feed(sequence, tokens.slice(start, Math.min(to, start + chunk)), 1);
    }
    return logits;
  }

  /**
   * The prompt a request on sequence `name` reads: its own, or its quick prompt where its own has more tokens
   * cached nowhere than the quick prompt's readLimit.
   */
  private choosePrompt(name: string, prompt: PromptTokens, quick: QuickPrompt | undefined, maxNewTokens: number): ChosenPrompt {
    const found = this.cachedPrefix(name, prompt.tokens);
    if (!quick || uncachedTokens(found, prompt.tokens) <= quick.readLimit) return { prompt, found, quick: false };
    const quickTokens = this.promptTokens(quick.prompt, maxNewTokens);
    return { prompt: quickTokens, found: this.cachedPrefix(name, quickTokens.tokens), quick: true };
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
    try {
      for (const read of reads) {
        const prepared = this.prepare(name, false, read.prompt, maxNewTokens, true, read.found);
        last = prepared;
        this.active = prepared.sequence;
        const { sequence, tokens } = prepared;
        const before = sequence.tokens.length;
        // All but the last token: the request that follows feeds it for its logits (and typing changes it first).
        const fed = await this.feedChunks(sequence, tokens, before, tokens.length - 1, signal, this.warmUpChunk);
        prefilled += sequence.tokens.length - before;
        if (fed === undefined) return result('cancelled');
      }
      return result('done');
    } finally {
      this.active = undefined;
    }
  }

  private async run(request: GenerationRequest, signal: AbortSignal, called: number): Promise<GenerationResult> {
    try {
      return await this.runOnSequence(request, signal, called);
    } finally {
      this.active = undefined;
    }
  }

  private async runOnSequence(request: GenerationRequest, signal: AbortSignal, called: number): Promise<GenerationResult> {
    const vocab = this.decoder.config.vocab_size;
    const maxPositions = this.decoder.config.max_position_embeddings;
    const eos = this.tokenizer.eosTokenId;
    // phi's 51,200 logits are padded past the tokenizer's 50,295 tokens: never pick an id with no text.
    const sampleable = Math.min(vocab, this.tokenizer.vocabSize);
    let maxNewTokens = Math.max(0, Math.min(request.maxNewTokens, maxPositions - 1));

    const generated: number[] = [];
    let text = '';
    let finishReason: FinishReason = 'length';
    let promptTokens = 0;
    let truncatedTokens = 0;
    let reusedTokens = 0;
    let copiedTokens = 0;
    let prefillMs = 0;
    let firstTokenMs = 0;
    let decodeStarted = 0;
    let decodeSteps = 0;
    let draftedTokens = 0;
    let longestDraft = 0;
    let acceptedDraftTokens = 0;
    let recomputedRows = 0;
    let pausedDraftSteps = 0;
    let quick = false;
    const finish = (): GenerationResult => ({
      text,
      tokens: generated,
      finishReason,
      stats: {
        promptTokens, truncatedTokens, reusedTokens, copiedTokens, prefillMs, firstTokenMs,
        generatedTokens: generated.length,
        decodeMs: decodeStarted ? performance.now() - decodeStarted : 0,
        decodeSteps, draftedTokens, longestDraft, acceptedDraftTokens, recomputedRows, pausedDraftSteps, quick,
      },
    });
    if (signal.aborted) {
      finishReason = 'cancelled';
      return finish();
    }

    // Prefill: reuse the cached prefix; at least the last prompt token is fed, for its logits.
    const prefillStarted = performance.now();
    const name = request.sequence ?? DEFAULT_SEQUENCE;
    // A side request (an explanation) is about its prompt's start: it keeps the whole prompt when that fits, and
    // gives up answer tokens instead. A completion is about the prompt's end, whose start goes first.
    const prompt = this.promptTokens(request.prompt, request.aside ? 1 : maxNewTokens);
    if (request.aside) maxNewTokens = Math.min(maxNewTokens, maxPositions - prompt.tokens.length);
    const chosen = this.choosePrompt(name, prompt, request.quick, maxNewTokens);
    quick = chosen.quick;
    const prepared = this.prepare(name, request.aside ?? false, chosen.prompt, maxNewTokens, false, chosen.found);
    ({ promptTokens, truncatedTokens, reusedTokens, copiedTokens } = prepared);
    const { sequence, tokens } = prepared;
    this.active = sequence;
    const prefilled = await this.feedChunks(sequence, tokens, reusedTokens, tokens.length, signal);
    prefillMs = performance.now() - prefillStarted;
    if (!prefilled) {
      finishReason = 'cancelled';
      return finish();
    }
    let logits: Float32Array = prefilled;
    let row = 0;

    const sampler = new Sampler(request.sampling ?? GREEDY);
    const speculative = (request.speculative ?? false) && sampler.greedy;
    const detokenizer = new StreamingDetokenizer(this.tokenizer);
    const stops = new StopMatcher(request.stop ?? []);
    const emit = (piece: string): void => {
      if (piece === '') return;
      text += piece;
      request.onText?.(piece);
    };
    /** Streams one generated token's text; returns why generation ends after it, if it does. */
    const accept = (token: number): FinishReason | undefined => {
      if (token === eos) return 'eos';
      generated.push(token);
      if (generated.length === 1) firstTokenMs = performance.now() - called;
      const { text: released, stopped } = stops.push(detokenizer.push(token));
      emit(released);
      if (stopped) return 'stop';
      return generated.length >= maxNewTokens ? 'length' : undefined;
    };

    decodeStarted = performance.now();
    let draftLength = Math.min(INITIAL_DRAFT_TOKENS, this.maxDraftTokens);
    let ended: FinishReason | undefined = maxNewTokens === 0 ? 'length' : undefined;
    while (!ended) {
      await eventsFirst();
      if (signal.aborted) {
        ended = 'cancelled';
        break;
      }
      const next = sampler.sample(logits, row * vocab, sampleable);
      ended = accept(next);
      if (ended) break;
      const roomLeft = Math.min(maxNewTokens - generated.length, maxPositions - sequence.cache.length - 1);
      const drafting = speculative && (this.speculation?.drafting ?? true);
      if (speculative && !drafting) pausedDraftSteps++;
      const draft = drafting ? draftFromContext([...sequence.tokens, next], Math.min(draftLength, roomLeft)) : [];
      const before = sequence.cache.length;
      const fed = [next, ...draft];
      const passStarted = performance.now();
      logits = await this.feed(sequence, fed);
      decodeSteps++;
      draftedTokens += draft.length;
      longestDraft = Math.max(longestDraft, draft.length);
      // Row i holds the prediction after fed token i: a draft token stands while the model clearly agrees with it.
      const clear = (i: number): boolean => draft.length === 0 || topTwoGap(logits, i * vocab, sampleable) >= NEAR_TIE * standardDeviation(logits, i * vocab, sampleable);
      let agreed = 0;
      while (agreed < draft.length && argmax(logits, agreed * vocab, sampleable) === draft[agreed] && clear(agreed)) agreed++;
      acceptedDraftTokens += agreed;
      if (clear(agreed)) {
        this.rewind(sequence, before + 1 + agreed);
        row = agreed;
      } else {
        // Too close to call from a batched row: recompute the row alone, as plain decoding computes it.
        this.rewind(sequence, before + agreed);
        logits = await this.feed(sequence, [fed[agreed]]);
        recomputedRows++;
        row = 0;
      }
      if (draft.length === 0) {
        this.speculation?.recordPlain(performance.now() - passStarted);
      } else {
        this.speculation?.recordVerify(performance.now() - passStarted, 1 + agreed);
        // Longer drafts while they are accepted whole; shorter after a miss (a long verify costs several steps).
        draftLength = agreed === draft.length ? Math.min(this.maxDraftTokens, draftLength + 2) : Math.max(1, draftLength - 1);
      }
      for (let i = 0; i < agreed && !ended; i++) ended = accept(draft[i]);
    }
    finishReason = ended;
    if (finishReason !== 'stop') {
      // Bytes held for an incomplete character, and text held as a possible stop sequence, end the stream.
      const tail = stops.push(detokenizer.flush());
      emit(tail.text + (tail.stopped ? '' : stops.flush()));
      if (tail.stopped) finishReason = 'stop';
    }
    return finish();
  }
}
