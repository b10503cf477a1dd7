/**
 * Tells the user about settings that cannot work together (config.ts settingsProblems): when the extension starts
 * and when the settings change, never per request; each problem once while it lasts, with an Open Settings action.
 * Plain Node: the editor is reached through the lifecycle's LifecycleUi.
 */
import { readSettings } from './config';
import type { LifecycleUi } from './lifecycle/modelLifecycle';
import { Disposable } from './util/disposable';

export const OPEN_SETTINGS = 'Open Settings';

export type SettingsWarningsUi = Pick<LifecycleUi, 'log' | 'readSetting' | 'onDidChangeSettings' | 'notify' | 'openSettings'>;

export class SettingsWarnings extends Disposable {
  /** The problems of the settings as last read: one still there after a change is not shown again. */
  private current = new Set<string>();

  constructor(private readonly ui: SettingsWarningsUi) {
    super();
    this.check();
    this.register(ui.onDidChangeSettings(() => this.check()));
  }

  private check(): void {
    const { problems } = readSettings((key) => this.ui.readSetting(key));
    for (const problem of problems) {
      if (this.current.has(problem)) continue;
      this.ui.log.warn(problem);
      void this.ui.notify('warning', `phi-complete: ${problem}`, OPEN_SETTINGS).then((choice) => {
        if (choice === OPEN_SETTINGS) void this.ui.openSettings('phiComplete');
      });
    }
    this.current = new Set(problems);
  }
}
