/**
 * Extension entry point: wires settings, the inference worker (started lazily, on the first completion or
 * command), inline completions, Explain Selection and the status bar. Everything is disposed with the extension.
 */
import * as vscode from 'vscode';
import { changedSettings, needsReload, readSettings, type Settings } from './config';
import { WorkerClient } from './client/workerClient';
import { InlineCompletionProvider } from './completion/provider';
import { ExplainPanel } from './explain/explainPanel';
import { catalogueEntry } from './install/catalogue';
import { downloadModel, offerModel, setHubToken, useLocalFolder } from './install/installUi';
import { locateModel } from './modelLocation';
import { StatusBar } from './status/statusBar';

let client: WorkerClient | undefined;

/** A prompt any working phi model completes sensibly (phi-1.5 answers " a + b"). */
const VERIFY_PROMPT = 'def add(a, b):\n    return';

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('phi-complete', { log: true });
  const read = (): Settings => {
    const { settings, warnings } = readSettings((key) => vscode.workspace.getConfiguration('phiComplete').get(key));
    for (const warning of warnings) {
      log.warn(warning);
      void vscode.window.showWarningMessage(`phi-complete: ${warning}`, 'Open Settings').then((choice) => {
        if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', 'phiComplete');
      });
    }
    return settings;
  };
  let settings = read();
  const worker = new WorkerClient({ workerPath: context.asAbsolutePath('dist/worker.js'), log: (message) => log.info(message) });
  client = worker;
  const status = new StatusBar('phiComplete.menu');
  context.subscriptions.push(log, worker, status);

  /** The settings the loaded model was loaded with; undefined when a (re)load is due. */
  let loadedWith: string | undefined;
  let lastModelProblem = '';
  const modelKey = (s: Settings): string => JSON.stringify([s.model, s.modelPath, s.device, s.threads]);

  const installUi = {
    extension: context,
    settings: () => settings,
    log,
    onStatus: (text: string | undefined) => (text ? status.show('loading', text) : status.show('idle')),
  };
  let modelOffered = false;
  /** Whether anything has asked for the model yet: until then, nothing is loaded (the worker starts lazily). */
  let modelWanted = false;
  /** The load in progress and the settings it was started for: concurrent callers share it. */
  let loading: { key: string; done: Promise<boolean> } | undefined;
  /** Makes sure the configured model is loaded; tells the user what to do when it cannot be. */
  const ensureModel = (): Promise<boolean> => {
    modelWanted = true;
    const key = modelKey(settings);
    if (loadedWith === key && worker.state === 'ready') return Promise.resolve(true);
    if (loading?.key !== key) {
      const done = loadModel().finally(() => {
        if (loading?.done === done) loading = undefined;
      });
      loading = { key, done };
    }
    return loading.done;
  };
  const loadModel = async (): Promise<boolean> => {
    const location = locateModel(settings, context.globalStorageUri.fsPath);
    if (!location.ok && location.missing) {
      status.show('off', location.message);
      // Ask once per session: completions must not nag on every keystroke.
      if (modelOffered) return false;
      modelOffered = true;
      if (!(await offerModel(installUi, location.missing, location.rebuild))) return false;
      settings = read();
      return loadModel();
    }
    if (!location.ok) {
      status.show('error', location.message);
      if (location.message !== lastModelProblem) {
        lastModelProblem = location.message;
        log.error(location.message);
        void vscode.window.showErrorMessage(`phi-complete: ${location.message}`, 'Open Settings').then((choice) => {
          if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', 'phiComplete.modelPath');
        });
      }
      return false;
    }
    try {
      const key = modelKey(settings);
      const loaded = await worker.load(location.dir, settings.device, settings.threads);
      loadedWith = key;
      lastModelProblem = '';
      status.setDevice(loaded.device);
      status.show('ready', location.dir);
      log.info(`model ${location.dir} loaded on ${loaded.device} in ${loaded.loadMs} ms`);
      for (const fallback of loaded.fallbacks) log.warn(`device fallback: ${fallback}`);
      if (loaded.advice) {
        log.warn(`model and device: ${loaded.advice}`);
        void vscode.window.showInformationMessage(`phi-complete: ${loaded.advice}.`);
      }
      if (settings.device !== 'auto' && loaded.device !== settings.device) {
        void vscode.window.showWarningMessage(`phi-complete: ${settings.device} is not available, running on the ${loaded.device.toUpperCase()}. ${loaded.fallbacks.join('; ')}`);
      }
      return true;
    } catch (error) {
      const message = (error as Error).message;
      status.show('error', message);
      log.error(`loading the model failed: ${message}`);
      if (message !== lastModelProblem) {
        lastModelProblem = message;
        void vscode.window.showErrorMessage(`phi-complete: the model could not be loaded: ${message}`, 'Open Settings', 'Show Log').then((choice) => {
          if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'phiComplete');
          if (choice === 'Show Log') log.show();
        });
      }
      return false;
    }
  };

  context.subscriptions.push(worker.onStateChange((state, detail) => {
    if (state === 'starting' || state === 'loading') status.show('loading');
    if (state === 'stopped' && detail) loadedWith = undefined;
    if (state === 'paused') {
      status.show('error', detail);
      void vscode.window.showErrorMessage(`phi-complete: ${detail ?? 'the inference worker keeps crashing'}`, 'Restart', 'Show Log').then((choice) => {
        if (choice === 'Restart') worker.resume();
        if (choice === 'Show Log') log.show();
      });
    }
  }));

  const provider = new InlineCompletionProvider(worker, () => settings, ensureModel, log, (generating) => {
    if (worker.state === 'ready') status.show(generating ? 'generating' : 'ready');
  });
  const explain = new ExplainPanel(worker, () => settings, ensureModel);
  context.subscriptions.push(
    explain,
    vscode.languages.registerInlineCompletionItemProvider({ pattern: '**' }, provider),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration('phiComplete')) return;
      const next = read();
      const changed = changedSettings(settings, next);
      settings = next;
      if (changed.length === 0) return;
      log.info(`settings changed: ${changed.join(', ')}`);
      if (!settings.enable) status.show('off');
      else if (needsReload(changed) && modelWanted) {
        // Reload now (not on the next cache miss), so the status bar reflects the new model at once.
        loadedWith = undefined;
        void ensureModel();
      } else if (worker.state === 'ready') status.show('ready');
    }),
    vscode.commands.registerCommand('phiComplete.showLog', () => log.show()),
    vscode.commands.registerCommand('phiComplete.explainSelection', () => explain.explain(vscode.window.activeTextEditor)),
    vscode.commands.registerCommand('phiComplete.toggle', async () => {
      await vscode.workspace.getConfiguration('phiComplete').update('enable', !settings.enable, vscode.ConfigurationTarget.Global);
    }),
    vscode.commands.registerCommand('phiComplete.menu', async () => {
      const items: (vscode.QuickPickItem & { command: string })[] = [
        { label: settings.enable ? '$(circle-slash) Disable Completions' : '$(check) Enable Completions', command: 'phiComplete.toggle' },
        { label: '$(comment-discussion) Explain Selection', command: 'phiComplete.explainSelection' },
        { label: '$(gear) Select Model…', command: 'phiComplete.selectModel' },
        { label: '$(cloud-download) Download Model', command: 'phiComplete.downloadModel' },
        { label: '$(folder-opened) Use a Local Model Folder…', command: 'phiComplete.useLocalFolder' },
        { label: '$(pulse) Verify Model', command: 'phiComplete.verifyModel' },
        { label: '$(output) Show Log', command: 'phiComplete.showLog' },
      ];
      const choice = await vscode.window.showQuickPick(items, { placeHolder: `phi-complete (${worker.state})` });
      if (choice) await vscode.commands.executeCommand(choice.command);
    }),
    vscode.commands.registerCommand('phiComplete.verifyModel', async () => {
      if (!(await ensureModel())) return;
      const done = await worker.generate(VERIFY_PROMPT, { maxNewTokens: 16, temperature: 0, topK: 0, topP: 1, seed: 0, stop: ['\n'], speculative: false });
      const rate = done.stats.generatedTokens / Math.max(1e-3, done.stats.decodeMs / 1000);
      const sane = done.text.trim() !== '' && !done.text.includes('\uFFFD');
      const report = `${sane ? 'the model answers' : 'the model answered nothing usable'}: "def add(a, b): return${done.text}" — ${done.stats.generatedTokens} tokens, `
        + `first after ${Math.round(done.stats.firstTokenMs)} ms, ${rate.toFixed(1)} tokens/s on the ${status.deviceLabel}`;
      log.info(`verify model: ${report}`);
      if (sane) void vscode.window.showInformationMessage(`phi-complete: ${report}`);
      else void vscode.window.showWarningMessage(`phi-complete: ${report}. Rebuild or re-download the model.`);
    }),
    vscode.commands.registerCommand('phiComplete.downloadModel', async () => {
      const entry = catalogueEntry(settings.model);
      if (!entry) {
        void vscode.window.showErrorMessage(`phi-complete: unknown model "${settings.model}" (setting phiComplete.model).`);
        return;
      }
      if (await downloadModel(installUi, entry)) await ensureModel();
    }),
    vscode.commands.registerCommand('phiComplete.useLocalFolder', async () => {
      if (await useLocalFolder(installUi)) {
        settings = read();
        await ensureModel();
      }
    }),
    vscode.commands.registerCommand('phiComplete.setHubToken', () => setHubToken(installUi)),
    vscode.commands.registerCommand('phiComplete.selectModel', () => vscode.commands.executeCommand('workbench.action.openSettings', 'phiComplete.model')),
  );
  if (!settings.enable) status.show('off');
  log.info('phi-complete activated');
}

export async function deactivate(): Promise<void> {
  await client?.shutdown();
}
