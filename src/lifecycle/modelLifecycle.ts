/**
 * The model's lifecycle in the extension host: locating it (and offering to get it once per session when it is
 * not on this machine), loading it in the worker with the settings store's snapshot (concurrent callers share one
 * load), reloading it when the store says a change needs it (src/settings/), noticing a crashed worker, verifying
 * it with a real generation, and telling the user about problems — each one once, not on every keystroke. A worker
 * that crashed too often pauses: the user is told once, requests fail quietly, and restartWorker (Try Again) brings
 * it back.
 *
 * Plain Node: everything VS Code does for it (notifications, the status bar, opening the settings, the install
 * flow) goes through `LifecycleUi`, which the extension implements with the vscode API (lifecycleUi.ts) and the
 * unit tests implement by recording what is shown.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WorkerError, type WorkerClient, type WorkerState } from '../client/workerClient';
import { catalogueEntry, type CatalogueEntry } from '../install/catalogue';
import { MANIFEST_FILE, modelFileHashProblems } from '../model/manifest';
import { locateModel } from '../modelLocation';
import { cacheBudgetBytes, sameModel, type Settings } from '../settings/settings';
import type { SettingsChange, SettingsStore } from '../settings/store';
import { VERIFY_PARAMS, VERIFY_PROMPT, verifyReport } from '../shared/verifyPrompt';
import type { StatusKind } from '../status/statusBar';
import { Disposable } from '../util/disposable';

export type NoticeSeverity = 'info' | 'warning' | 'error';

/** Where the lifecycle writes its log lines (a vscode.LogOutputChannel fits). */
export interface LifecycleLog {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** What the lifecycle needs from the editor. */
export interface LifecycleUi {
  readonly log: LifecycleLog;
  /** Shows a notification with action buttons; resolves to the action chosen, or undefined when dismissed. */
  notify(severity: NoticeSeverity, message: string, ...actions: string[]): PromiseLike<string | undefined>;
  /** The status bar: what the model is doing; `detail` goes to the tooltip (while loading, into the bar). */
  showStatus(kind: StatusKind, detail?: string): void;
  /** The device the model runs on ("cpu", "cuda", …), shown in the status bar while ready. */
  setDevice(device: string): void;
  /** Opens the settings editor filtered by `query`. */
  openSettings(query: string): PromiseLike<unknown>;
  showLog(): void;
  /**
   * The first-run question for a catalogue model that is not on this machine (or, `rebuild`, that must be rebuilt
   * from its download): resolves true once a model is in place (downloaded, or a local folder set in the settings).
   */
  offerModel(entry: CatalogueEntry, rebuild: boolean): PromiseLike<boolean>;
  /**
   * Downloads and installs a catalogue model, with progress; true once installed. `beforeReplace` is awaited
   * before an installed model's folder is replaced (a repair): the worker lets go of its files.
   */
  downloadModel(entry: CatalogueEntry, beforeReplace: (dir: string) => Promise<void>): PromiseLike<boolean>;
  /** Lets the user pick a model folder and points phiComplete.modelPath at it; true once set. */
  useLocalFolder(): PromiseLike<boolean>;
}

export class ModelLifecycle extends Disposable {
  /** The settings the loaded model was loaded with; undefined when a (re)load is due. */
  private loadedWith: Settings | undefined;
  /** The load in progress and the settings it was started for: concurrent callers share it. */
  private loading: { readonly settings: Settings; done: Promise<boolean> } | undefined;
  /** Whether rebuilding a model converted in an older layout was offered this session (once is enough). */
  private rebuildOffered = false;
  /** Whether the missing model was offered this session: completions must not nag on every keystroke. */
  private modelOffered = false;
  /** Whether anything has asked for the model yet: until then, nothing is loaded (the worker starts lazily). */
  private modelWanted = false;
  /** The last problem the user was told about, so that it is told once. */
  private lastModelProblem = '';
  private device = '';
  /** Why the worker is paused, while it is. */
  private pausedDetail: string | undefined;
  /** What the lifecycle last showed in the status bar: an install's progress, once it ends, gives way to it again. */
  private shownStatus: { readonly kind: StatusKind; readonly detail?: string } = { kind: 'idle' };

