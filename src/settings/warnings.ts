/**
 * Tells the user about settings that cannot be used as they are: an invalid value (replaced by its default,
 * readSettings) and settings that cannot work together (settingsProblems). When the extension starts and when the
 * settings are read again, never per request; each one once while it lasts, logged, with an Open Settings action.
 * Plain Node: the editor is reached through SettingsWarningsUi (the lifecycle's LifecycleUi fits).
 */
import { Disposable } from '../util/disposable';
import type { SettingsRead } from './settings';
import type { SettingsStore } from './store';

export const OPEN_SETTINGS = 'Open Settings';

/** What the warnings need from the editor. */
export interface SettingsWarningsUi {
  readonly log: { warn(message: string): void };
  /** Shows a notification with action buttons; resolves to the action chosen, or undefined when dismissed. */
  notify(severity: 'warning', message: string, ...actions: string[]): PromiseLike<string | undefined>;
  /** Opens the settings editor filtered by `query`. */
  openSettings(query: string): PromiseLike<unknown>;
}

export class SettingsWarnings extends Disposable {
  /** The warnings of the settings as last read: one still there after a change is not shown again. */
  private current = new Set<string>();

  constructor(store: Pick<SettingsStore, 'lastRead' | 'onDidRead'>, private readonly ui: SettingsWarningsUi) {
    super();
    this.check(store.lastRead);
    this.register(store.onDidRead((read) => this.check(read)));
  }

  private check({ warnings, problems }: SettingsRead): void {
    const now = [...warnings, ...problems];
    for (const warning of now) {
      if (this.current.has(warning)) continue;
      this.ui.log.warn(warning);
      void this.ui.notify('warning', `phi-complete: ${warning}`, OPEN_SETTINGS).then((choice) => {
        if (choice === OPEN_SETTINGS) void this.ui.openSettings('phiComplete');
      });
    }
    this.current = new Set(now);
  }
}
