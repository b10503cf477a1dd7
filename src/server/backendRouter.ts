/**
 * The backend the extension's parts ask: the local worker or a server, by phiComplete.backend, read at each call.
 * Completions (the pipeline), warm-ups (the warmer) and Explain Selection all go through it, with the same prompts.
 * While the backend is `local`, nothing is sent to the server. It also keeps the status bar saying where
 * suggestions come from.
 *
 * Plain Node: the worker, the server backend and the status bar are given to it.
 */
import type { BackendAnswer, CompletionBackend } from '../completion/backend';
import type { WarmTarget } from '../completion/warmer';
import type { WorkerState } from '../client/workerClient';
import type { GenerationParams, PrefilledEvent, PrefillOptions } from '../protocol';
import type { Settings } from '../settings/settings';
import type { SettingsStore } from '../settings/store';
import type { StatusKind } from '../status/statusBar';
import { Disposable } from '../util/disposable';
import { serverHost } from './serverBackend';

/** The local worker as the router uses it (WorkerClient). */
export interface LocalBackend extends CompletionBackend, WarmTarget {
  onStateChange(listener: (state: WorkerState, detail?: string) => void): { dispose(): void };
}

/** The server backend as the router uses it (ServerBackend). */
export interface RemoteBackend extends CompletionBackend {
  prefill(sequence: string, prompt: string, maxNewTokens: number): Promise<PrefilledEvent | undefined>;
}

/** What the router shows in the status bar (StatusBar). */
export interface SourceStatus {
  setServer(host: string | undefined): void;
  show(kind: StatusKind): void;
}

export interface RouterOptions {
  readonly local: LocalBackend;
  readonly server: RemoteBackend;
  readonly store: SettingsStore;
  /** Loads the local model (ModelLifecycle.ensureModel). */
  readonly ensureLocalModel: (asked: boolean) => Promise<boolean>;
  /** Completions' activity while the local model answers (ModelLifecycle.reportActivity). */
  readonly reportLocalActivity: (generating: boolean) => void;
  /** Verify Model for the local model (ModelLifecycle.verify) and for the server (verifyServer, ./serverCheck.ts). */
  readonly verifyLocal: () => Promise<string | undefined>;
  readonly verifyServer: () => Promise<string | undefined>;
  readonly status: SourceStatus;
  /** The backend changed (or the server's settings did). */
  readonly onSourceChange?: (settings: Settings) => void;
}

export class BackendRouter extends Disposable implements CompletionBackend, WarmTarget {
  private readonly stateListeners = new Set<(state: WorkerState) => void>();

  constructor(private readonly options: RouterOptions) {
    super();
    this.register(options.local.onStateChange((state) => {
      if (!this.remote) for (const listener of [...this.stateListeners]) listener(state);
    }));
    this.register(options.store.onDidChange(({ settings, changed }) => {
      if (!changed.some((key) => key === 'backend' || key === 'serverUrl' || key === 'serverApi' || key === 'serverModel')) {
        // Other changes may have made the lifecycle redraw the bar for the local model.
        if (this.remote && changed.includes('enable')) this.showSource();
        return;
      }
      this.showSource();
      options.onSourceChange?.(settings);
      for (const listener of [...this.stateListeners]) listener(this.state);
    }));
    if (this.remote) this.showSource();
  }

  private get remote(): boolean {
    return this.options.store.current.backend === 'server';
  }

  get state(): WorkerState {
    // A server needs no loading: it is ready whenever it is configured (its failures are told per request).
    return this.remote ? 'ready' : this.options.local.state;
  }

  onStateChange(listener: (state: WorkerState) => void): { dispose(): void } {
    this.stateListeners.add(listener);
    return { dispose: () => this.stateListeners.delete(listener) };
  }

  generate(prompt: string, params: GenerationParams, onDelta: (text: string) => void, signal: AbortSignal, sequence: string): Promise<BackendAnswer> {
    return this.remote ? this.options.server.generate(prompt, params, onDelta, signal, sequence) : this.options.local.generate(prompt, params, onDelta, signal, sequence);
  }

  prefill(sequence: string, prompt: string, maxNewTokens: number, options?: PrefillOptions): Promise<PrefilledEvent | undefined> {
    return this.remote ? this.options.server.prefill(sequence, prompt, maxNewTokens) : this.options.local.prefill(sequence, prompt, maxNewTokens, options);
  }

  /** Makes sure the backend can answer: the local model loaded; a server needs nothing. */
  ensureModel(asked = false): Promise<boolean> {
    return this.remote ? Promise.resolve(true) : this.options.ensureLocalModel(asked);
  }

  /** The Verify Model command: the backend in use completes a short prompt; resolves to its report. */
  verify(): Promise<string | undefined> {
    return this.remote ? this.options.verifyServer() : this.options.verifyLocal();
  }

  /** A completion started or ended: the status bar says so. */
  reportActivity(generating: boolean): void {
    if (!this.remote) this.options.reportLocalActivity(generating);
    else if (this.options.store.current.enable) this.options.status.show(generating ? 'generating' : 'ready');
  }

  private showSource(): void {
    const settings = this.options.store.current;
    if (settings.backend === 'server') {
      this.options.status.setServer(serverHost(settings.serverUrl));
      this.options.status.show(settings.enable ? 'ready' : 'off');
    } else {
      this.options.status.setServer(undefined);
      this.options.status.show(!settings.enable ? 'off' : this.options.local.state === 'ready' ? 'ready' : 'idle');
    }
  }
}
