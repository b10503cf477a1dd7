/**
 * Decoding, step by step, on one cache window (as onnxruntime-genai's Generator: append tokens, generate the
 * next, rewind):
 *
 *   prompt ──► feedChunks (prefill) ──► logits [1, vocab]
 *   loop:  next = sample(logits row)          stream it (TokenOutput): eos, stop sequence or max tokens end it
 *          feed [next, ...draft]              one pass ──► logits [1 + draft, vocab]; row i predicts after fed token i
 *          keep the draft tokens the model clearly agrees with; rewind the cache past the rest
 *
 * A draft is a prompt-lookup guess (promptLookup.ts), made only when sampling is greedy, so output equals plain
 * decoding's; the SpeculationBudget pauses drafting while it does not pay.
 */
import { performance } from 'node:perf_hooks';
import type { FinishReason, GenerationStats, SamplingParams } from '../shared/engineTypes';
import { holdsCompleteLine } from '../shared/firstLine';
import { StreamingDetokenizer } from '../tokenizer/detokenizer';
import type { PhiTokenizer } from '../tokenizer/tokenizer';
import type { PhiDecoder } from './decoder';
import { draftFromContext } from './promptLookup';
import { argmax, Sampler, standardDeviation, topTwoGap } from './sampler';
import type { SpeculationBudget } from './speculationBudget';
import { StopMatcher } from './stopSequences';
import type { CacheWindow } from './windows';

/**
 * A verified draft's logits come from a pass over several rows, whose kernels round differently from the one-row
 * pass of plain decoding (int8 activations, other summation orders). A row whose two best logits are closer than
 * this fraction of the row's standard deviation is recomputed alone before its token is chosen, so that choice is
 * plain decoding's. (Rows a batched pass wrote into the cache can still tip a later, nearly exact tie: see
 * docs/benchmarks.md, Speculative decoding.)
 */
const NEAR_TIE = 0.25;

/** A request's first draft: long drafts are earned by accepted ones (a rejected long verify costs several steps). */
const INITIAL_DRAFT_TOKENS = 2;

/**
 * Lets the messages that came during a model pass be handled before the next one starts. A pass blocks the
 * thread (ONNX Runtime runs it synchronously), and the next one would start before a cancelling request that came
 * meanwhile is read: that request would wait a whole pass more.
 */
