/**
 * Background prefill: warms the worker's KV cache for the file in front of the user before a completion is asked
 * for, so a completion reads only the last few tokens typed instead of the file (~8 s for 800 tokens with the
 * full-size model on a 2-core CPU). The prompts are the provider's own (CompletionPrompts, ./requestPrompts.ts),
 * so the worker reads exactly what the request will (read from the same text around the cursor, ./cursorText.ts:
 * its neighbourhood, not the whole file; in a notebook cell, with the cells above it). Two kinds of warm-up:
 * - While the user types, the worker reads along: after each edit, what the request sent now would read (its quick
 *   prompt's window when it would answer from that), one warm-up in flight at a time. So when typing stops, the
 *   request finds the text typed already read, and only decodes. When one ends and nothing was typed meanwhile, the
 *   whole window is read until the next keystroke (whose warm-up takes over at the worker's next pass).
 * - Whenever nothing more urgent runs, the whole window the request will use (after what the request sent now would
 *   read, where that is less): when the model has loaded, when a text editor becomes active, after each completion,
 *   and when the cursor rests (no selection change for REST_MS), whether or not it moved. A read cut short resumes
 *   where it stopped (what the worker read stays cached). When the window will move within LOOK_AHEAD_TOKENS of
 *   typing, the window it moves to first (what was read of the one it leaves is lost), then the current one.
 * The worker runs a warm-up only while no generation is in flight or queued, in short passes, and any completion
 * request takes over from it at the next pass; what it read stays cached.
 *
 * Nothing is done where the completion pipeline's prefilter says no (completionsWanted, ./pipeline.ts: completions
 * off globally or for the document's language, languages not in phiComplete.languages; documents too large or that
 * look binary, where the pipeline asks nothing either), while the window is not
 * focused, with a selection, when the model is not loaded and ready (a warm-up never starts the worker or loads a
 * model), or when the prompt is the one last warmed for that document. VS Code gives extensions no battery-saver or power-source API, so the warmer cannot back off on
 * battery; what bounds its work is the above: only while typing or on a rest, only for a changed prompt, only
 * while the model is idle.
 *
 * Uses only the vscode API objects its constructor is given (no runtime import of 'vscode').
 */
import type * as vscode from 'vscode';
import type { Settings, SettingsReader } from '../settings/settings';
import type { WorkerState } from '../client/workerClient';
import type { PrefilledEvent, PrefillOptions, PrefillOutcome } from '../protocol';
import { Disposable } from '../util/disposable';
import type { CursorText } from './cursorText';
import { completionSource, type NotebookWorkspace } from './notebookText';
import { completionsWanted, documentLength, readForCompletions, type ScopedConfiguration } from './pipeline';
import type { PrefillRate } from './prefillRate';
import { windowOf, type CompletionPrompts, type RequestPrompts } from './requestPrompts';
import { estimateTokens } from './tokenEstimate';

/** How long the cursor must rest (no selection change, so no typing) before its file is warmed. */
export const REST_MS = 400;
/** Prompts remembered as warmed, two a document (enough for the files the cache holds). */
const REMEMBERED_DOCUMENTS = 128;
/**
 * Typing ahead the warmer looks, in tokens: when the window's start will move within this much more text (about
 * five lines of code), the window it moves to is warmed as well.
 */
export const LOOK_AHEAD_TOKENS = 64;

/** The parts of vscode.window the warmer uses. */
export type WarmerWindow = Pick<typeof vscode.window, 'activeTextEditor' | 'state' | 'onDidChangeActiveTextEditor' | 'onDidChangeTextEditorSelection'>;
/** The parts of vscode.workspace the warmer uses (the per-language `enable` override, the open notebooks). */
export type WarmerWorkspace = ScopedConfiguration & NotebookWorkspace;
/** The parts of the WorkerClient the warmer uses. */
export interface WarmTarget {
  readonly state: WorkerState;
  onStateChange(listener: (state: WorkerState) => void): { dispose(): void };
  prefill(sequence: string, prompt: string, maxNewTokens: number, options?: PrefillOptions): Promise<PrefilledEvent | undefined>;
}

/** A rest's warm-ups: the window requests use now, and the one it moves to within LOOK_AHEAD_TOKENS of typing. */
type WarmUpKind = 'window' | 'ahead';

export interface WarmerLogger {
  debug(message: string): void;
}

