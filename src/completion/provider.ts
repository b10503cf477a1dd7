/**
 * Inline completions: VS Code asks, the cache answers at once when the user is typing into the suggestion
 * already shown; otherwise, after the debounce, the worker generates from the prefix. The first line is shown
 * as soon as it is complete; generation goes on, its full text lands in the cache, and VS Code is asked again
 * so the suggestion grows. No model work happens while completions are off for the document's language.
 */
import * as vscode from 'vscode';
import type { SettingsReader } from '../settings/settings';
import { WorkerError, type WorkerClient } from '../client/workerClient';
import { CompletionCache } from './cache';
import { COMPLETION_STOPS, MAX_SUGGESTION_LINES, postprocessCompletion } from './postprocess';
import type { PrefillRate } from './prefillRate';
import type { CompletionPrompts } from './requestPrompts';

export interface CompletionLogger {
  debug(message: string): void;
  warn(message: string): void;
}

/** How much of the file before the cursor a suggestion was generated from. */
export interface SuggestionContext {
  readonly tokens: number;
  /** Answered from the quick prompt (the window was not read yet), not the whole window. */
  readonly quick: boolean;
}

/** A completion request starting, or ending with the context its suggestion used (none when it was cancelled or failed). */
export type CompletionActivity = { readonly generating: true } | { readonly generating: false; readonly context?: SuggestionContext };

export function describeContext(context: SuggestionContext): string {
  return `context ${context.tokens} tokens (${context.quick ? 'quick prompt' : 'whole window'})`;
}

function delay(ms: number, token: vscode.CancellationToken): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(true), ms);
    token.onCancellationRequested(() => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

export class InlineCompletionProvider implements vscode.InlineCompletionItemProvider {
  private readonly cache = new CompletionCache();

  constructor(
    private readonly client: WorkerClient,
    private readonly settings: SettingsReader,
    private readonly ensureModel: () => Promise<boolean>,
    private readonly log: CompletionLogger,
    private readonly onActivity: (activity: CompletionActivity) => void,
    private readonly prompts: CompletionPrompts,
    /** Learns from every request how fast the worker reads (quick prompts are sized by it). */
    private readonly prefillRate: PrefillRate,
  ) {}

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    const settings = this.settings();
    if (!settings.languages.includes(document.languageId)) return undefined;
    // `enable` may be overridden per language ("[python]": {...}); the language scope resolves that.
    if (!vscode.workspace.getConfiguration('phiComplete', { languageId: document.languageId }).get<boolean>('enable', settings.enable)) return undefined;
    const prefix = document.getText(new vscode.Range(new vscode.Position(0, 0), position));
    const cached = this.cache.lookup(prefix);
    if (cached !== undefined) {
      this.log.debug(`completion served from cache (${cached.length} chars)`);
      return cached ? [new vscode.InlineCompletionItem(cached, new vscode.Range(position, position))] : undefined;
    }
    const called = performance.now();
    if (context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic) {
      // Not longer when the model is slow: a request the next keystroke cancels stops within one model pass, and
      // what it read stays cached for the next one, while every millisecond of debounce is added to every wait.
      if (!(await delay(settings.debounceMs, token))) return undefined;
    }
    if (!(await this.ensureModel()) || token.isCancellationRequested) return undefined;

    // The prompts the warmer (./warmer.ts) has the worker read ahead, as the user types and when the cursor rests.
    const { prompt, suffix, quick } = this.prompts.at(document, document.uri.toString(), position, settings);
    const eol = document.eol === vscode.EndOfLine.CRLF ? '\r\n' : '\n';
    const shape = (raw: string): string => postprocessCompletion({ completion: raw, prefix, suffix, maxLines: MAX_SUGGESTION_LINES, eol, languageId: document.languageId });

    const controller = new AbortController();
    let raw = '';
    let firstLineShown = false;
    let resolveFirstLine: (text: string) => void = () => undefined;
    const firstLine = new Promise<string>((resolve) => (resolveFirstLine = resolve));
    // Until the first line is shown, VS Code's cancellation (the user typed on) stops the generation.
    const cancelling = token.onCancellationRequested(() => {
      if (!firstLineShown) controller.abort();
    });
    this.onActivity({ generating: true });
    let used: SuggestionContext | undefined;
    const sent = performance.now();
    const generation = this.client.generate(prompt, {
      maxNewTokens: settings.completionMaxTokens,
      temperature: settings.temperature,
      topK: 0,
      topP: settings.topP,
      seed: 0,
      stop: COMPLETION_STOPS,
      speculative: settings.speculative,
      quick,
    }, (delta) => {
      raw += delta;
      if (!firstLineShown && /\S[^\n]*\n/.test(raw)) resolveFirstLine(shape(raw.slice(0, raw.lastIndexOf('\n'))));
    }, controller.signal, document.uri.toString());

    void generation.then((done) => {
      const { stats } = done;
      this.prefillRate.recordRequest(done.finishReason, stats);
      const text = shape(done.text);
      if (done.finishReason !== 'cancelled') {
        this.cache.set(prefix, text);
        used = { tokens: stats.promptTokens - stats.truncatedTokens, quick: stats.quick };
      }
      this.log.debug(`completion: ${done.stats.generatedTokens} tokens, first token ${Math.round(done.stats.firstTokenMs)} ms, `
        + `${(done.stats.generatedTokens / Math.max(1e-3, done.stats.decodeMs / 1000)).toFixed(1)} tok/s, reused ${done.stats.reusedTokens}/${done.stats.promptTokens} prompt tokens${stats.quick ? ' (quick prompt)' : ''}, ${done.finishReason}; `
        + `asked ${Math.round(sent - called)} ms after VS Code asked, answered ${Math.round(performance.now() - sent)} ms later`
        + `; ${describeContext({ tokens: stats.promptTokens - stats.truncatedTokens, quick: stats.quick })}`);
      resolveFirstLine(text);
      // If the suggestion grew after its first line was shown, and the user is still here, show the rest.
      if (firstLineShown && text.length > 0 && vscode.window.activeTextEditor?.document === document) {
        void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
      }
    }, (error: unknown) => {
      if (!(error instanceof WorkerError && error.code === 'disposed')) this.log.warn(`completion failed: ${(error as Error).message}`);
      resolveFirstLine('');
    }).finally(() => {
      cancelling.dispose();
      this.onActivity({ generating: false, context: used });
    });

    const text = await firstLine;
    firstLineShown = true;
    if (token.isCancellationRequested || text === '') return undefined;
    return [new vscode.InlineCompletionItem(text, new vscode.Range(position, position))];
  }
}
