/**
 * The model's lifecycle (src/lifecycle/modelLifecycle.ts) with a real worker process on real tiny models: locating,
 * loading (one load for concurrent callers), reloading on a settings change, the first-run offer, problems told
 * once, verify, and recovery after a crash. The editor side is a recorder: it keeps the settings the user "has",
 * records notifications, status bar states and log lines, and answers notifications the way a test tells it to.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { RESTART_LIMIT, WorkerClient, type WorkerState } from '../../src/client/workerClient';
import { catalogueEntry, type CatalogueEntry } from '../../src/install/catalogue';
import { installedModelDir } from '../../src/install/install';
import { ModelLifecycle, type LifecycleUi, type NoticeSeverity } from '../../src/lifecycle/modelLifecycle';
import { VERIFY_PARAMS, VERIFY_PROMPT } from '../../src/shared/verifyPrompt';
import { locateModel } from '../../src/modelLocation';
import { readSettings } from '../../src/settings/settings';
import { SettingsStore, type SettingsChange, type SettingsSource } from '../../src/settings/store';
import { SettingsWarnings } from '../../src/settings/warnings';
import type { StatusKind } from '../../src/status/statusBar';
import type { DisposableLike } from '../../src/util/disposable';
import { scratchDir, tinyModelDir } from '../support/tinyModels';

/** The worker entry point as compiled next to this test (tsc -p .). */
const WORKER = path.resolve(__dirname, '../../src/worker/main.js');
const DEFAULT_MODEL = 'phi-1_5-int4';
/** A device this platform never has, so the worker falls back to the CPU and says why. */
const ABSENT_DEVICE = process.platform === 'darwin' ? 'dml' : 'coreml';

interface Notice {
  readonly severity: NoticeSeverity;
  readonly message: string;
  readonly actions: readonly string[];
}

/** The editor as the lifecycle and the settings store see it, recording everything it is asked to show. */
class RecordingUi implements LifecycleUi, SettingsSource {
  readonly notices: Notice[] = [];
  readonly statuses: { kind: StatusKind; detail?: string }[] = [];
  readonly lines: { level: 'debug' | 'info' | 'warn' | 'error'; message: string }[] = [];
  readonly devices: string[] = [];
  readonly settingsOpened: string[] = [];
  readonly offers: { entry: CatalogueEntry; rebuild: boolean }[] = [];
  readonly downloads: CatalogueEntry[] = [];
  logShown = 0;
  folderPicks = 0;
  readonly listeners = new Set<() => void>();
  /** The action the user clicks on a notification (undefined: dismissed), perhaps later. */
  answer: (notice: Notice) => string | undefined | Promise<string | undefined> = () => undefined;
  /** What the user does when offered the model; true once one is in place. */
  onOffer: (entry: CatalogueEntry, rebuild: boolean) => boolean = () => false;
  /** `beforeReplace`: what the lifecycle gave the install to call before it replaces an installed model's folder. */
  onDownload: (entry: CatalogueEntry, beforeReplace?: (dir: string) => Promise<void>) => boolean | Promise<boolean> = () => false;
  onPickFolder: () => boolean = () => false;

  readonly log = {
    debug: (message: string) => this.lines.push({ level: 'debug', message }),
    info: (message: string) => this.lines.push({ level: 'info', message }),
    warn: (message: string) => this.lines.push({ level: 'warn', message }),
    error: (message: string) => this.lines.push({ level: 'error', message }),
  };

  constructor(private readonly values: Map<string, unknown>) {}

  readSetting(key: string): unknown {
    return this.values.get(key);
  }

  onDidChangeSettings(listener: () => void): DisposableLike {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** Changes settings as the user (or the install flow) would; undefined removes one. VS Code then tells the listeners. */
  change(values: Record<string, unknown>): void {
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) this.values.delete(key);
      else this.values.set(key, value);
    }
    for (const listener of [...this.listeners]) listener();
  }

  notify(severity: NoticeSeverity, message: string, ...actions: string[]): Promise<string | undefined> {
    const notice = { severity, message, actions };
    this.notices.push(notice);
    return Promise.resolve(this.answer(notice));
  }

  showStatus(kind: StatusKind, detail?: string): void {
    this.statuses.push(detail === undefined ? { kind } : { kind, detail });
  }

  setDevice(device: string): void {
    this.devices.push(device);
  }

  openSettings(query: string): Promise<void> {
    this.settingsOpened.push(query);
    return Promise.resolve();
  }

  showLog(): void {
    this.logShown++;
  }

  // The install flow answers later (the user clicks, a download runs): on a later turn of the event loop.
  async offerModel(entry: CatalogueEntry, rebuild: boolean): Promise<boolean> {
    this.offers.push({ entry, rebuild });
    await settle();
    return this.onOffer(entry, rebuild);
  }

  async downloadModel(entry: CatalogueEntry, beforeReplace?: (dir: string) => Promise<void>): Promise<boolean> {
    this.downloads.push(entry);
    await settle();
    return this.onDownload(entry, beforeReplace);
  }

  async useLocalFolder(): Promise<boolean> {
    this.folderPicks++;
    await settle();
    return this.onPickFolder();
  }

  get lastStatus(): { kind: StatusKind; detail?: string } | undefined {
    return this.statuses.at(-1);
  }

  noticesOf(severity: NoticeSeverity): Notice[] {
    return this.notices.filter((n) => n.severity === severity);
  }

  linesOf(level: 'debug' | 'info' | 'warn' | 'error', pattern: RegExp): string[] {
    return this.lines.filter((l) => l.level === level && pattern.test(l.message)).map((l) => l.message);
  }

  /** The "model … loaded on …" lines: one per completed load. */
  get loadedLines(): string[] {
    return this.linesOf('info', /^model .+ loaded on \w+ in \d+ ms$/);
  }
}

