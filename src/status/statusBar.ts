import * as vscode from 'vscode';
import type { SuggestionContext } from '../completion/outcome';
import { Disposable } from '../util/disposable';

/** `paused`: the inference worker crashed too often and is not restarted until the user asks. */
export type StatusKind = 'off' | 'idle' | 'loading' | 'ready' | 'generating' | 'paused' | 'error';

const ICONS: Record<StatusKind, string> = {
  off: '$(circle-slash)',
  idle: '$(sparkle)',
  loading: '$(loading~spin)',
  ready: '$(sparkle)',
  generating: '$(loading~spin)',
  paused: '$(debug-pause)',
  error: '$(warning)',
};

/**
 * The status bar item: what the local model is doing. A click opens the command menu; while paused it restarts
 * the inference worker.
 */
export class StatusBar extends Disposable {
  private readonly item = this.register(vscode.window.createStatusBarItem('phiComplete.status', vscode.StatusBarAlignment.Right, 100));
  private device = '';
  private shown: { kind: StatusKind; detail?: string } = { kind: 'idle' };
  /** How much of the file the last suggestion read, for the tooltip. */
  private lastContext = '';
  /** The server suggestions come from (its host), when they come from one; its last answer's timings. */
  private server: { host: string; short: string; long: string } | undefined;

  constructor(private readonly menuCommand: string, private readonly restartCommand: string) {
    super();
    this.item.name = 'phi-complete';
    this.show('idle');
    this.item.show();
  }

  /** The device the model runs on, e.g. "CPU" or "CUDA", shown while ready. */
  setDevice(device: string): void {
    this.device = device.toUpperCase();
  }

  get deviceLabel(): string {
    return this.device || 'unknown device';
  }

  /**
   * Suggestions come from the server at `host` (undefined: from the local model): the bar names it while ready,
   * with its last answer's timings (`short` in the bar, `long` in the tooltip) once it has answered.
   */
  setServer(host: string | undefined, timings?: { short: string; long: string }): void {
    this.server = host === undefined ? undefined : { host, short: timings?.short ?? '', long: timings?.long ?? '' };
    this.show(this.shown.kind, this.shown.detail);
  }

  /** Says in the tooltip how much of the file the last suggestion was generated from. */
  setLastSuggestion(context: SuggestionContext): void {
    this.lastContext = `Last suggestion read ${context.tokens} tokens of the file before the cursor (${context.quick ? 'a quick prompt: the window was not read yet' : 'the whole window'}).`;
    this.show(this.shown.kind, this.shown.detail);
  }

  show(kind: StatusKind, detail?: string): void {
    this.shown = { kind, detail };
    // While loading, the detail is short progress text ("downloading 42%") worth showing in the bar itself.
    const server = this.server;
    const ready = server ? `${server.host}${server.short ? ` · ${server.short}` : ''}` : this.device || 'ready';
    const label = kind === 'ready' ? ready : kind === 'idle' ? 'phi' : kind === 'loading' && detail ? detail : kind;
    this.item.text = `${ICONS[kind]} ${label}`;
    const source = server ? `\nSuggestions come from the server at ${server.host}.${server.long ? `\n${server.long}` : ''}` : '';
    this.item.tooltip = `phi-complete: ${kind}${detail ? ` — ${detail}` : ''}${kind === 'paused' ? '\nClick to restart the inference worker.' : ''}${source}${this.lastContext ? `\n${this.lastContext}` : ''}`;
    this.item.command = kind === 'paused' ? this.restartCommand : this.menuCommand;
    this.item.backgroundColor = kind === 'error' || kind === 'paused' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }
}
