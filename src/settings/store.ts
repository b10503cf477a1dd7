/**
 * The settings store: the one place the extension reads its settings from. It holds the current snapshot
 * (readSettings: typed, validated, fitted to the model), reads it again when the editor says a `phiComplete.*`
 * setting changed, and tells its listeners what changed, only when the snapshot did, with whether the change
 * reloads the model (needsReload). Listeners are called in the order they subscribed: the model's lifecycle,
 * made first, acts on a change before the others hear of it.
 *
 * Plain Node: the editor's settings are reached through a SettingsSource (in the extension, the vscode API; in
 * the unit tests, a map).
 */
import { Disposable, type DisposableLike } from '../util/disposable';
import { changedSettings, needsReload, readSettings, type Settings, type SettingsRead, type SettingsReader } from './settings';

/** Where the settings come from. */
export interface SettingsSource {
  /** The raw value of the setting `phiComplete.<key>` (undefined when unset). */
  readSetting(key: string): unknown;
  /** Calls `listener` whenever a `phiComplete.*` setting changes. */
  onDidChangeSettings(listener: () => void): DisposableLike;
}

/** A change of the snapshot. */
export interface SettingsChange {
  readonly settings: Settings;
  /** The settings that differ from the snapshot before (never empty). */
  readonly changed: readonly (keyof Settings)[];
  /** Whether the change needs the worker to reload the model. */
  readonly reload: boolean;
}

export class SettingsStore extends Disposable {
  private last: SettingsRead;
  private readonly changeListeners = new Set<(change: SettingsChange) => void>();
  private readonly readListeners = new Set<(read: SettingsRead) => void>();

  constructor(private readonly source: SettingsSource) {
    super();
    this.last = this.readSource();
    this.register(source.onDidChangeSettings(() => this.refresh()));
    this.register({
      dispose: () => {
        this.changeListeners.clear();
        this.readListeners.clear();
      },
    });
  }

  /** The current snapshot. */
  get current(): Settings {
    return this.last.settings;
  }

  /** The current snapshot, as a function that parts which only read settings are given (SettingsReader). */
  readonly read: SettingsReader = () => this.last.settings;

  /** The last reading: the snapshot, its invalid values and the problems of settings that cannot work together. */
  get lastRead(): SettingsRead {
    return this.last;
  }

  /**
   * Reads the settings again (the editor's change event calls it; so may a caller that changed a setting and
   * cannot wait for that event). Tells the read listeners every time, the change listeners only when the snapshot
   * changed; returns the change, or undefined when there was none.
   */
  refresh(): SettingsChange | undefined {
    if (this.isDisposed) return undefined;
    const before = this.last.settings;
    this.last = this.readSource();
    for (const listener of [...this.readListeners]) listener(this.last);
    const changed = changedSettings(before, this.last.settings);
    if (changed.length === 0) return undefined;
    const change: SettingsChange = { settings: this.last.settings, changed, reload: needsReload(changed) };
    for (const listener of [...this.changeListeners]) listener(change);
    return change;
  }

  /** Calls `listener` after each change of the snapshot (not for a reading that changed nothing). */
  onDidChange(listener: (change: SettingsChange) => void): DisposableLike {
    this.changeListeners.add(listener);
    return { dispose: () => this.changeListeners.delete(listener) };
  }

  /**
   * Calls `listener` after each reading, changed or not: what it warns about may change while the snapshot does
   * not (an invalid value for another invalid value: both read as the default).
   */
  onDidRead(listener: (read: SettingsRead) => void): DisposableLike {
    this.readListeners.add(listener);
    return { dispose: () => this.readListeners.delete(listener) };
  }

  private readSource(): SettingsRead {
    return readSettings((key) => this.source.readSetting(key));
  }
}
