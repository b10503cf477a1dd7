/**
 * Tells the user about a server's failures: one notification per kind of failure, with Open Settings and, where a
 * local model is there to fall back on, Use the local model. A kind is told again only after the server answered
 * once more, or the settings changed: typing on against a server that is down shows nothing new.
 *
 * Plain Node: the notification goes through ServerNoticeUi.
 */
import { OPEN_SETTINGS } from '../settings/warnings';
import type { ServerError } from './serverError';

export const USE_LOCAL_MODEL = 'Use the local model';

export interface ServerNoticeUi {
  /** Shows an error notification; resolves to the action chosen, or undefined. */
  notify(message: string, ...actions: string[]): PromiseLike<string | undefined>;
  /** Opens the settings editor at the server's settings. */
  openSettings(): PromiseLike<unknown>;
  /** Sets phiComplete.backend to local. */
  useLocalModel(): PromiseLike<unknown>;
  /** Whether the configured local model is on this machine (then Use the local model is offered). */
  localModelExists(): boolean;
}

export class ServerNotices {
  private readonly told = new Set<string>();

  constructor(private readonly ui: ServerNoticeUi) {}

  failed(error: ServerError): void {
    if (this.told.has(error.failure)) return;
    this.told.add(error.failure);
    const actions = [OPEN_SETTINGS, ...(this.ui.localModelExists() ? [USE_LOCAL_MODEL] : [])];
    void this.ui.notify(`phi-complete: ${error.message}`, ...actions).then((choice) => {
      if (choice === OPEN_SETTINGS) void this.ui.openSettings();
      if (choice === USE_LOCAL_MODEL) void this.ui.useLocalModel();
    });
  }

  /** The server answered, or the settings changed: a failure is worth telling again. */
  reset(): void {
    this.told.clear();
  }
}
