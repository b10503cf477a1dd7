import * as vscode from 'vscode';
import { Disposable } from '../util/disposable';

export type StatusKind = 'off' | 'idle' | 'loading' | 'ready' | 'generating' | 'error';

const ICONS: Record<StatusKind, string> = {
  off: '$(circle-slash)',
  idle: '$(sparkle)',
  loading: '$(loading~spin)',
  ready: '$(sparkle)',
  generating: '$(loading~spin)',
  error: '$(warning)',
};

/** The status bar item: what the local model is doing, and a click opens the command menu. */
export class StatusBar extends Disposable {
  private readonly item = this.register(vscode.window.createStatusBarItem('phiComplete.status', vscode.StatusBarAlignment.Right, 100));
  private device = '';

  constructor(command: string) {
    super();
    this.item.name = 'phi-complete';
    this.item.command = command;
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

  show(kind: StatusKind, detail?: string): void {
    // While loading, the detail is short progress text ("downloading 42%") worth showing in the bar itself.
    const label = kind === 'ready' ? this.device || 'ready' : kind === 'idle' ? 'phi' : kind === 'loading' && detail ? detail : kind;
    this.item.text = `${ICONS[kind]} ${label}`;
    this.item.tooltip = `phi-complete: ${kind}${detail ? ` — ${detail}` : ''}`;
    this.item.backgroundColor = kind === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }
}
