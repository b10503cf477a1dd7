/**
 * The generation engine: prompt → streamed text, on one decoder and one KV cache.
 *
 *   prompt tokens ──► longest common prefix with the cache ──► rewind ──► prefill the rest in chunks
 *        ──► decode loop: sample, stream text (stop sequences, <|endoftext|>, max tokens),
 *                         feed the token (plus a prompt-lookup draft when greedy), accept what the model agrees with
 *
 * One request runs at a time and the latest wins: a new request cancels the one in flight, which stops at its
 * next step boundary and leaves the cache consistent, so the new request can reuse whatever prefix they share.
 */
import { performance } from 'node:perf_hooks';
import type { PhiTokenizer } from '../tokenizer/tokenizer';
import { StreamingDetokenizer } from '../tokenizer/detokenizer';
import type { DecoderCache, PhiDecoder } from './decoder';
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
}

export type FinishReason = 'stop' | 'eos' | 'length' | 'cancelled';

export interface GenerationStats {
  readonly promptTokens: number;
  /** Prompt tokens dropped from the start because prompt + maxNewTokens exceeded the model's positions. */
  readonly truncatedTokens: number;
  /** Prompt tokens whose keys and values were already in the cache. */
  readonly reusedTokens: number;
  readonly prefillMs: number;
  /** From the call to the first generated token (queueing behind a cancelled request included). */
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
  /** Longest draft verified in one pass. */
  readonly maxDraftTokens?: number;
  /**
   * Pause drafting while verify passes yield fewer tokens per millisecond than plain steps (SpeculationBudget).
   * Default true; false drafts whenever the context offers one (output is the same, only timing-free).
   */
  readonly adaptiveSpeculation?: boolean;
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

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * Prompt tokens per forward pass while prefilling. 32-token chunks prefill as fast as 64 or 128 on a 2-core CPU
 * (phi-1.5 int4, 1,024 tokens: 26.6 s vs 27.5 s for 64) and need less working memory (peak RSS 50 MiB lower than
 * 64, 150 MiB lower than 128); they also let a newer request cancel a prefill sooner.
 */
export const DEFAULT_PREFILL_CHUNK = 32;

export class Generator {
  private readonly cache: DecoderCache;
  /** The token at each cache position. */
  private cachedTokens: number[] = [];
  private current: AbortController | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly prefillChunk: number;
  private readonly maxDraftTokens: number;
  /** Kept across requests: what a verify pass costs depends on the model and the machine, not the prompt. */
  private readonly speculation: SpeculationBudget | undefined;

  constructor(private readonly decoder: PhiDecoder, private readonly tokenizer: PhiTokenizer, options: GeneratorOptions = {}) {
    this.cache = decoder.createCache();
    this.prefillChunk = options.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
    // On a 2-core CPU a pass over 2 tokens costs 1.0–1.3 single steps, over 3 tokens 1.5–1.7 and over 5 tokens
    // 2.0–2.1 (phi-1.5 int4, `npm run bench`): when every drafted token is right that is up to 1.8×, 2.0× and
    // 2.35×. Drafts start at 2 tokens and grow to 4 only while they are accepted whole, a miss shortens them,
    // and the SpeculationBudget pauses drafting while it loses.
    this.maxDraftTokens = options.maxDraftTokens ?? 4;
    this.speculation = options.adaptiveSpeculation === false ? undefined : new SpeculationBudget();
  }

  /** Tokens whose keys and values are cached (for inspection and tests). */
  get cachedSequence(): readonly number[] {
    return this.cachedTokens;
  }

  /** Starts a request, cancelling the one in flight (latest wins). */
  generate(request: GenerationRequest): Promise<GenerationResult> {
    this.current?.abort();
    const controller = new AbortController();
    this.current = controller;
    const cancel = (): void => controller.abort();
    request.signal?.addEventListener('abort', cancel, { once: true });
    if (request.signal?.aborted) controller.abort();
    const called = performance.now();
    const run = this.queue.then(() => this.run(request, controller.signal, called));
    this.queue = run.catch(() => undefined);
    return run.finally(() => request.signal?.removeEventListener('abort', cancel));
  }

  /** Cancels the request in flight, if any. */
  cancel(): void {
    this.current?.abort();
  }

  /** Cancels the request in flight and waits for it to stop before freeing the cache (ONNX Runtime may be using it). */
  async dispose(): Promise<void> {
    this.cancel();
    await this.queue;
    this.cache.dispose();
    this.cachedTokens = [];
  }

  private rewind(length: number): void {
    this.cache.rewindTo(length);
    this.cachedTokens.length = length;
  }

  /** Feeds tokens into the cache; returns the logits of the last `logitsFor` of them. */
  private async feed(tokens: readonly number[], logitsFor = tokens.length): Promise<Float32Array> {
    const logits = await this.decoder.forward(tokens, this.cache, logitsFor);
    this.cachedTokens.push(...tokens);
    return logits;
  }