  /**
   * `store`: the settings; made before the other parts that listen to it, the lifecycle acts on a change first;
   * `storageDir`: the extension's global storage, where catalogue models are installed.
   */
  constructor(private readonly worker: WorkerClient, private readonly store: SettingsStore, private readonly ui: LifecycleUi, private readonly storageDir: string) {
    super();
    worker.setCacheBudget(cacheBudgetBytes(store.current));
    this.register(worker.onStateChange((state, detail) => this.onWorkerState(state, detail)));
    this.register(store.onDidChange((change) => this.settingsChanged(change)));
    if (!store.current.enable) this.showStatus('off');
  }

  private get current(): Settings {
    return this.store.current;
  }

  /** The device the model runs on, as the status bar shows it ("CPU"), or "unknown device" before a load. */
  get deviceLabel(): string {
    return this.device.toUpperCase() || 'unknown device';
  }

  /**
   * Makes sure the configured model is loaded; tells the user what to do when it cannot be. `asked`: for a command
   * the user ran (Explain Selection, Verify Model), which is told while the worker is paused rather than failing quietly.
   */
  ensureModel(asked = false): Promise<boolean> {
    this.modelWanted = true;
    // Paused: the user was told once (onWorkerState); until they try again, completions fail quietly.
    if (this.worker.state === 'paused') {
      if (asked) {
        this.notify('error', `phi-complete: ${this.pausedDetail ?? 'the inference worker keeps crashing'}. Restart it to use the model.`, {
          'Restart Inference Worker': () => void this.restartWorker(),
          'Show Log': () => this.ui.showLog(),
        });
      }
      return Promise.resolve(false);
    }
    const settings = this.current;
    if (this.loadedWith && sameModel(this.loadedWith, settings) && this.worker.state === 'ready') return Promise.resolve(true);
    if (this.loading && sameModel(this.loading.settings, settings)) return this.loading.done;
    // Registered before it starts: what runs synchronously in loadModel (a settings change the install flow makes
    // while offering the model) may start a newer load, which must not be overwritten by this one.
    const loading = { settings, done: Promise.resolve(false) };
    this.loading = loading;
    loading.done = this.loadModel().finally(() => {
      if (this.loading === loading) this.loading = undefined;
    });
    return loading.done;
  }

  /**
   * Acts on a change of the settings: reloads the model at once when the change needs it (only once something has
   * wanted the model), applies the KV cache budget, and updates the status bar.
   */
  private settingsChanged({ settings: next, changed, reload }: SettingsChange): void {
    this.ui.log.info(`settings changed: ${changed.join(', ')}`);
    if (changed.includes('cacheMemoryMB')) this.worker.setCacheBudget(cacheBudgetBytes(next));
    if (!next.enable) {
      this.showStatus('off');
    } else if (reload && this.modelWanted) {
      // Reload now (not on the next cache miss), so the status bar reflects the new model at once.
      this.loadedWith = undefined;
      void this.ensureModel();
    } else if (this.worker.state === 'ready') {
      this.showStatus('ready');
    } else if (changed.includes('enable')) {
      // Completions were turned back on while no model is ready: the bar must not keep saying "off".
      const state = this.worker.state;
      this.showStatus(state === 'starting' || state === 'loading' ? 'loading' : state === 'paused' ? 'paused' : 'idle');
    }
  }

  /** Completions report when they start and stop generating; the status bar shows it while the model is ready. */
  reportActivity(generating: boolean): void {
    if (this.worker.state === 'ready') this.showStatus(generating ? 'generating' : 'ready');
  }

  /**
   * The Verify Model command: loads the model, generates a short completion of VERIFY_PROMPT and reports what it
   * answered and how fast. Resolves to the report, or undefined when the model could not be loaded.
   */
  async verify(): Promise<string | undefined> {
    // The files first (sizes, then sha256, against the manifest): a flipped byte may still load and answer.
    const location = locateModel(this.current, this.storageDir);
    if (location.ok) {
      const damage = await this.damageOf(location.dir);
      if (damage.length > 0) {
        this.reportDamage(location.dir, damage);
        return undefined;
      }
    }
    if (!(await this.ensureModel(true))) return undefined;
    const done = await this.worker.generate(VERIFY_PROMPT, VERIFY_PARAMS);
    const { sane, report } = verifyReport('the model', ` on the ${this.deviceLabel}`, done.text, done.stats);
    this.ui.log.info(`verify model: ${report}`);
    if (sane) this.notify('info', `phi-complete: ${report}`);
    else this.notify('warning', `phi-complete: ${report}. Rebuild or re-download the model.`);
    return report;
  }

