/**
 * One inline completion, from VS Code asking to the text shown, as stages (the shape of Continue's
 * core/autocomplete: prefilter → context → template → generate → postprocess):
 *   1. prefilter (completionsWanted): are completions wanted here? The warmer (./warmer.ts) asks the same.
 *   2. cache (./cache.ts): the user typed into a suggestion shown before: its rest, without the model.
 *   3. prompt (CompletionPrompts, ./requestPrompts.ts): the window before the cursor, and a quick prompt.
 *   4. request (completionParams, CompletionBackend in ./backend.ts): the backend streams the model's text.
 *   5. first line (firstLineText): shown as soon as a non-blank line is complete; generation goes on.
 *   6. post-process (shapeSuggestion, ./postprocess.ts): the raw text cut to the suggestion to show.
 * It ends with a typed outcome (./outcome.ts), which it logs and reports. The provider (./provider.ts) is the
 * VS Code side: it turns the document into a request and the text into an inline completion item.
 *
 * Uses no runtime import of 'vscode': the VS Code objects it reads (the workspace's configuration, the document,
 * the cancellation token) are given to it, so it runs in unit tests as it does in the editor.
 */
import type * as vscode from 'vscode';
import type { Settings } from '../settings/settings';
import type { GenerationParams, QuickPrompt } from '../protocol';
import { holdsCompleteLine } from '../shared/firstLine';
import type { CompletionBackend } from './backend';
import { CompletionCache } from './cache';
import { describeOutcome, type CompletionActivity, type CompletionOutcome, type GeneratedOutcome } from './outcome';
import { COMPLETION_STOPS, MAX_SUGGESTION_LINES, postprocessCompletion } from './postprocess';
import type { PrefillRate } from './prefillRate';
import type { CursorText, PromptDocument } from './cursorText';
import { promptText, type CompletionPrompts } from './requestPrompts';

export interface CompletionLogger {
  debug(message: string): void;
  warn(message: string): void;
}

/** Where settings are read for a language's scope ("[python]": {...} overrides `enable`): vscode.workspace. */
export type ScopedConfiguration = Pick<typeof vscode.workspace, 'getConfiguration'>;

/**
 * Documents longer than this get no completions and no warm-ups, and none of their text is read. Completions read
 * only the cursor's neighbourhood (./cursorText.ts), so what grows with the file is only this check's own cost:
 * VS Code's line offsets, which an edit leaves to be recomputed up to the line asked for, here the last (`npm run
 * bench:host`: ≈1 ms a keystroke at p50 for 20 MB, p95 ≈5 ms at 49 MB). A file that large is generated rather
 * than typed. The user is told once per document (PipelineOptions.onNotice).
 */
export const MAX_DOCUMENT_CHARS = 25_000_000;

/** A document's length in characters, without copying its text (VS Code keeps its line offsets). */
export function documentLength(document: Pick<PromptDocument, 'lineCount' | 'lineAt' | 'offsetAt'>): number {
  return document.offsetAt(document.lineAt(document.lineCount - 1).range.end);
}

/** Why a document of `length` characters gets no completions, or undefined when it is not too large. */
function tooLargeForCompletions(length: number): string | undefined {
  if (length <= MAX_DOCUMENT_CHARS) return undefined;
  return `phi-complete: no completions in this file: it has ${(length / 1e6).toFixed(1)} million characters (the limit is ${MAX_DOCUMENT_CHARS / 1e6} million)`;
}

/** Share of characters that are not text (controls, U+FFFD for bytes not decoded) from which text looks binary. */
const MAX_NON_TEXT_SHARE = 0.1;

/**
 * Why the text around a cursor (what completions read of it) gets no completions: it looks binary, a NUL in it or
 * more than MAX_NON_TEXT_SHARE of characters that are not text (a binary file opened anyway, a wrong encoding);
 * undefined when it looks like text.
 */
function binaryLooking(text: Pick<CursorText, 'before' | 'after'>): string | undefined {
  let nonText = 0;
  for (const part of [text.before, text.after]) {
    // Most text has none of them: one scan by the regular expression engine, and counting only where there are some.
    if (!NON_TEXT.test(part)) continue;
    if (part.includes('\0')) return BINARY_NOTICE;
    nonText += part.match(NON_TEXT_ALL)?.length ?? 0;
  }
  return nonText > MAX_NON_TEXT_SHARE * (text.before.length + text.after.length) ? BINARY_NOTICE : undefined;
}

/**
 * What completions read at `position` in a document of `length` characters (documentLength): the text around the
 * cursor (promptText: its neighbourhood only), or why nothing is read or asked there (too large, looks binary).
 * The pipeline and the warmer (./warmer.ts) both read through it.
 */
