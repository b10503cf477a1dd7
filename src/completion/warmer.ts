/**
 * Background prefill: warms the worker's KV cache for the file in front of the user before a completion is asked
 * for, so the first completion after switching files does not wait for the model to read the file (~8 s for 800
 * tokens with the full-size model on a 2-core CPU). When a text editor becomes active, or its cursor rests (no
 * selection change for REST_MS, so no typing), it builds the completion prompt for the cursor exactly as the
 * provider does (completionPromptAt) and asks the worker to prefill the document's sequence with it. The worker
 * runs a prefill only while no generation is in flight or queued, and any completion request takes over from it.
 *
 * Nothing is done while completions are off (globally or for the document's language), for languages not in
 * phiComplete.languages, while the window is not focused, when the model is not loaded and ready (a warm-up
 * never starts the worker or loads a model), or when the prompt is the one last warmed for that document.
 * VS Code gives extensions no battery-saver or power-source API, so the warmer cannot back off on battery; what
 * bounds its work is the above: only on a rest, only for a changed prompt, only while the model is idle.
 *
 * Uses only the vscode API objects its constructor is given (no runtime import of 'vscode').
 */
import type * as vscode from 'vscode';
import type { Settings } from '../config';
import type { WorkerState } from '../client/workerClient';
import type { PrefillOutcome } from '../inference/generator';
import type { PrefilledEvent } from '../protocol';
import { Disposable } from '../util/disposable';
import { buildCompletionPrompt } from './context';
import type { PrefillRate } from './prefillRate';

/** How long the cursor must rest (no selection change, so no typing) before its file is warmed. */
export const REST_MS = 400;
/** Code is roughly this many characters per token; the worker keeps the tail if a prompt is still too long. */
export const CHARS_PER_TOKEN = 3;
/** Prompts remembered as warmed, two a document (enough for the files the cache holds). */
const REMEMBERED_DOCUMENTS = 128;
/**
 * Typing ahead the warmer looks, in tokens: when the window's start will move within this much more text (about
 * five lines of code), the window it moves to is warmed as well.
 */
export const LOOK_AHEAD_TOKENS = 64;

/** What completionPromptAt reads of a document (a vscode.TextDocument). */
export type PromptDocument = Pick<vscode.TextDocument, 'getText' | 'offsetAt' | 'languageId' | 'fileName'>;

/**
 * The completion prompt for the cursor at `position`, with the text before and after it: the provider's and the
 * warmer's, so that a warmed cache holds exactly what the provider's request reads. `tokenBudget`: the provider's
 * quick prompt asks for fewer tokens than the setting.
 */
export function completionPromptAt(document: PromptDocument, position: vscode.Position, settings: Settings, tokenBudget = settings.contextTokens): { prompt: string; prefix: string; suffix: string } {
  const text = document.getText();
  const offset = document.offsetAt(position);
  const prefix = text.slice(0, offset);
  const suffix = text.slice(offset);
  const { prompt } = buildCompletionPrompt({
    prefix, suffix, languageId: document.languageId, fileName: document.fileName,
    tokenBudget, countTokens: (part) => Math.ceil(part.length / CHARS_PER_TOKEN),
  });
  return { prompt, prefix, suffix };
}

/** The parts of vscode.window the warmer uses. */
export type WarmerWindow = Pick<typeof vscode.window, 'activeTextEditor' | 'state' | 'onDidChangeActiveTextEditor' | 'onDidChangeTextEditorSelection'>;
/** The parts of vscode.workspace the warmer uses (the per-language `enable` override). */
export type WarmerWorkspace = Pick<typeof vscode.workspace, 'getConfiguration'>;
/** The parts of the WorkerClient the warmer uses. */
export interface WarmTarget {
  readonly state: WorkerState;
  prefill(sequence: string, prompt: string, maxNewTokens: number): Promise<PrefilledEvent | undefined>;
}

export interface WarmerLogger {
  debug(message: string): void;
}

export class CompletionWarmer extends Disposable {
  private timer: NodeJS.Timeout | undefined;
  /** The last prompt warmed (or being warmed) for each document URI, oldest first. */
  private readonly warmed = new Map<string, string>();