  /**
   * The Restart Inference Worker command (and Try Again when paused): stops the worker if it runs, forgets its
   * crashes, and loads the model in a fresh one. Resolves true once the model is ready.
   */
  async restartWorker(): Promise<boolean> {
    this.ui.log.info('restarting the inference worker');
    await this.worker.shutdown();
    this.worker.resume();
    this.loadedWith = undefined;
    this.loading = undefined;
    this.lastModelProblem = '';
    return this.ensureModel();
  }

  /**
   * An install's progress for the status bar (`text`), and its end (undefined): then the bar shows again what it
   * showed before (paused, off, an error), not idle.
   */
  installStatus(text: string | undefined): void {
    if (text) this.ui.showStatus('loading', text);
    else this.ui.showStatus(this.shownStatus.kind === 'generating' ? 'ready' : this.shownStatus.kind, this.shownStatus.detail);
  }

  /** The Download Model command: installs the configured catalogue model, then loads it. */
  async downloadModel(): Promise<void> {
    const entry = catalogueEntry(this.current.model);
    if (!entry) {
      this.notify('error', `phi-complete: unknown model "${this.current.model}" (setting phiComplete.model).`);
      return;
    }
    // A repair replaces the folder of the model loaded now: the worker is stopped first (on Windows its open files
    // could not be replaced), and the model loaded afresh after.
    const beforeReplace = async (dir: string): Promise<void> => {
      if (this.worker.pid === undefined) return;
      this.ui.log.info(`stopping the inference worker: the model folder ${dir} is being replaced`);
      this.loadedWith = undefined;
      this.loading = undefined;
      await this.worker.shutdown();
    };
    if (await this.ui.downloadModel(entry, beforeReplace)) {
      // The download may have repaired the files of the model loaded now: load them afresh.
      this.loadedWith = undefined;
      await this.ensureModel();
    }
  }

  /** The Use a Local Model Folder command: points phiComplete.modelPath at a folder the user picks, then loads it. */
  async useLocalFolder(): Promise<void> {
    if (await this.ui.useLocalFolder()) {
      // The folder is set: read it now, whether or not the editor has told the store yet.
      this.store.refresh();
      await this.ensureModel();
    }
  }

  private async loadModel(): Promise<boolean> {
    // The settings this load is for: a change while it runs starts another load, and must not be mixed into this one.
    const settings = this.current;
    const location = locateModel(settings, this.storageDir);
    if (!location.ok && location.missing) {
      this.showStatus('off', location.message);
      // Ask once per session: completions must not nag on every keystroke.
      if (this.modelOffered) return false;
      this.modelOffered = true;
      if (!(await this.ui.offerModel(location.missing, location.rebuild ?? false))) return false;
      this.store.refresh();
      // Choosing a local folder changed phiComplete.modelPath, and that change may have started the load of the
      // new folder already (settingsChanged): share it rather than loading the same model twice.
      const now = this.current;
      if (!sameModel(now, settings) && this.loading && sameModel(this.loading.settings, now)) return this.loading.done;
      return this.loadModel();
    }
    if (!location.ok) {
      this.showStatus('error', location.message);
      if (location.message !== this.lastModelProblem) {
        this.lastModelProblem = location.message;
        this.ui.log.error(location.message);
        this.notify('error', `phi-complete: ${location.message}`, location.huggingFace
          ? { 'Use a Local Model Folder': () => void this.useLocalFolder() }
          : { 'Open Settings': () => void this.ui.openSettings('phiComplete.modelPath') });
      }
      return false;
    }
    try {
      const loaded = await this.worker.load(location.dir, settings.device, settings.threads);
      this.loadedWith = settings;
      this.ui.log.info(`model ${location.dir} loaded on ${loaded.device} in ${loaded.loadMs} ms`);
      // The settings changed while it loaded: the load (or offer) for the new ones tells the status bar and the callers.
      if (!sameModel(this.current, settings)) return this.ensureModel();
      this.lastModelProblem = '';
      this.device = loaded.device;
      this.ui.setDevice(loaded.device);
      this.showStatus('ready', location.dir);
      // `auto` passing over a provider that is not installed is the normal case, not a problem; a device the user chose is.
      const chosen = settings.device !== 'auto';
      for (const fallback of loaded.fallbacks) {
        if (chosen) this.ui.log.warn(`device fallback: ${fallback}`);
        else this.ui.log.debug(`device fallback: ${fallback}`);
      }
      if (loaded.advice) {
        this.ui.log.warn(`model and device: ${loaded.advice}`);
        this.notify('info', `phi-complete: ${loaded.advice}.`);
      }
      if (chosen && loaded.device !== settings.device) {
        this.notify('warning', `phi-complete: ${settings.device} is not available, running on the ${loaded.device.toUpperCase()}. ${loaded.fallbacks.join('; ')}`);
      }
      if (location.olderBuild && !this.rebuildOffered) {
        // Offered, never forced: the older build works, and suggestions go on while the new one is converted.
        this.rebuildOffered = true;
        this.notify('info', `phi-complete: ${location.olderBuild.title} was converted by an older version. Rebuilt from its downloaded weights, it reads files ≈1.3× as fast (a few minutes of CPU; suggestions go on meanwhile).`,
          { Rebuild: () => void this.downloadModel() });
      }
      return true;
    } catch (error) {
      const message = (error as Error).message;
      // Paused (the user was told, once) or shut down on purpose (a restart): nothing more to tell.
      if (this.worker.state === 'paused' || (error instanceof WorkerError && error.code === 'shut-down')) {
        this.ui.log.info(`loading the model stopped: ${message}`);
        return false;
      }
      this.ui.log.error(`loading the model failed: ${message}`);
      // The settings changed while it loaded: the load for the new ones tells the status bar and the callers.
      if (!sameModel(this.current, settings)) return this.ensureModel();
      // A model that does not load may have damaged files: then say so, and how to repair them.
      const damage = await this.damageOf(location.dir);
      if (damage.length > 0) {
        this.reportDamage(location.dir, damage);
        return false;
      }
      this.showStatus('error', message);
      if (message !== this.lastModelProblem) {
        this.lastModelProblem = message;
        this.notify('error', `phi-complete: the model could not be loaded: ${message}`, {
          'Open Settings': () => void this.ui.openSettings('phiComplete'),
          'Show Log': () => this.ui.showLog(),
        });
      }
      return false;
    }
  }