interface Rig {
  readonly ui: RecordingUi;
  readonly store: SettingsStore;
  readonly warnings: SettingsWarnings;
  readonly worker: WorkerClient;
  readonly lifecycle: ModelLifecycle;
  readonly storage: string;
  /** Every state the worker went through. */
  readonly states: WorkerState[];
  /** Loads the worker started ('loading' states). */
  loads(): number;
}

const rigs: Rig[] = [];

/**
 * A lifecycle over a fresh worker and an empty global storage; `values` are the user's phiComplete settings,
 * `answer` how the user answers notifications (from the start).
 */
function rig(values: Record<string, unknown>, answer?: RecordingUi['answer']): Rig {
  const storage = scratchDir();
  const ui = new RecordingUi(new Map(Object.entries(values)));
  if (answer) ui.answer = answer;
  // As the extension wires it: the worker's lines into the same log.
  const worker = new WorkerClient({ workerPath: WORKER, log: (message, level) => ui.log[level](message) });
  const states: WorkerState[] = [];
  worker.onStateChange((state) => states.push(state));
  const store = new SettingsStore(ui);
  const warnings = new SettingsWarnings(store, ui);
  const lifecycle = new ModelLifecycle(worker, store, ui, storage);
  const made: Rig = { ui, store, warnings, worker, lifecycle, storage, states, loads: () => states.filter((s) => s === 'loading').length };
  rigs.push(made);
  return made;
}

/** Settings for the tiny model on the CPU, one thread (the test machine's cores are shared). */
function onTinyModel(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { modelPath: tinyModelDir('fp32'), device: 'cpu', threads: 1, ...extra };
}

/** What a download does, with the tiny int4 model as the catalogue entry's files: installs it into the global storage. */
function installTinyModel(storage: string, entry: CatalogueEntry): true {
  fs.cpSync(tinyModelDir('int4'), installedModelDir(storage, entry.id), { recursive: true });
  return true;
}

