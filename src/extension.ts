/**
 * Extension entry point: wires the settings store, the inference worker (started lazily, on the first completion or
 * command), the model's lifecycle, the server backend and the router that picks between them, inline completions,
 * Explain Selection and the status bar. Everything is disposed with the extension.
 */
import * as vscode from 'vscode';
import { WorkerClient } from './client/workerClient';
import { suggestionContext } from './completion/outcome';
import { CompletionPipeline } from './completion/pipeline';
import { InlineCompletionProvider } from './completion/provider';
import { PrefillRate } from './completion/prefillRate';
import { CompletionPrompts } from './completion/requestPrompts';
import { CompletionWarmer } from './completion/warmer';
import { ExplainPanel } from './explain/explainPanel';
import { VscodeLifecycleUi } from './lifecycle/lifecycleUi';
import { ModelLifecycle } from './lifecycle/modelLifecycle';
import { locateModel } from './modelLocation';
import { BackendRouter } from './server/backendRouter';
import { describeServerAnswer, ServerBackend, serverHost } from './server/serverBackend';
import { verifyServer } from './server/serverCheck';
import { ServerNotices } from './server/serverNotices';
import { SETTING_KEYS, USER_ONLY_SETTINGS } from './settings/settings';
import { SettingsStore, type SettingsSource } from './settings/store';
import { SettingsWarnings } from './settings/warnings';
import { StatusBar } from './status/statusBar';
import { askForSecret } from './util/secretInput';
import { redactUrl } from './util/secureUrl';

let client: WorkerClient | undefined;
/** How long a one-line message stays in the status bar. */
const NOTICE_MS = 10_000;

/** Where the server token is kept (VS Code's secret storage). */
const SERVER_TOKEN_SECRET = 'phiComplete.serverToken';
/** Keys of the settings a workspace must not set (the server's): only the user's own value is read. */
const USER_ONLY_KEYS = new Set(USER_ONLY_SETTINGS.map((name) => SETTING_KEYS[name]));

/** The `phiComplete.*` settings as VS Code has them (per-language overrides aside: the provider reads `enable` per language). */
const vscodeSettings: SettingsSource = {
  readSetting: (key) => {
    const configuration = vscode.workspace.getConfiguration('phiComplete');
    return USER_ONLY_KEYS.has(key) ? configuration.inspect(key)?.globalValue : configuration.get(key);
  },
  onDidChangeSettings: (listener) => vscode.workspace.onDidChangeConfiguration((event) => {
    if (event.affectsConfiguration('phiComplete')) listener();
  }),
};

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('phi-complete', { log: true });
  const worker = new WorkerClient({ workerPath: context.asAbsolutePath('dist/worker.js'), log: (message, level) => (level === 'debug' ? log.debug(message) : log.info(message)) });
  client = worker;
  const status = new StatusBar('phiComplete.menu', 'phiComplete.restartWorker');
  // The one snapshot every part reads; the lifecycle, the first to listen, acts on a change before the rest hear of it.
  const store = new SettingsStore(vscodeSettings);
  const settings = store.read;
  const ui = new VscodeLifecycleUi(context, log, status, settings, (text) => model.installStatus(text));
  const model: ModelLifecycle = new ModelLifecycle(worker, store, ui, context.globalStorageUri.fsPath);
  const notices = new ServerNotices({
    notify: (message, ...actions) => vscode.window.showErrorMessage(message, ...actions),
    openSettings: () => ui.openSettings('phiComplete.server'),
    useLocalModel: () => vscode.workspace.getConfiguration('phiComplete').update('backend', 'local', vscode.ConfigurationTarget.Global),
    localModelExists: () => locateModel(settings(), context.globalStorageUri.fsPath).ok,
  });
  const server = new ServerBackend({
    endpoint: () => ({ url: settings().serverUrl, api: settings().serverApi, model: settings().serverModel }),
    token: () => context.secrets.get(SERVER_TOKEN_SECRET),
    onAnswer: (report) => {
      notices.reset();
      status.setServer(report.host, describeServerAnswer(report));
    },
    // Completions log their failures (the pipeline), warm-ups theirs (the warmer): told here once per kind.
    onFailure: (error) => notices.failed(error),
  });
  const backend = new BackendRouter({
    local: worker, server, store, status,
    ensureLocalModel: (asked) => model.ensureModel(asked),
    reportLocalActivity: (generating) => model.reportActivity(generating),
    verifyLocal: () => model.verify(),
    verifyServer: () => verifyServer({
      server, notices, host: serverHost(settings().serverUrl), log: (line) => log.info(line),
      tell: (severity, message) => void ui.notify(severity, message),
    }),
    onSourceChange: () => {
      notices.reset();
      server.forgetFailure();
      pipeline.forgetSuggestions();
      prefillRate.forget();
    },
  });
  const ensureModel = () => backend.ensureModel();
  const prefillRate = new PrefillRate();
  const prompts = new CompletionPrompts(prefillRate);
  const warmer = new CompletionWarmer(vscode.window, vscode.workspace, backend, settings, prompts, log, prefillRate);
  const pipeline = new CompletionPipeline({
    backend, settings, configuration: vscode.workspace, prompts, prefillRate, ensureModel, log, onActivity: (activity) => {
      backend.reportActivity(activity.generating);
      if (activity.generating) return;
      const context = suggestionContext(activity.outcome);
      if (context) status.setLastSuggestion(context);
      warmer.completionEnded(context !== undefined);
    },
    onNotice: (message) => void vscode.window.setStatusBarMessage(message, NOTICE_MS),
  });
  const provider = new InlineCompletionProvider(pipeline);
  // Explain Selection is asked for: while the worker is paused it says so, with Restart Inference Worker.
  const explain = new ExplainPanel(backend, settings, () => backend.ensureModel(true));
  context.subscriptions.push(
    log,
    worker,
    status,
    store,
    model,
    backend,
    explain,
    warmer,
    new SettingsWarnings(store, ui),
    vscode.languages.registerInlineCompletionItemProvider({ pattern: '**' }, provider),
    vscode.commands.registerCommand('phiComplete.showLog', () => log.show()),
    vscode.commands.registerCommand('phiComplete.restartWorker', () => model.restartWorker()),
    vscode.commands.registerCommand('phiComplete.explainSelection', () => explain.explain(vscode.window.activeTextEditor)),
    vscode.commands.registerCommand('phiComplete.toggle', () => ui.toggleCompletions()),
    vscode.commands.registerCommand('phiComplete.menu', () => ui.showMenu(worker.state)),
    vscode.commands.registerCommand('phiComplete.verifyModel', () => backend.verify()),
    vscode.commands.registerCommand('phiComplete.downloadModel', () => model.downloadModel()),
    vscode.commands.registerCommand('phiComplete.useLocalFolder', () => model.useLocalFolder()),
    vscode.commands.registerCommand('phiComplete.setHubToken', () => ui.setHubToken()),
    vscode.commands.registerCommand('phiComplete.setServerToken', async () => {
      await askForSecret(context.secrets, SERVER_TOKEN_SECRET, `Token for the completion server${settings().serverUrl ? ` at ${redactUrl(settings().serverUrl)}` : ''}`);
      server.forgetFailure();
      notices.reset();
    }),
    vscode.commands.registerCommand('phiComplete.selectModel', () => ui.openSettings('phiComplete.model')),
  );
  log.info('phi-complete activated');
}

export async function deactivate(): Promise<void> {
  await client?.shutdown();
}
