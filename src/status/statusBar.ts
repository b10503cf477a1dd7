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

  /** Says in the tooltip how much of the file the last suggestion was generated from. */
  setLastSuggestion(context: SuggestionContext): void {
    this.lastContext = `Last suggestion read ${context.tokens} tokens of the file before the cursor (${context.quick ? 'a quick prompt: the window was not read yet' : 'the whole window'}).`;
    this.show(this.shown.kind, this.shown.detail);
  }

  show(kind: StatusKind, detail?: string): void {
    this.shown = { kind, detail };
    // While loading, the detail is short progress text ("downloading 42%") worth showing in the bar itself.
    const label = kind === 'ready' ? this.device || 'ready' : kind === 'idle' ? 'phi' : kind === 'loading' && detail ? detail : kind;
    this.item.text = `${ICONS[kind]} ${label}`;
    this.item.tooltip = `phi-complete: ${kind}${detail ? ` — ${detail}` : ''}${kind === 'paused' ? '\nClick to restart the inference worker.' : ''}${this.lastContext ? `\n${this.lastContext}` : ''}`;
    this.item.command = kind === 'paused' ? this.restartCommand : this.menuCommand;
    this.item.backgroundColor = kind === 'error' || kind === 'paused' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }
}