  private async run(request: GenerationRequest, signal: AbortSignal, called: number): Promise<GenerationResult> {
    const vocab = this.decoder.config.vocab_size;
    const maxPositions = this.decoder.config.max_position_embeddings;
    const eos = this.tokenizer.eosTokenId;
    // phi's 51,200 logits are padded past the tokenizer's 50,295 tokens: never pick an id with no text.
    const sampleable = Math.min(vocab, this.tokenizer.vocabSize);
    const maxNewTokens = Math.max(0, Math.min(request.maxNewTokens, maxPositions - 1));

    let tokens = typeof request.prompt === 'string' ? this.tokenizer.encode(request.prompt) : [...request.prompt];
    if (tokens.length === 0) tokens = [eos];
    const promptTokens = tokens.length;
    const room = maxPositions - maxNewTokens;
    const truncatedTokens = tokens.length > room ? Math.min(tokens.length - 1, Math.ceil((tokens.length - room) / TRUNCATION_STEP) * TRUNCATION_STEP) : 0;
    tokens = tokens.slice(truncatedTokens);

    const generated: number[] = [];
    let text = '';
    let finishReason: FinishReason = 'length';
    let reusedTokens = 0;
    let prefillMs = 0;
    let firstTokenMs = 0;
    let decodeStarted = 0;
    let decodeSteps = 0;
    let draftedTokens = 0;
    let longestDraft = 0;
    let acceptedDraftTokens = 0;
    let recomputedRows = 0;
    let pausedDraftSteps = 0;
    const finish = (): GenerationResult => ({
      text,
      tokens: generated,
      finishReason,
      stats: {
        promptTokens, truncatedTokens, reusedTokens, prefillMs, firstTokenMs,
        generatedTokens: generated.length,
        decodeMs: decodeStarted ? performance.now() - decodeStarted : 0,
        decodeSteps, draftedTokens, longestDraft, acceptedDraftTokens, recomputedRows, pausedDraftSteps,
      },
    });
    if (signal.aborted) {
      finishReason = 'cancelled';
      return finish();
    }

    // Prefill: reuse the cached prefix; at least the last prompt token is fed, for its logits.
    const prefillStarted = performance.now();
    reusedTokens = Math.min(commonPrefixLength(this.cachedTokens, tokens), tokens.length - 1);
    this.rewind(reusedTokens);
    // Size the cache for the whole request now: growing it later copies it, and holds two copies meanwhile.
    this.cache.reserve(Math.min(maxPositions, tokens.length + maxNewTokens + this.maxDraftTokens) - reusedTokens);
    let logits: Float32Array = new Float32Array(0);
    let row = 0;
    for (let start = reusedTokens; start < tokens.length; start += this.prefillChunk) {
      if (signal.aborted) {
        finishReason = 'cancelled';
        prefillMs = performance.now() - prefillStarted;
        return finish();
      }
      const chunk = tokens.slice(start, start + this.prefillChunk);
      logits = await this.feed(chunk, 1);
      row = 0;
    }
    prefillMs = performance.now() - prefillStarted;

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
      if (signal.aborted) {
        ended = 'cancelled';
        break;
      }
      const next = sampler.sample(logits, row * vocab, sampleable);
      ended = accept(next);
      if (ended) break;
      const roomLeft = Math.min(maxNewTokens - generated.length, maxPositions - this.cache.length - 1);
      const drafting = speculative && (this.speculation?.drafting ?? true);
      if (speculative && !drafting) pausedDraftSteps++;
      const draft = drafting ? draftFromContext([...this.cachedTokens, next], Math.min(draftLength, roomLeft)) : [];
      const before = this.cache.length;
      const fed = [next, ...draft];
      const passStarted = performance.now();
      logits = await this.feed(fed);
      decodeSteps++;
      draftedTokens += draft.length;
      longestDraft = Math.max(longestDraft, draft.length);
      // Row i holds the prediction after fed token i: a draft token stands while the model clearly agrees with it.
      const clear = (i: number): boolean => draft.length === 0 || topTwoGap(logits, i * vocab, sampleable) >= NEAR_TIE * standardDeviation(logits, i * vocab, sampleable);
      let agreed = 0;
      while (agreed < draft.length && argmax(logits, agreed * vocab, sampleable) === draft[agreed] && clear(agreed)) agreed++;
      acceptedDraftTokens += agreed;
      if (clear(agreed)) {
        this.rewind(before + 1 + agreed);
        row = agreed;
      } else {
        // Too close to call from a batched row: recompute the row alone, as plain decoding computes it.
        this.rewind(before + agreed);
        logits = await this.feed([fed[agreed]]);
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