export function readForCompletions(document: PromptDocument, position: vscode.Position, length: number, settings: Settings): { readonly text: CursorText } | { readonly notice: string } {
  const tooLarge = tooLargeForCompletions(length);
  if (tooLarge !== undefined) return { notice: tooLarge };
  const text = promptText(document, position, settings);
  const binary = binaryLooking(text);
  return binary === undefined ? { text } : { notice: binary };
}

/** Characters that are not text: controls other than tab, line breaks, vertical tab, form feed and escape; DEL; the replacement character. */
const NON_TEXT = /[\0-\x08\x0e-\x1a\x1c-\x1f\x7f\ufffd]/;
const NON_TEXT_ALL = new RegExp(NON_TEXT.source, 'g');
const BINARY_NOTICE = 'phi-complete: no completions in this file: it looks binary (NUL or other non-text characters)';

/** 1. Whether completions are wanted in a document of `languageId`: it is in phiComplete.languages, and `enable` (as overridden for it) is on. */
export function completionsWanted(languageId: string, settings: Settings, configuration: ScopedConfiguration): boolean {
  if (!settings.languages.includes(languageId)) return false;
  return configuration.getConfiguration('phiComplete', { languageId }).get<boolean>('enable', settings.enable);
}

/** 4. What a completion request asks the backend for (`quick`: the prompts' quick prompt, where there is one). */
export function completionParams(settings: Settings, quick?: QuickPrompt): GenerationParams {
  return {
    maxNewTokens: settings.completionMaxTokens,
    temperature: settings.temperature,
    topK: 0,
    topP: settings.topP,
    seed: 0,
    stop: COMPLETION_STOPS,
    speculative: settings.speculative,
    quick,
  };
}

/** 5. The raw text so far up to its last newline, once it holds a complete non-blank line (to be shaped and shown); undefined before. */
export function firstLineText(raw: string): string | undefined {
  return holdsCompleteLine(raw) ? raw.slice(0, raw.lastIndexOf('\n')) : undefined;
}

/** Where a suggestion goes: the document's text around the cursor, its line ending and language. */
export interface SuggestionPlace {
  readonly prefix: string;
  readonly suffix: string;
  readonly eol: '\n' | '\r\n';
  readonly languageId: string;
}

/** 6. The suggestion to show for the model's raw text at `place` ('' for none). */
export function shapeSuggestion(raw: string, place: SuggestionPlace): string {
  return postprocessCompletion({ completion: raw, prefix: place.prefix, suffix: place.suffix, maxLines: MAX_SUGGESTION_LINES, eol: place.eol, languageId: place.languageId });
}

/** The caller's cancellation (a vscode.CancellationToken): the user typed on. */
export interface CancellationSignal {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => void): { dispose(): unknown };
}

/** One request: the cursor in a document. */
export interface CompletionRequest {
  readonly document: PromptDocument;
  /** The document's URI: the backend's cache for it. */
  readonly sequence: string;
  readonly position: vscode.Position;
  /** The document's length in characters (documentLength): over MAX_DOCUMENT_CHARS none of its text is read. */
  readonly length: number;
  readonly eol: '\n' | '\r\n';
  /** Asked for by typing (then after the debounce), not by command. */
  readonly automatic: boolean;
  /** The suggestion grew after its first line was shown: asks the editor to show it again. */
  readonly showAgain?: () => void;
}

export interface PipelineOptions {
  readonly backend: CompletionBackend;
  readonly settings: () => Settings;
  /** Where `enable` is read per language. */
  readonly configuration: ScopedConfiguration;
  /** The prompts the warmer has the backend read ahead (one instance, shared with it). */
  readonly prompts: CompletionPrompts;
  /** Learns from every request how fast the backend reads (quick prompts are sized by it). */
  readonly prefillRate: PrefillRate;
  /** Loads the model if it is not; false when there is none to use. */
  readonly ensureModel: () => Promise<boolean>;
  readonly log: CompletionLogger;
  /** A request to the backend starting, and ending with its outcome (not for answers from the cache). */
  readonly onActivity?: (activity: CompletionActivity) => void;
  /** A one-line message for the user (a document too large for completions, or binary: once per document). */
  readonly onNotice?: (message: string) => void;
}