/** Lets notification answers (handled when their promise settles) run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function waitUntil(condition: () => boolean, what: string, limitMs = 15_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

afterEach(async () => {
  for (const { lifecycle, warnings, store, worker } of rigs.splice(0)) {
    lifecycle.dispose();
    warnings.dispose();
    store.dispose();
    await worker.shutdown();
    worker.dispose();
  }
});

describe('loading', () => {
  test('nothing starts until the model is wanted; ensureModel loads it in a real worker and the status bar follows', async () => {
    const { ui, worker, lifecycle } = rig(onTinyModel());
    assert.equal(worker.pid, undefined, 'the worker starts lazily');
    assert.equal(ui.statuses.length, 0, 'the status bar is left alone until then');
    assert.equal(await lifecycle.ensureModel(), true);
    assert.equal(worker.state, 'ready');
    assert.ok(ui.statuses.some((s) => s.kind === 'loading'), 'the status bar shows the load');
    assert.deepEqual(ui.lastStatus, { kind: 'ready', detail: tinyModelDir('fp32') });
    assert.deepEqual(ui.devices, ['cpu']);
    assert.equal(lifecycle.deviceLabel, 'CPU');
    assert.equal(ui.loadedLines.length, 1);
    assert.match(ui.loadedLines[0], new RegExp(`^model ${tinyModelDir('fp32').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} loaded on cpu in \\d+ ms$`));
    assert.deepEqual(ui.notices, [], 'a clean load tells the user nothing');

    const pid = worker.pid;
    assert.equal(await lifecycle.ensureModel(), true);
    assert.equal(worker.pid, pid);
    assert.equal(ui.loadedLines.length, 1, 'a loaded model is not loaded again');
  });

  test('concurrent callers share one load', async () => {
    const r = rig(onTinyModel());
    const results = await Promise.all([r.lifecycle.ensureModel(), r.lifecycle.ensureModel(), r.lifecycle.ensureModel()]);
    assert.deepEqual(results, [true, true, true]);
    assert.equal(r.loads(), 1, `one load request, states: ${r.states.join(' → ')}`);
    assert.equal(r.ui.loadedLines.length, 1);
    assert.equal(r.worker.state, 'ready');
  });

  test('after the worker is killed, the next ensureModel starts a new worker and reloads', async () => {
    const r = rig(onTinyModel());
    assert.equal(await r.lifecycle.ensureModel(), true);
    const first = r.worker.pid!;
    process.kill(first, 'SIGKILL');
    await waitUntil(() => r.worker.state === 'stopped', 'the client to notice the crash');
    assert.equal(await r.lifecycle.ensureModel(), true);
    assert.notEqual(r.worker.pid, first);
    assert.equal(r.worker.state, 'ready');
    assert.equal(r.loads(), 2);
    assert.equal(r.ui.loadedLines.length, 2);
    assert.equal(r.ui.lastStatus?.kind, 'ready');
  });

  test(`after ${RESTART_LIMIT} crashes the worker pauses: told once, requests fail quietly, Try Again brings the model back`, async () => {
    let click: (action: string) => void = () => undefined;
    const clicked = new Promise<string>((resolve) => {
      click = resolve;
    });
    const r = rig(onTinyModel(), (notice) => (notice.actions.includes('Try Again') ? clicked : undefined));
    for (let crash = 1; crash < RESTART_LIMIT; crash++) {
      assert.equal(await r.lifecycle.ensureModel(), true);
      const pid = r.worker.pid!;
      process.kill(pid, 'SIGKILL');
      await waitUntil(() => r.worker.pid !== pid && r.worker.state !== 'ready', 'the client to notice the crash');
    }
    // The last crash comes during a load: the load's failure is part of the pause, not another message.
    const loading = r.lifecycle.ensureModel();
    assert.equal(r.worker.state, 'loading');
    process.kill(r.worker.pid!, 'SIGKILL');
    assert.equal(await loading, false);
    assert.equal(r.worker.state, 'paused');
    const shown = r.ui.statuses.length;
    for (let request = 0; request < 5; request++) assert.equal(await r.lifecycle.ensureModel(), false);
    r.ui.change({ threads: 2 });
    assert.equal(await r.lifecycle.ensureModel(), false);
    await settle();

    assert.equal(r.ui.notices.length, 1, r.ui.notices.map((n) => n.message).join('\n'));
    const [paused] = r.ui.notices;
    assert.equal(paused.severity, 'error');
    assert.equal(paused.message, `phi-complete: the inference worker crashed ${RESTART_LIMIT} times in 3 minutes; completions are paused until it is restarted; the last time it was killed (SIGKILL)`);
    assert.deepEqual(paused.actions, ['Try Again', 'Show Log']);
    assert.deepEqual(r.ui.statuses.at(shown - 1), { kind: 'paused', detail: paused.message.slice('phi-complete: '.length) });
    assert.equal(r.ui.statuses.length, shown, 'requests while paused change nothing on screen');
    assert.equal(r.worker.pid, undefined, 'no worker started while paused');
    assert.equal(r.loads(), RESTART_LIMIT);

    click('Try Again');
    await waitUntil(() => r.worker.state === 'ready', 'Try Again to load the model in a new worker');
    assert.equal(r.loads(), RESTART_LIMIT + 1);
    assert.equal(r.ui.lastStatus?.kind, 'ready');
    assert.equal(await r.lifecycle.ensureModel(), true);
    assert.equal(r.ui.notices.length, 1);
  });

  test('while paused, Verify Model (a command the user ran) says so with Restart Inference Worker, which brings the model back; an install ending shows "paused" again', async () => {
    let click: (action: string | undefined) => void = () => undefined;
    const r = rig(onTinyModel(), (notice) => (notice.actions.includes('Restart Inference Worker') ? new Promise((resolve) => (click = resolve)) : undefined));
    for (let crash = 0; crash < RESTART_LIMIT; crash++) {
      assert.equal(await r.lifecycle.ensureModel(), true);
      const pid = r.worker.pid!;
      process.kill(pid, 'SIGKILL');
      await waitUntil(() => r.worker.pid !== pid && r.worker.state !== 'ready', 'the client to notice the crash');
    }
    assert.equal(r.worker.state, 'paused');
    assert.equal(r.ui.notices.length, 1, 'the pause itself');
    assert.equal(await r.lifecycle.ensureModel(), false);
    assert.equal(r.ui.notices.length, 1, 'completions stay quiet');

    // A download (Download Model) while paused: its progress, then the bar says "paused" again, not idle.
    r.lifecycle.installStatus('downloading 42%');
    assert.deepEqual(r.ui.lastStatus, { kind: 'loading', detail: 'downloading 42%' });
    r.lifecycle.installStatus(undefined);
    assert.equal(r.ui.lastStatus?.kind, 'paused');

    assert.equal(await r.lifecycle.verify(), undefined);
    assert.equal(r.ui.notices.length, 2, r.ui.notices.map((n) => n.message).join('\n'));
    const told = r.ui.notices[1];
    assert.equal(told.severity, 'error');
    assert.match(told.message, /^phi-complete: the inference worker crashed \d+ times in 3 minutes; completions are paused until it is restarted; the last time it was killed \(SIGKILL\)\. Restart it to use the model\.$/);
    assert.deepEqual(told.actions, ['Restart Inference Worker', 'Show Log']);
    click('Restart Inference Worker');
    await waitUntil(() => r.worker.state === 'ready', 'the restart to load the model');
    assert.ok((await r.lifecycle.verify())?.startsWith('the model'));
  });

  test('Restart Inference Worker replaces a running worker, even one loading, and reloads the model; that is no crash', async () => {
    const r = rig(onTinyModel());
    assert.equal(await r.lifecycle.ensureModel(), true);
    const first = r.worker.pid;
    assert.equal(await r.lifecycle.restartWorker(), true);
    assert.notEqual(r.worker.pid, first);
    assert.equal(r.loads(), 2);

    r.ui.change({ threads: 2 });
    assert.equal(r.worker.state, 'loading');
    const second = r.worker.pid;
    assert.equal(await r.lifecycle.restartWorker(), true);
    assert.notEqual(r.worker.pid, second);
    assert.equal(r.worker.state, 'ready');
    assert.equal(r.ui.lastStatus?.kind, 'ready');
    assert.deepEqual(r.ui.notices, [], 'the load the restart cut short is not reported');
    assert.ok(!r.ui.statuses.some((s) => s.kind === 'error' || s.kind === 'paused'), JSON.stringify(r.ui.statuses));
    assert.equal(r.ui.linesOf('info', /^restarting the inference worker$/).length, 2);
  });

  test('a device that is not there falls back to the CPU with a warning that says why', async () => {
    const r = rig(onTinyModel({ device: ABSENT_DEVICE }));
    assert.equal(await r.lifecycle.ensureModel(), true);
    assert.deepEqual(r.ui.devices, ['cpu']);
    const fallbacks = r.ui.linesOf('warn', /^device fallback: /).map((line) => line.slice('device fallback: '.length));
    assert.ok(fallbacks.length >= 1 && fallbacks[0].startsWith(`${ABSENT_DEVICE}: `), `fallbacks: ${fallbacks.join(' | ')}`);
    assert.deepEqual(r.ui.notices, [{
      severity: 'warning',
      message: `phi-complete: ${ABSENT_DEVICE} is not available, running on the CPU. ${fallbacks.join('; ')}`,
      actions: [],
    }]);
  });

  test('auto passing over a GPU provider that is not installed is logged at debug level, without colour codes, and never warned about', async () => {
    const r = rig(onTinyModel({ device: 'auto' }));
    assert.equal(await r.lifecycle.ensureModel(), true);
    assert.deepEqual(r.ui.linesOf('warn', /device fallback/), []);
    assert.deepEqual(r.ui.notices, []);
    const passedOver = r.ui.linesOf('debug', /^device fallback: /);
    // Where a GPU provider works the model runs there and nothing was passed over; here (CI) CUDA is not installed.
    if (r.ui.devices.at(-1) === 'cpu' && process.platform === 'linux') assert.ok(passedOver.some((line) => line.startsWith('device fallback: cuda: ')), passedOver.join(' | '));
    const shown = r.ui.lines.filter((line) => line.level !== 'debug');
    assert.deepEqual(shown.filter((line) => /onnxruntime|\x1b/.test(line.message)), [], 'ONNX Runtime\'s own lines, if any, only at debug level');
    for (const line of r.ui.lines) assert.doesNotMatch(line.message, /\x1b/, 'escape codes stripped');
  });

  test('a GPU-built model on the CPU loads, and the user is told which model suits the CPU', async () => {
    const r = rig(onTinyModel({ modelPath: tinyModelDir('fp32', 'flat', { kvOutputs: 'present_settled' }) }));
    assert.equal(await r.lifecycle.ensureModel(), true);
    const advice = r.ui.linesOf('warn', /^model and device: /);
    assert.equal(advice.length, 1);
    assert.match(advice[0], /for the CPU choose the model phi-1_5-int4$/);
    assert.deepEqual(r.ui.notices, [{ severity: 'info', message: `phi-complete: ${advice[0].slice('model and device: '.length)}.`, actions: [] }]);
  });
});

describe('settings', () => {
  test('a change that needs a reload reloads at once, but only once the model was wanted; other changes do not', async () => {
    const r = rig(onTinyModel());
    r.ui.change({ threads: 2 });
    assert.deepEqual(r.ui.linesOf('info', /^settings changed/), ['settings changed: threads']);
    assert.equal(r.worker.pid, undefined, 'nothing wanted the model yet: no load');
    assert.equal(r.store.current.threads, 2);

    assert.equal(await r.lifecycle.ensureModel(), true);
    assert.equal(r.loads(), 1);

    r.ui.change({ temperature: 0.5 });
    assert.equal(r.store.current.temperature, 0.5);
    assert.equal(r.worker.state, 'ready', 'sampling settings apply to the next request');
    assert.equal(r.ui.lastStatus?.kind, 'ready');

    r.ui.change({ threads: 1 });
    assert.equal(r.worker.state, 'loading', 'the reload starts with the change, not on the next request');
    assert.equal(await r.lifecycle.ensureModel(), true, 'a caller meanwhile shares the reload');
    assert.equal(r.loads(), 2);
    assert.equal(r.ui.loadedLines.length, 2);

    r.ui.change({ modelPath: tinyModelDir('fp32', 'bigram') });
    assert.equal(r.worker.state, 'loading');
    assert.equal(await r.lifecycle.ensureModel(), true);
    assert.deepEqual(r.ui.lastStatus, { kind: 'ready', detail: tinyModelDir('fp32', 'bigram') });
    assert.equal(r.loads(), 3);

    r.ui.change({});
    assert.equal(r.ui.linesOf('info', /^settings changed/).length, 4, 'an event that changed nothing is not a change');
  });

  test('parts that listen to the settings store hear of each change after the lifecycle acted on it', async () => {
    const r = rig(onTinyModel());
    assert.equal(await r.lifecycle.ensureModel(), true);
    const heard: (Pick<SettingsChange, 'changed' | 'reload'> & { temperature: number; state: WorkerState })[] = [];
    const listening = r.store.onDidChange(({ settings, changed, reload }) => heard.push({ changed, reload, temperature: settings.temperature, state: r.worker.state }));
    r.ui.change({ temperature: 0.5, threads: 2 });
    r.ui.change({});
    assert.deepEqual(heard, [{ changed: ['threads', 'temperature'], reload: true, temperature: 0.5, state: 'loading' }]);
    assert.equal(await r.lifecycle.ensureModel(), true);
    listening.dispose();
    r.ui.change({ temperature: 0.25 });
    assert.equal(heard.length, 1);
  });

  test('turning completions off shows "off"; turning them back on before any load shows idle, after a load ready', async () => {
    const r = rig(onTinyModel({ enable: false }));
    assert.deepEqual(r.ui.statuses, [{ kind: 'off' }], 'off from the start');
    r.ui.change({ enable: true });
    assert.deepEqual(r.ui.lastStatus, { kind: 'idle' });
    assert.equal(await r.lifecycle.ensureModel(), true);
    r.ui.change({ enable: false });
    assert.deepEqual(r.ui.lastStatus, { kind: 'off' });
    r.ui.change({ enable: true });
    assert.deepEqual(r.ui.lastStatus, { kind: 'ready' });
  });

  test('an invalid value is replaced by its default and reported with a way to the settings', async () => {
    const r = rig(onTinyModel({ threads: -1 }), () => 'Open Settings');
    const expected = readSettings((key) => (key === 'threads' ? -1 : undefined)).warnings;
    assert.equal(expected.length, 1);
    assert.equal(r.store.current.threads, 0);
    assert.deepEqual(r.ui.notices, [{ severity: 'warning', message: `phi-complete: ${expected[0]}`, actions: ['Open Settings'] }]);
    assert.deepEqual(r.ui.linesOf('warn', /./), expected);
    await settle();
    assert.deepEqual(r.ui.settingsOpened, ['phiComplete']);
  });

  test('disposed, the lifecycle no longer listens to settings or to the worker', async () => {
    const r = rig(onTinyModel());
    assert.equal(await r.lifecycle.ensureModel(), true);
    r.lifecycle.dispose();
    const lines = r.ui.lines.length;
    r.ui.change({ threads: 2, enable: false });
    assert.equal(r.ui.lines.length, lines, 'a change is not acted on');
    assert.equal(r.worker.state, 'ready');
    const shown = r.ui.statuses.length;
    const pid = r.worker.pid!;
    process.kill(pid, 'SIGKILL');
    await waitUntil(() => r.worker.state === 'stopped', 'the client to notice the crash');
    assert.equal(r.ui.statuses.length, shown);
  });
});

describe('problems', () => {
  test('a model folder that does not exist is reported once, with the message that says how to fix it', async () => {
    const missing = path.join(scratchDir(), 'no-such-model');
    const r = rig(onTinyModel({ modelPath: missing }));
    r.ui.answer = () => 'Open Settings';
    const location = locateModel(r.store.current, r.storage);
    assert.ok(!location.ok && location.message.includes(missing));

    assert.deepEqual(await Promise.all([r.lifecycle.ensureModel(), r.lifecycle.ensureModel()]), [false, false]);
    assert.equal(await r.lifecycle.ensureModel(), false);
    assert.deepEqual(r.ui.notices, [{ severity: 'error', message: `phi-complete: ${location.message}`, actions: ['Open Settings'] }]);
    assert.deepEqual(r.ui.linesOf('error', /./), [location.message]);
    assert.deepEqual(r.ui.lastStatus, { kind: 'error', detail: location.message });
    assert.equal(r.worker.pid, undefined, 'no worker for a model that is not there');
    await settle();
    assert.deepEqual(r.ui.settingsOpened, ['phiComplete.modelPath']);

    // Fixed: the change reloads (the model was wanted). Broken again later: told again.
    r.ui.change({ modelPath: tinyModelDir('fp32') });
    assert.equal(await r.lifecycle.ensureModel(), true);
    assert.equal(r.ui.noticesOf('error').length, 1);
    r.ui.change({ modelPath: missing });
    assert.equal(await r.lifecycle.ensureModel(), false);
    assert.equal(r.ui.noticesOf('error').length, 2);
  });

  test('modelPath set to a Hugging Face folder (no manifest.json) says to convert it with Use a Local Model Folder, and offers it', async () => {
    const hf = scratchDir();
    fs.writeFileSync(path.join(hf, 'config.json'), '{}');
    fs.writeFileSync(path.join(hf, 'model.safetensors'), '');
    const r = rig(onTinyModel({ modelPath: hf }), (notice) => notice.actions[0]);
    assert.equal(await r.lifecycle.ensureModel(), false);
    const message = `The model folder ${hf} (setting phiComplete.modelPath) is a Hugging Face folder, which must be converted first: run "phi-complete: Use a Local Model Folder" and pick it (the converted model is then used).`;
    assert.deepEqual(r.ui.notices, [{ severity: 'error', message: `phi-complete: ${message}`, actions: ['Use a Local Model Folder'] }]);
    assert.deepEqual(r.ui.lastStatus, { kind: 'error', detail: message });
    assert.equal(r.worker.pid, undefined, 'no worker for a folder it cannot load');
    await waitUntil(() => r.ui.folderPicks === 1, 'Use a Local Model Folder to run from the notification');
  });

  test('a model folder the worker cannot load is reported once (logged every time), with the settings and the log', async () => {
    // No manifest.json: nothing to check the files against, so the worker's reason is shown.
    const broken = scratchDir();
    fs.writeFileSync(path.join(broken, 'model.onnx'), 'not a model');
    const r = rig(onTinyModel({ modelPath: broken }));
    r.ui.answer = () => 'Show Log';
    assert.equal(await r.lifecycle.ensureModel(), false);
    assert.equal(await r.lifecycle.ensureModel(), false);
    const errors = r.ui.noticesOf('error');
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /^phi-complete: the model could not be loaded: .*manifest\.json/);
    assert.ok(errors[0].message.includes(broken));
    assert.deepEqual(errors[0].actions, ['Open Settings', 'Show Log']);
    assert.equal(r.ui.linesOf('error', /^loading the model failed: .*manifest\.json/).length, 2);
    assert.equal(r.ui.lastStatus?.kind, 'error');
    assert.equal(r.loads(), 2, 'each call tries again');
    await settle();
    assert.equal(r.ui.logShown, 1);
  });

  test('a load that fails while a newer one is in flight: the newer model loads once, and the old failure is not reported', async () => {
    const broken = scratchDir();
    fs.writeFileSync(path.join(broken, 'model.onnx'), 'not a model');
    const r = rig(onTinyModel({ modelPath: broken }));
    const first = r.lifecycle.ensureModel();
    r.ui.change({ modelPath: tinyModelDir('fp32') });
    assert.equal(await r.lifecycle.ensureModel(), true);
    assert.equal(await first, true, 'the first caller gets the model now configured');
    assert.ok((await r.lifecycle.verify())?.startsWith('the model'));
    assert.equal(r.loads(), 2, `states: ${r.states.join(' → ')}`);
    assert.ok(!r.states.includes('stopped'), `the older failure stopped nothing: ${r.states.join(' → ')}`);
    assert.deepEqual(r.ui.noticesOf('error'), []);
    assert.ok(!r.ui.statuses.some((s) => s.kind === 'error'), JSON.stringify(r.ui.statuses));
    assert.equal(r.ui.lastStatus?.kind, 'ready');
  });

  test('a catalogue model that is not on this machine is offered once per session', async () => {
    const r = rig({ device: 'cpu', threads: 1 });
    const location = locateModel(r.store.current, r.storage);
    assert.ok(!location.ok && location.missing);
    assert.deepEqual(await Promise.all([r.lifecycle.ensureModel(), r.lifecycle.ensureModel()]), [false, false]);
    assert.equal(await r.lifecycle.ensureModel(), false);
    assert.equal(await r.lifecycle.ensureModel(), false);
    assert.deepEqual(r.ui.offers, [{ entry: catalogueEntry(DEFAULT_MODEL), rebuild: false }]);
    assert.deepEqual(r.ui.lastStatus, { kind: 'off', detail: location.message });
    assert.deepEqual(r.ui.notices, [], 'declining is not an error');
    assert.equal(r.worker.pid, undefined);
  });

  test('offered the model, the user downloads it: it is installed in the global storage and loaded', async () => {
    const r = rig({ device: 'cpu', threads: 1 });
    r.ui.onOffer = (entry) => installTinyModel(r.storage, entry);
    assert.equal(await r.lifecycle.ensureModel(), true);
    assert.equal(r.ui.offers.length, 1);
    assert.deepEqual(r.ui.lastStatus, { kind: 'ready', detail: installedModelDir(r.storage, DEFAULT_MODEL) });
    assert.equal(r.loads(), 1);
  });

  test('offered the model, the user picks a local folder: the settings change and the model loads once', async () => {
    const r = rig({ device: 'cpu', threads: 1 });
    r.ui.onOffer = () => {
      r.ui.change({ modelPath: tinyModelDir('fp32') });
      return true;
    };
    assert.equal(await r.lifecycle.ensureModel(), true);
    assert.equal(r.worker.state, 'ready');
    assert.deepEqual(r.ui.lastStatus, { kind: 'ready', detail: tinyModelDir('fp32') });
    assert.equal(r.loads(), 1, `one load, states: ${r.states.join(' → ')}`);
  });

  test('a model path removed while a reload runs: the model is offered, and the reload finishing after does not claim ready', async () => {
    const r = rig(onTinyModel());
    assert.equal(await r.lifecycle.ensureModel(), true);
    r.ui.change({ threads: 2 });
    assert.equal(r.worker.state, 'loading', 'the reload is in flight');
    r.ui.change({ modelPath: undefined }); // the catalogue model, not in this storage
    assert.equal(r.ui.offers.length, 1, 'the missing model is offered at once');
    await waitUntil(() => r.ui.loadedLines.length === 2, 'the reload in flight to finish');
    await settle();
    assert.equal(r.ui.lastStatus?.kind, 'off', `status bar: ${r.ui.statuses.map((s) => s.kind).join(' → ')}`);
    assert.equal(await r.lifecycle.ensureModel(), false, 'no model for the settings now');
    assert.equal(r.ui.offers.length, 1, 'offered once');
  });

  test('a catalogue model converted in an older layout (blocks of 64) is loaded, and a rebuild offered once, never forced; Rebuild runs Download Model', async () => {
    const rigged = (): ReturnType<typeof rig> => {
      const r = rig({ device: 'cpu', threads: 1 }, (notice) => (notice.actions.includes('Rebuild') ? 'Rebuild' : undefined));
      const dir = installedModelDir(r.storage, DEFAULT_MODEL);
      installTinyModel(r.storage, catalogueEntry(DEFAULT_MODEL)!);
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
      delete manifest.int4Layout; // as converted before manifests recorded it
      fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
      return r;
    };
    const r = rigged();
    r.ui.onDownload = () => false;
    assert.equal(await r.lifecycle.ensureModel(), true, 'the older build is loaded');
    assert.equal(r.worker.state, 'ready');
    assert.deepEqual(r.ui.offers, [], 'not offered as missing');
    const offers = r.ui.notices.filter((notice) => notice.actions.includes('Rebuild'));
    assert.equal(offers.length, 1, JSON.stringify(r.ui.notices));
    assert.match(offers[0].message, /converted by an older version.*suggestions go on meanwhile/);
    await settle();
    assert.deepEqual(r.ui.downloads.map((entry) => entry.id), [DEFAULT_MODEL], 'Rebuild runs Download Model');
    r.ui.change({ threads: 2 });
    assert.equal(await r.lifecycle.ensureModel(), true);
    assert.equal(r.ui.notices.filter((notice) => notice.actions.includes('Rebuild')).length, 1, 'offered once a session');

    // Converted in today's layout: nothing offered.
    const current = rig({ device: 'cpu', threads: 1 });
    installTinyModel(current.storage, catalogueEntry(DEFAULT_MODEL)!);
    assert.equal(await current.lifecycle.ensureModel(), true);
    assert.deepEqual(current.ui.notices, []);
  });

  test('a catalogue model built otherwise than this version builds it is offered for a rebuild', async () => {
    const r = rig({ device: 'cpu', threads: 1 });
    fs.cpSync(tinyModelDir('fp32'), installedModelDir(r.storage, DEFAULT_MODEL), { recursive: true });
    assert.equal(await r.lifecycle.ensureModel(), false);
    assert.deepEqual(r.ui.offers, [{ entry: catalogueEntry(DEFAULT_MODEL), rebuild: true }]);
    assert.equal(r.ui.lastStatus?.kind, 'off');
  });
});

describe('commands', () => {
  test('Verify Model runs a real generation on the model and reports what it answered and how fast', async () => {
    const r = rig(onTinyModel({ modelPath: tinyModelDir('fp32', 'bigram') }));
    const report = await r.lifecycle.verify();
    assert.ok(report);
    // The same request again, straight to the worker: greedy, so the same answer.
    const done = await r.worker.generate(VERIFY_PROMPT, VERIFY_PARAMS);
    const sane = done.text.trim() !== '' && !done.text.includes('\uFFFD');
    const start = `${sane ? 'the model answers' : 'the model answered nothing usable'}: "def add(a, b): return${done.text}" — ${done.stats.generatedTokens} tokens, first after `;
    assert.ok(report.startsWith(start), `report ${JSON.stringify(report)} should start with ${JSON.stringify(start)}`);
    assert.match(report.slice(start.length), /^\d+ ms, \d+\.\d tokens\/s on the CPU$/);
    assert.ok(done.stats.generatedTokens >= 1 && done.stats.generatedTokens <= VERIFY_PARAMS.maxNewTokens);
    assert.deepEqual(r.ui.linesOf('info', /^verify model: /), [`verify model: ${report}`]);
    assert.deepEqual(r.ui.notices, [sane
      ? { severity: 'info', message: `phi-complete: ${report}`, actions: [] }
      : { severity: 'warning', message: `phi-complete: ${report}. Rebuild or re-download the model.`, actions: [] }]);
  });

  test('Verify Model checks the files first: a flipped byte is reported with Download Model, which repairs and reloads', async () => {
    const r = rig({ device: 'cpu', threads: 1 });
    r.ui.onDownload = (entry) => installTinyModel(r.storage, entry);
    await r.lifecycle.downloadModel();
    assert.equal(r.worker.state, 'ready');
    const loadsBefore = r.loads();
    // Same size, one byte different: only the sha256 tells.
    const weights = path.join(installedModelDir(r.storage, DEFAULT_MODEL), 'model.onnx.data');
    const bytes = fs.readFileSync(weights);
    bytes[bytes.length >> 1] ^= 0x40;
    fs.writeFileSync(weights, bytes);

    let repaired: Promise<void> | undefined;
    r.ui.answer = (notice) => {
      if (!notice.actions.includes('Download Model')) return undefined;
      repaired = waitUntil(() => r.loads() > loadsBefore && r.worker.state === 'ready', 'the repaired model to load');
      return 'Download Model';
    };
    assert.equal(await r.lifecycle.verify(), undefined, 'no generation on damaged files');
    const [notice] = r.ui.noticesOf('error');
    assert.match(notice.message, /^phi-complete: the model in .+ is damaged \(model\.onnx\.data has sha256 [0-9a-f]{64} instead of [0-9a-f]{64}\)\. Download Model repairs it\.$/);
    assert.deepEqual(notice.actions, ['Download Model']);
    await repaired;
    assert.equal(r.ui.downloads.length, 2, 'Download Model ran again, from the notification');
    assert.ok((await r.lifecycle.verify())?.startsWith('the model'), 'the repaired model verifies');
    assert.equal(r.ui.noticesOf('error').length, 1);
  });

  test('Download Model repairing the loaded model stops the worker before its folder is replaced, and loads the model afresh after', async () => {
    const r = rig({ device: 'cpu', threads: 1 });
    r.ui.onDownload = (entry) => installTinyModel(r.storage, entry);
    await r.lifecycle.downloadModel();
    assert.equal(r.worker.state, 'ready');
    const pid = r.worker.pid!;
    let workerAtReplace: number | undefined = -1;
    r.ui.onDownload = async (entry, beforeReplace) => {
      const dir = installedModelDir(r.storage, entry.id);
      await beforeReplace?.(dir);
      workerAtReplace = r.worker.pid;
      fs.rmSync(dir, { recursive: true });
      return installTinyModel(r.storage, entry);
    };
    await r.lifecycle.downloadModel();
    assert.equal(workerAtReplace, undefined, 'no worker (with the model\'s files open) while the folder was replaced');
    assert.ok(r.ui.linesOf('info', /^stopping the inference worker: the model folder .+ is being replaced$/).length === 1);
    assert.equal(r.worker.state, 'ready');
    assert.notEqual(r.worker.pid, pid);
    assert.equal(r.ui.loadedLines.length, 2);
    assert.equal(r.ui.lastStatus?.kind, 'ready');
    assert.deepEqual(r.ui.notices, [], 'stopping the worker for the repair is no crash');
  });

  test('a model folder with files missing says which, and how to fix it', async () => {
    const broken = scratchDir();
    fs.copyFileSync(path.join(tinyModelDir('fp32'), 'manifest.json'), path.join(broken, 'manifest.json'));
    const r = rig(onTinyModel({ modelPath: broken }));
    assert.equal(await r.lifecycle.ensureModel(), false);
    assert.equal(await r.lifecycle.ensureModel(), false);
    const errors = r.ui.noticesOf('error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0].message, `phi-complete: the model in ${broken} is damaged (model.onnx is missing; model.onnx.data is missing; tokenizer.json is missing). Copy or rebuild the folder again.`);
    assert.deepEqual(errors[0].actions, ['Show Log']);
    assert.equal(r.ui.linesOf('error', /^loading the model failed: /).length, 2, 'the worker\'s reason is logged too');
  });

  test('a model that fails to load because its files are damaged says so, with Download Model', async () => {
    const r = rig({ device: 'cpu', threads: 1 });
    // Installed, then the graph file damaged in place (same size): the worker cannot load it.
    installTinyModel(r.storage, catalogueEntry(DEFAULT_MODEL)!);
    const graph = path.join(installedModelDir(r.storage, DEFAULT_MODEL), 'model.onnx');
    fs.writeFileSync(graph, Buffer.alloc(fs.statSync(graph).size, 0x7f));
    assert.equal(await r.lifecycle.ensureModel(), false);
    assert.equal(r.ui.noticesOf('error').length, 1);
    assert.match(r.ui.noticesOf('error')[0].message, /is damaged \(model\.onnx has sha256 .+\)\. Download Model repairs it\.$/);
    assert.equal(r.ui.lastStatus?.kind, 'error');
  });

  test('Verify Model without a model reports the problem and generates nothing', async () => {
    const r = rig(onTinyModel({ modelPath: path.join(scratchDir(), 'gone') }));
    assert.equal(await r.lifecycle.verify(), undefined);
    assert.equal(r.ui.noticesOf('error').length, 1);
    assert.equal(r.worker.pid, undefined);
  });

  test('Download Model installs the configured model and loads it; an unknown model id is an error', async () => {
    const r = rig({ device: 'cpu', threads: 1 });
    r.ui.onDownload = (entry) => installTinyModel(r.storage, entry);
    await r.lifecycle.downloadModel();
    assert.deepEqual(r.ui.downloads, [catalogueEntry(DEFAULT_MODEL)]);
    assert.equal(r.worker.state, 'ready');
    assert.deepEqual(r.ui.lastStatus, { kind: 'ready', detail: installedModelDir(r.storage, DEFAULT_MODEL) });

    assert.deepEqual(r.ui.notices, []);

    const unknown = rig({ model: 'phi-9' });
    await unknown.lifecycle.downloadModel();
    assert.deepEqual(unknown.ui.downloads, []);
    assert.deepEqual(unknown.ui.notices, [{ severity: 'error', message: 'phi-complete: unknown model "phi-9" (setting phiComplete.model).', actions: [] }]);
    assert.equal(unknown.worker.pid, undefined);
  });

  test('Use a Local Model Folder points the setting at the folder and loads it once', async () => {
    const r = rig({ device: 'cpu', threads: 1 });
    await r.lifecycle.useLocalFolder();
    assert.equal(r.ui.folderPicks, 1);
    assert.equal(r.worker.pid, undefined, 'cancelled: nothing loads');
    r.ui.onPickFolder = () => {
      r.ui.change({ modelPath: tinyModelDir('fp32') });
      return true;
    };
    await r.lifecycle.useLocalFolder();
    assert.equal(r.store.current.modelPath, tinyModelDir('fp32'));
    assert.equal(r.worker.state, 'ready');
    assert.equal(r.loads(), 1);
    assert.deepEqual(r.ui.offers, [], 'a model in place is not offered');
  });

  test('completions report activity in the status bar only while the model is ready', async () => {
    const r = rig(onTinyModel());
    r.lifecycle.reportActivity(true);
    assert.equal(r.ui.statuses.length, 0);
    assert.equal(await r.lifecycle.ensureModel(), true);
    r.lifecycle.reportActivity(true);
    assert.deepEqual(r.ui.lastStatus, { kind: 'generating' });
    r.lifecycle.reportActivity(false);
    assert.deepEqual(r.ui.lastStatus, { kind: 'ready' });
  });
});