/** What a request at the cursor would send, read at one version of the document. */
interface CursorPrompts {
  readonly version: number;
  readonly position: vscode.Position;
  /** The worker's sequence (the document's, or its notebook's). */
  readonly sequence: string;
  readonly text: CursorText;
  readonly prompts: RequestPrompts;
}

export class CompletionWarmer extends Disposable {
  private timer: NodeJS.Timeout | undefined;
  /** The last prompt warmed (or being warmed) for each document URI, oldest first. */
  private readonly warmed = new Map<string, string>();
  /** The active document and its version when the warmer last looked: a new version means an edit. */
  private seen: { document: vscode.TextDocument; version: number } | undefined;
  /** Whether a warm-up that follows typing is in flight, and whether the user typed again meanwhile. */
  private following = false;
  private followAgain = false;

  constructor(
    private readonly window: WarmerWindow,
    private readonly workspace: WarmerWorkspace,
    private readonly worker: WarmTarget,
    private readonly settings: SettingsReader,
    private readonly prompts: CompletionPrompts,
    private readonly log?: WarmerLogger,
    /** Learns from every warm-up how fast the worker reads (quick prompts are sized by it). */
    private readonly prefillRate?: PrefillRate,
    private readonly restMs = REST_MS,
  ) {
    super();
    this.register(window.onDidChangeActiveTextEditor((editor) => {
      if (!editor) return;
      this.edited(editor.document);
      this.schedule(editor);
    }));
    this.register(window.onDidChangeTextEditorSelection((event) => {
      if (event.textEditor !== this.window.activeTextEditor) return;
      if (this.edited(event.textEditor.document)) this.follow(event.textEditor);
      this.schedule(event.textEditor);
    }));
    // The model just loaded: nothing was read yet, and the user may not move the cursor for a while.
    this.register(worker.onStateChange((state) => {
      if (state === 'ready' && this.window.activeTextEditor) this.schedule(this.window.activeTextEditor);
    }));
    this.register({ dispose: () => clearTimeout(this.timer) });
    if (window.activeTextEditor) {
      this.edited(window.activeTextEditor.document);
      this.schedule(window.activeTextEditor);
    }
  }

  /**
   * A completion ended: the worker is free again, so the window is read, whether or not the cursor moved. At once
   * when it finished (the cursor has rested since it was asked for); after a rest when it was cancelled or failed
   * (the user typed on, and that keystroke's own warm-up comes first).
   */
  completionEnded(finished: boolean): void {
    const editor = this.window.activeTextEditor;
    if (editor) this.schedule(editor, finished ? 0 : this.restMs);
  }

  /** Whether `document` changed since the warmer last looked at it (typing, not only moving the cursor); looks at it. */
  private edited(document: vscode.TextDocument): boolean {
    const before = this.seen;
    this.seen = { document, version: document.version };
    return before?.document === document && before.version !== document.version;
  }