function delay(ms: number, token: CancellationSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(true), ms);
    token.onCancellationRequested(() => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

export class CompletionPipeline {
  private readonly cache = new CompletionCache();
  /** Documents the user was told get no completions (their sequences). */
  private readonly told = new Set<string>();

  constructor(private readonly options: PipelineOptions) {}

  /** Forgets the suggestions shown so far (another backend answers from now on: its suggestions may differ). */
  forgetSuggestions(): void {
    this.cache.clear();
  }

  /**
   * The text to show at the request's cursor, or undefined for none. From the model, the first line is shown as
   * soon as it is complete; generation goes on, its full text lands in the cache, and request.showAgain is called
   * so that the suggestion grows.
   */
  async complete(request: CompletionRequest, token: CancellationSignal): Promise<string | undefined> {
    const { backend, prompts, prefillRate, log } = this.options;
    const settings = this.options.settings();
    const { document, position } = request;
    if (!completionsWanted(document.languageId, settings, this.options.configuration)) return undefined;
    // Only the neighbourhood of the cursor is read, whatever the file's size: what the prompts need.
    const read = readForCompletions(document, position, request.length, settings);
    if ('notice' in read) return this.noCompletions(request.sequence, read.notice);
    const around = read.text;
    const cached = this.cache.lookup(around);
    if (cached !== undefined) {
      log.debug(describeOutcome({ source: 'cache', text: cached }));
      return cached || undefined;
    }
    const called = performance.now();
    if (request.automatic) {
      // Not longer when the model is slow: a request the next keystroke cancels stops within one model pass, and
      // what it read stays cached for the next one, while every millisecond of debounce is added to every wait.
      if (!(await delay(settings.debounceMs, token))) return undefined;
    }
    if (!(await this.options.ensureModel()) || token.isCancellationRequested) return undefined;

    // The prompts the warmer (./warmer.ts) has the backend read ahead, as the user types and when the cursor rests.
    const { prompt, quick } = prompts.at(around, request.sequence, settings);
    const place: SuggestionPlace = { prefix: around.before, suffix: around.after, eol: request.eol, languageId: document.languageId };

    const controller = new AbortController();
    let raw = '';
    let firstLineShown = false;
    let resolveFirstLine: (text: string) => void = () => undefined;
    const firstLine = new Promise<string>((resolve) => (resolveFirstLine = resolve));
    // Until the first line is shown, the caller's cancellation (the user typed on) stops the generation.
    const cancelling = token.onCancellationRequested(() => {
      if (!firstLineShown) controller.abort();
    });
    this.options.onActivity?.({ generating: true });
    let outcome: CompletionOutcome | undefined;
    const sent = performance.now();
    const generation = backend.generate(prompt, completionParams(settings, quick), (delta) => {
      raw += delta;
      const lines = firstLineShown ? undefined : firstLineText(raw);
      if (lines !== undefined) resolveFirstLine(shapeSuggestion(lines, place));
    }, controller.signal, request.sequence);

    void generation.then((done) => {
      const { stats } = done;
      prefillRate.recordRequest(done.finishReason, stats);
      const text = shapeSuggestion(done.text, place);
      if (done.finishReason !== 'cancelled') this.cache.set(around, text);
      const generated: GeneratedOutcome = {
        source: 'model',
        text,
        finishReason: done.finishReason,
        firstLineShownEarly: firstLineShown,
        context: { tokens: stats.promptTokens - stats.truncatedTokens, quick: stats.quick },
        tokens: { generated: stats.generatedTokens, reused: stats.reusedTokens, prompt: stats.promptTokens },
        timings: { askedMs: sent - called, answeredMs: performance.now() - sent, firstTokenMs: stats.firstTokenMs, decodeMs: stats.decodeMs },
      };
      outcome = generated;
      log.debug(describeOutcome(generated));
      resolveFirstLine(text);
      // If the suggestion grew after its first line was shown, show the rest.
      if (firstLineShown && text.length > 0) request.showAgain?.();
    }, (error: unknown) => {
      const failed: CompletionOutcome = { source: 'failed', message: (error as Error).message, quiet: (error as { code?: unknown }).code === 'disposed' };
      outcome = failed;
      if (!failed.quiet) log.warn(describeOutcome(failed));
      resolveFirstLine('');
    }).finally(() => {
      cancelling.dispose();
      // No outcome only when handling the answer threw (a bug): reported as a failure, so the listeners still see the end.
      this.options.onActivity?.({ generating: false, outcome: outcome ?? { source: 'failed', message: 'the answer could not be handled', quiet: false } });
    });

    const shown = await firstLine;
    firstLineShown = true;
    if (token.isCancellationRequested || shown === '') return undefined;
    return shown;
  }

  /** No completions in the document of `sequence`, for `reason`: told once. */
  private noCompletions(sequence: string, reason: string): undefined {
    if (!this.told.has(sequence)) {
      this.told.add(sequence);
      this.options.log.debug(reason);
      this.options.onNotice?.(reason);
    }
    return undefined;
  }
}