function eventsFirst(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Feeds tokens into the window's cache; returns the logits of the last `logitsFor` of them, [logitsFor, vocab]. */
async function feed(decoder: PhiDecoder, window: CacheWindow, tokens: readonly number[], logitsFor = tokens.length): Promise<Float32Array> {
  const logits = await decoder.forward(tokens, window.cache, logitsFor);
  window.tokens.push(...tokens);
  return logits;
}

/**
 * Feeds tokens[from, to) in chunks, the first of `firstChunk` tokens, doubling up to `chunk`, checking `signal`
 * before each; returns the last chunk's last logits, [1, vocab], or undefined when cancelled (the chunks fed until
 * then stay cached).
 */
export async function feedChunks(decoder: PhiDecoder, window: CacheWindow, tokens: readonly number[], from: number, to: number, signal: AbortSignal, chunk: number, firstChunk = chunk): Promise<Float32Array | undefined> {
  let logits: Float32Array = new Float32Array(0);
  let size = Math.min(firstChunk, chunk);
  for (let start = from; start < to; start += size, size = Math.min(2 * size, chunk)) {
    await eventsFirst();
    if (signal.aborted) return undefined;
    logits = await feed(decoder, window, tokens.slice(start, Math.min(to, start + size)), 1);
  }
  return logits;
}

/** A generation's statistics as they accumulate: GenerationStats once it ends. */
export class StatsAccumulator {
  promptTokens = 0;
  truncatedTokens = 0;
  reusedTokens = 0;
  copiedTokens = 0;
  prefillMs = 0;
  quick = false;
  firstTokenMs = 0;
  decodeSteps = 0;
  draftedTokens = 0;
  longestDraft = 0;
  acceptedDraftTokens = 0;
  recomputedRows = 0;
  pausedDraftSteps = 0;
  private decodeStarted = 0;

  /** `called`: when the request was made (performance.now()), for firstTokenMs. */
  constructor(private readonly called: number) {}

  /** The prompt as read: its counts, and whether it was the request's quick prompt. */
  promptRead(prompt: Pick<GenerationStats, 'promptTokens' | 'truncatedTokens' | 'reusedTokens' | 'copiedTokens'>, quick: boolean): void {
    ({ promptTokens: this.promptTokens, truncatedTokens: this.truncatedTokens, reusedTokens: this.reusedTokens, copiedTokens: this.copiedTokens } = prompt);
    this.quick = quick;
  }

  decodeStarts(): void {
    this.decodeStarted = performance.now();
  }

  firstToken(): void {
    this.firstTokenMs = performance.now() - this.called;
  }

  /** A decode pass that fed `drafted` draft tokens, of which the model agreed with `agreed`. */
  pass(drafted: number, agreed: number): void {
    this.decodeSteps++;
    this.draftedTokens += drafted;
    this.longestDraft = Math.max(this.longestDraft, drafted);
    this.acceptedDraftTokens += agreed;
  }

  stats(generatedTokens: number): GenerationStats {
    const { promptTokens, truncatedTokens, reusedTokens, copiedTokens, prefillMs, firstTokenMs } = this;
    const { decodeSteps, draftedTokens, longestDraft, acceptedDraftTokens, recomputedRows, pausedDraftSteps, quick } = this;
    return {
      promptTokens, truncatedTokens, reusedTokens, copiedTokens, prefillMs, firstTokenMs, generatedTokens,
      decodeMs: this.decodeStarted ? performance.now() - this.decodeStarted : 0,
      decodeSteps, draftedTokens, longestDraft, acceptedDraftTokens, recomputedRows, pausedDraftSteps, quick,
    };
  }
}

/** A generation's output: the tokens accepted, and their text streamed as it completes (stop sequences held back). */
export class TokenOutput {
  readonly tokens: number[] = [];
  text = '';
  private readonly detokenizer: StreamingDetokenizer;
  private readonly stops: StopMatcher;

  constructor(
    private readonly tokenizer: PhiTokenizer,
    private readonly maxNewTokens: number,
    stop: readonly string[],
    private readonly onText: ((delta: string) => void) | undefined,
    private readonly stats: StatsAccumulator,
    /** Ends with the first complete line (text, then a line break), as streamed: 'line'. */
    private readonly firstLineOnly = false,
  ) {
    this.detokenizer = new StreamingDetokenizer(tokenizer);
    this.stops = new StopMatcher(stop);
  }

  /** Tokens it may still accept. */
  get tokensLeft(): number {
    return this.maxNewTokens - this.tokens.length;
  }

  /** Streams one generated token's text; returns why generation ends after it, if it does. */
  accept(token: number): FinishReason | undefined {
    if (token === this.tokenizer.eosTokenId) return 'eos';
    this.tokens.push(token);
    if (this.tokens.length === 1) this.stats.firstToken();
    const { text, stopped } = this.stops.push(this.detokenizer.push(token));
    this.emit(text);
    if (stopped) return 'stop';
    // The text streamed so far, as the provider reads it (only a piece with a line break can complete a line).
    if (this.firstLineOnly && text.includes('\n') && holdsCompleteLine(this.text)) return 'line';
    return this.tokensLeft <= 0 ? 'length' : undefined;
  }

  /**
   * Ends the stream: bytes held for an incomplete character, and text held as a possible stop sequence, are
   * streamed. Returns the finish reason, 'stop' where that text ends in a stop sequence.
   */
  end(reason: FinishReason): FinishReason {
    if (reason === 'stop') return reason;
    const tail = this.stops.push(this.detokenizer.flush());
    this.emit(tail.text + (tail.stopped ? '' : this.stops.flush()));
    return tail.stopped ? 'stop' : reason;
  }

  private emit(piece: string): void {
    if (piece === '') return;
    this.text += piece;
    this.onText?.(piece);
  }
}

export interface DecodeOptions {
  readonly sampling: SamplingParams;
  /** Prompt-lookup drafts (greedy sampling only: output is identical to plain decoding). */
  readonly speculative: boolean;
  /** Longest draft verified in one pass. */
  readonly maxDraftTokens: number;
  /** Pauses drafting while it does not pay; undefined drafts whenever the context offers a draft. */
  readonly speculation: SpeculationBudget | undefined;
}

/** The decode loop over one window whose prompt is fed: a token a step, plus the draft tokens the model agrees with. */
export class DecodeLoop {
  private readonly vocab: number;
  /** phi's 51,200 logits are padded past the tokenizer's 50,295 tokens: never pick an id with no text. */
  private readonly sampleable: number;
  private readonly sampler: Sampler;
  private readonly speculative: boolean;
  private draftLength: number;
  /** The last pass's logits, [rows, vocab]; row `row` predicts the token after the window's last. */
  private logits: Float32Array;
  private row = 0;

  constructor(
    private readonly decoder: PhiDecoder,
    tokenizer: PhiTokenizer,
    private readonly window: CacheWindow,
    /** The prompt's last logits, [1, vocab]. */
    logits: Float32Array,
    private readonly options: DecodeOptions,
    private readonly stats: StatsAccumulator,
  ) {
    this.vocab = decoder.config.vocab_size;
    this.sampleable = Math.min(this.vocab, tokenizer.vocabSize);
    this.sampler = new Sampler(options.sampling);
    this.speculative = options.speculative && this.sampler.greedy;
    this.draftLength = Math.min(INITIAL_DRAFT_TOKENS, options.maxDraftTokens);
    this.logits = logits;
  }

  /** Generates into `output` until it ends, or `signal` aborts (at a step boundary); returns why it ended. */
  async run(output: TokenOutput, signal: AbortSignal): Promise<FinishReason> {
    this.stats.decodeStarts();
    let ended: FinishReason | undefined = output.tokensLeft <= 0 ? 'length' : undefined;
    while (!ended) {
      await eventsFirst();
      if (signal.aborted) return output.end('cancelled');
      const next = this.nextToken();
      ended = output.accept(next);
      if (ended) break;
      const agreed = await this.append(next, output.tokensLeft);
      for (let i = 0; i < agreed.length && !ended; i++) ended = output.accept(agreed[i]);
    }
    return output.end(ended);
  }

  /** The token after the window's last, sampled from the last pass's logits. */
  private nextToken(): number {
    return this.sampler.sample(this.logits, this.row * this.vocab, this.sampleable);
  }

  /**
   * Appends `token`, with a draft after it when speculating, in one pass; returns the draft tokens the model
   * agreed with (now cached after `token`). The next token's logits are then ready for nextToken.
   */
  private async append(token: number, tokensLeft: number): Promise<readonly number[]> {
    const { window, vocab, sampleable } = this;
    const room = Math.min(tokensLeft, this.decoder.config.max_position_embeddings - window.cache.length - 1);
    const draft = this.draft(token, room);
    const before = window.cache.length;
    const fed = [token, ...draft];
    const passStarted = performance.now();
    this.logits = await feed(this.decoder, window, fed); // [1 + draft, vocab]
    // A draft token stands while the model clearly agrees with it (row i predicts the token after fed token i).
    const clear = (i: number): boolean => draft.length === 0 || topTwoGap(this.logits, i * vocab, sampleable) >= NEAR_TIE * standardDeviation(this.logits, i * vocab, sampleable);
    let agreed = 0;
    while (agreed < draft.length && argmax(this.logits, agreed * vocab, sampleable) === draft[agreed] && clear(agreed)) agreed++;
    this.stats.pass(draft.length, agreed);
    if (clear(agreed)) {
      window.rewindTo(before + 1 + agreed);
      this.row = agreed;
    } else {
      // Too close to call from a batched row: recompute the row alone, as plain decoding computes it.
      window.rewindTo(before + agreed);
      this.logits = await feed(this.decoder, window, [fed[agreed]]); // [1, vocab]
      this.stats.recomputedRows++;
      this.row = 0;
    }
    this.measure(draft.length, agreed, performance.now() - passStarted);
    return draft.slice(0, agreed);
  }

  /** A prompt-lookup draft of at most `room` tokens to follow `token`, when speculating and drafts pay. */
  private draft(token: number, room: number): number[] {
    if (!this.speculative) return [];
    if (!(this.options.speculation?.drafting ?? true)) {
      this.stats.pausedDraftSteps++;
      return [];
    }
    return draftFromContext([...this.window.tokens, token], Math.min(this.draftLength, room));
  }

  /** Times the pass for the SpeculationBudget; drafts grow while accepted whole and shrink after a miss. */
  private measure(drafted: number, agreed: number, passMs: number): void {
    if (drafted === 0) {
      this.options.speculation?.recordPlain(passMs);
      return;
    }
    this.options.speculation?.recordVerify(passMs, 1 + agreed);
    const { maxDraftTokens } = this.options;
    this.draftLength = agreed === drafted ? Math.min(maxDraftTokens, this.draftLength + 2) : Math.max(1, this.draftLength - 1);
  }
}