  /** Warms `editor` once it and its cursor have rested for `delayMs` (every change starts the wait again). */
  private schedule(editor: vscode.TextEditor, delayMs = this.restMs): void {
    clearTimeout(this.timer);
    if (this.isDisposed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.window.activeTextEditor === editor) void this.warm(editor);
    }, delayMs);
  }

  /**
   * What a request at `editor`'s cursor would send now, or undefined when completions would not be asked for there
   * (so warming is not worth it). `known`: what was found before, reused while the document and cursor are the same.
   */
  private promptsAt(editor: vscode.TextEditor, known?: CursorPrompts): CursorPrompts | undefined {
    const { document } = editor;
    const settings = this.settings();
    if (this.isDisposed || !this.window.state.focused || !editor.selection.isEmpty || this.worker.state !== 'ready') return undefined;
    // What the completion pipeline asks first: the language, `enable` as overridden for it, and the size.
    if (!completionsWanted(document.languageId, settings, this.workspace)) return undefined;
    const position = editor.selection.active;
    if (known?.version === document.version && samePosition(known.position, position)) return known;
    // What the provider reads: a notebook cell with the code cells above it.
    const source = completionSource(this.workspace, document, position);
    const read = readForCompletions(source.document, source.position, documentLength(source.document), settings);
    if ('notice' in read) return undefined;
    const { text } = read;
    return { version: document.version, position, sequence: source.sequence, text, prompts: this.prompts.at(text, source.sequence, settings) };
  }

  /**
   * Has the worker read what the request for the cursor would read now, one warm-up at a time: an edit while one
   * is in flight is followed once it ends. A warm-up the worker turns away (a completion is running) is dropped:
   * that completion reads the text itself.
   */
  private follow(editor: vscode.TextEditor): void {
    if (this.following) {
      this.followAgain = true;
      return;
    }
    const followed = this.window.activeTextEditor === editor ? this.promptsAt(editor) : undefined;
    if (followed === undefined) return;
    const settings = this.settings();
    const { sequence, prompts: { prompt, quick } } = followed;
    this.following = true;
    this.followAgain = false;
    void this.prefill(sequence, undefined, prompt, settings, { quick, nextOnly: true }).finally(() => {
      this.following = false;
      const now = this.window.activeTextEditor;
      if (now?.document !== editor.document) return;
      // Typed meanwhile: follow that first. Else the worker is free until the next keystroke: read the window
      // (from the prompts just followed, when nothing changed since).
      if (this.followAgain) this.follow(now);
      else void this.warm(now, followed);
    });
  }

  private async warm(editor: vscode.TextEditor, known?: CursorPrompts): Promise<void> {
    const found = this.promptsAt(editor, known);
    if (found === undefined) return;
    const { text, position, sequence, prompts: { prompt, quick } } = found;
    const settings = this.settings();
    // The window the prompt moves to once the user has typed LOOK_AHEAD_TOKENS more (what a smaller budget gives
    // now), into a window of its own in the worker. Read first: typing is about to make it the window requests use,
    // and what was read of the one they use now is lost when it moves (a window is re-read from its start). None
    // while all the text before the cursor fits that smaller budget: the window is that text either way.
    const lookAheadBudget = settings.contextTokens - LOOK_AHEAD_TOKENS;
    const fitsWhole = text.beforeStart === 0 && estimateTokens(text.before) <= lookAheadBudget;
    const ahead = lookAheadBudget >= LOOK_AHEAD_TOKENS && !fitsWhole ? windowOf(text, lookAheadBudget) : prompt;
    const reads: [WarmUpKind, string, PrefillOptions][] = ahead === prompt ? [['window', prompt, { quick }]] : [['ahead', ahead, {}], ['window', prompt, { quick }]];
    for (const [kind, text, options] of reads) {
      const warmed = await this.prefill(sequence, kind, text, settings, options);
      // A completion was in flight: try again once it is likely done, if the cursor still rests there.
      if (warmed === 'busy' && this.stillAt(editor, position)) this.schedule(editor);
      if (warmed !== 'done' || !this.stillAt(editor, position)) return;
    }
  }

  private stillAt(editor: vscode.TextEditor, position: vscode.Position): boolean {
    return this.window.activeTextEditor === editor && samePosition(editor.selection.active, position);
  }

  /**
   * Asks the worker to prefill `prompt`. A rest's warm-up (`kind`) is skipped when its prompt was the last one
   * warmed for this document's `kind` (then 'done'), and remembered only once it finished.
   */
  private async prefill(sequence: string, kind: WarmUpKind | undefined, prompt: string, settings: Settings, options: PrefillOptions = {}): Promise<PrefillOutcome | 'failed'> {
    const key = `${kind} ${sequence}`;
    if (kind) {
      if (this.warmed.get(key) === prompt) return 'done';
      this.warmed.delete(key);
      this.warmed.set(key, prompt);
      if (this.warmed.size > REMEMBERED_DOCUMENTS) this.warmed.delete(this.warmed.keys().next().value!);
    }
    let answer: PrefilledEvent | undefined;
    try {
      answer = await this.worker.prefill(sequence, prompt, settings.completionMaxTokens, options);
    } catch (error) {
      this.log?.debug(`warm-up of ${sequence} failed: ${(error as Error).message}`);
    }
    if (answer) {
      const { reusedTokens, prefilledTokens, prefillMs, quick } = answer.stats;
      this.prefillRate?.record(prefilledTokens, prefillMs);
      const what = kind === 'ahead' ? ' (next window)' : kind === undefined ? ' (typing)' : '';
      this.log?.debug(`warm-up${what} ${answer.outcome}: ${sequence}, ${prefilledTokens} tokens read in ${Math.round(prefillMs)} ms, ${reusedTokens} already cached${quick ? ', quick window first' : ''}`);
    }
    // Only a finished warm-up counts: a skipped or interrupted one is tried again at the next rest.
    if (answer?.outcome === 'done') return 'done';
    if (kind && this.warmed.get(key) === prompt) this.warmed.delete(key);
    return answer?.outcome ?? 'failed';
  }
}

function samePosition(a: vscode.Position, b: vscode.Position): boolean {
  return a.line === b.line && a.character === b.character;
}