  constructor(
    private readonly window: WarmerWindow,
    private readonly workspace: WarmerWorkspace,
    private readonly worker: WarmTarget,
    private readonly settings: () => Settings,
    private readonly log?: WarmerLogger,
    /** Learns from every warm-up how fast the worker reads (the provider sizes its quick prompt by it). */
    private readonly prefillRate?: PrefillRate,
    private readonly restMs = REST_MS,
  ) {
    super();
    this.register(window.onDidChangeActiveTextEditor((editor) => {
      if (editor) this.schedule(editor);
    }));
    this.register(window.onDidChangeTextEditorSelection((event) => {
      if (event.textEditor === this.window.activeTextEditor) this.schedule(event.textEditor);
    }));
    this.register({ dispose: () => clearTimeout(this.timer) });
    if (window.activeTextEditor) this.schedule(window.activeTextEditor);
  }

  /** Warms `editor` once it and its cursor have rested for restMs (every change starts the wait again). */
  private schedule(editor: vscode.TextEditor): void {
    clearTimeout(this.timer);
    if (this.isDisposed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.window.activeTextEditor === editor) void this.warm(editor);
    }, this.restMs);
  }

  private async warm(editor: vscode.TextEditor): Promise<void> {
    const document = editor.document;
    const settings = this.settings();
    if (!this.window.state.focused || !editor.selection.isEmpty || this.worker.state !== 'ready') return;
    if (!settings.languages.includes(document.languageId)) return;
    // `enable` may be overridden per language ("[python]": {...}), as the provider reads it.
    if (!this.workspace.getConfiguration('phiComplete', { languageId: document.languageId }).get<boolean>('enable', settings.enable)) return;
    const sequence = document.uri.toString();
    const position = editor.selection.active;
    const { prompt } = completionPromptAt(document, position, settings);
    const warmed = await this.prefill(sequence, 'window', prompt, settings);
    // A completion was in flight: try again once it is likely done, if the cursor still rests there.
    if (warmed === 'busy' && this.stillAt(editor, position)) this.schedule(editor);
    if (warmed !== 'done') return;
    // The window the prompt moves to once the user has typed LOOK_AHEAD_TOKENS more (what a smaller budget gives
    // now): warmed too, into a window of its own in the worker, so the move re-reads nothing either.
    const lookAheadBudget = settings.contextTokens - LOOK_AHEAD_TOKENS;
    if (lookAheadBudget < LOOK_AHEAD_TOKENS || !this.stillAt(editor, position)) return;
    const { prompt: ahead } = completionPromptAt(document, position, { ...settings, contextTokens: lookAheadBudget });
    if (ahead !== prompt && (await this.prefill(sequence, 'ahead', ahead, settings)) === 'busy' && this.stillAt(editor, position)) this.schedule(editor);
  }

  private stillAt(editor: vscode.TextEditor, position: vscode.Position): boolean {
    const now = editor.selection.active;
    return this.window.activeTextEditor === editor && now.line === position.line && now.character === position.character;
  }

  /** Asks the worker to prefill `prompt` unless it was the last one warmed for this document's `kind` (then 'done'). */
  private async prefill(sequence: string, kind: 'window' | 'ahead', prompt: string, settings: Settings): Promise<PrefillOutcome | 'failed'> {
    const key = `${kind} ${sequence}`;
    if (this.warmed.get(key) === prompt) return 'done';
    this.warmed.delete(key);
    this.warmed.set(key, prompt);
    if (this.warmed.size > REMEMBERED_DOCUMENTS) this.warmed.delete(this.warmed.keys().next().value!);
    let answer: PrefilledEvent | undefined;
    try {
      answer = await this.worker.prefill(sequence, prompt, settings.completionMaxTokens);
    } catch (error) {
      this.log?.debug(`warm-up of ${sequence} failed: ${(error as Error).message}`);
    }
    if (answer) {
      const { reusedTokens, prefilledTokens, prefillMs } = answer.stats;
      this.prefillRate?.record(prefilledTokens, prefillMs);
      this.log?.debug(`warm-up${kind === 'ahead' ? ' (next window)' : ''} ${answer.outcome}: ${sequence}, ${prefilledTokens} tokens read in ${Math.round(prefillMs)} ms, ${reusedTokens} already cached`);
    }
    // Only a finished warm-up counts: a skipped or interrupted one is tried again at the next rest.
    if (answer?.outcome === 'done') return 'done';
    if (this.warmed.get(key) === prompt) this.warmed.delete(key);
    return answer?.outcome ?? 'failed';
  }
}