  /** What is wrong with a phi-complete model folder's files against its manifest (sizes, then sha256); [] for a folder without one. */
  private async damageOf(dir: string): Promise<string[]> {
    if (!fs.existsSync(path.join(dir, MANIFEST_FILE))) return [];
    try {
      return await modelFileHashProblems(dir);
    } catch (error) {
      return [`its manifest could not be read: ${(error as Error).message}`];
    }
  }

  /** Reports damaged model files (once while the same): a catalogue model gets Download Model, which repairs it. */
  private reportDamage(dir: string, problems: readonly string[]): void {
    const message = `the model in ${dir} is damaged (${problems.join('; ')})`;
    this.showStatus('error', message);
    this.ui.log.error(message);
    if (message === this.lastModelProblem) return;
    this.lastModelProblem = message;
    const repairable = this.current.modelPath === '';
    this.notify('error', `phi-complete: ${message}. ${repairable ? 'Download Model repairs it.' : 'Copy or rebuild the folder again.'}`,
      repairable ? { 'Download Model': () => void this.downloadModel() } : { 'Show Log': () => this.ui.showLog() });
  }

  private showStatus(kind: StatusKind, detail?: string): void {
    this.shownStatus = detail === undefined ? { kind } : { kind, detail };
    this.ui.showStatus(kind, detail);
  }

  private onWorkerState(state: WorkerState, detail: string | undefined): void {
    this.pausedDetail = state === 'paused' ? detail : undefined;
    if (state === 'starting' || state === 'loading') this.showStatus('loading');
    // A worker that stopped with a reason (a crash, a failed load) has no model: the next ensureModel reloads.
    if (state === 'stopped' && detail) this.loadedWith = undefined;
    // The client reports a pause once, when it happens.
    if (state === 'paused') {
      this.showStatus('paused', detail);
      this.ui.log.error(`completions paused: ${detail ?? 'the inference worker keeps crashing'}`);
      this.notify('error', `phi-complete: ${detail ?? 'the inference worker keeps crashing'}`, {
        'Try Again': () => void this.restartWorker(),
        'Show Log': () => this.ui.showLog(),
      });
    }
  }

  /** Shows a notification (without waiting for it) and runs the action the user picks. */
  private notify(severity: NoticeSeverity, message: string, actions: Record<string, () => void> = {}): void {
    void this.ui.notify(severity, message, ...Object.keys(actions)).then((choice) => {
      if (choice !== undefined) actions[choice]?.();
    });
  }
}
