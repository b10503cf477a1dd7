/**
 * The model lifecycle's window onto VS Code (LifecycleUi over the vscode API), plus the few commands that are
 * pure UI: the status bar menu, the enable toggle, the hub token.
 */
import * as vscode from 'vscode';
import type { WorkerState } from '../client/workerClient';
import type { CatalogueEntry } from '../install/catalogue';
import { downloadModel, offerModel, setHubToken, useLocalFolder, type InstallUiContext } from '../install/installUi';
import type { SettingsReader } from '../settings/settings';
import type { StatusBar, StatusKind } from '../status/statusBar';
import type { LifecycleUi, NoticeSeverity } from './modelLifecycle';

export class VscodeLifecycleUi implements LifecycleUi {
  private readonly install: InstallUiContext;

  /**
   * `settings`: the current settings snapshot (the store's), read when an install step needs them;
   * `installStatus`: an install's progress text for the status bar, undefined when it ends (ModelLifecycle.installStatus).
   */
  constructor(context: vscode.ExtensionContext, readonly log: vscode.LogOutputChannel, private readonly status: StatusBar, private readonly settings: SettingsReader, installStatus: (text: string | undefined) => void) {
    this.install = {
      extension: context,
      settings,
      log,
      onStatus: installStatus,
    };
  }

  notify(severity: NoticeSeverity, message: string, ...actions: string[]): Thenable<string | undefined> {
    if (severity === 'error') return vscode.window.showErrorMessage(message, ...actions);
    if (severity === 'warning') return vscode.window.showWarningMessage(message, ...actions);
    return vscode.window.showInformationMessage(message, ...actions);
  }

  showStatus(kind: StatusKind, detail?: string): void {
    this.status.show(kind, detail);
  }

  setDevice(device: string): void {
    this.status.setDevice(device);
  }

  openSettings(query: string): Thenable<unknown> {
    return vscode.commands.executeCommand('workbench.action.openSettings', query);
  }

  showLog(): void {
    this.log.show();
  }

  offerModel(entry: CatalogueEntry, rebuild: boolean): Promise<boolean> {
    return offerModel(this.install, entry, rebuild);
  }

  downloadModel(entry: CatalogueEntry, beforeReplace: (dir: string) => Promise<void>): Promise<boolean> {
    return downloadModel(this.install, entry, beforeReplace);
  }

  useLocalFolder(): Promise<boolean> {
    return useLocalFolder(this.install);
  }

  /** The Set Hub Access Token command. */
  setHubToken(): Promise<void> {
    return setHubToken(this.install);
  }

  /** The Toggle Inline Completions command: flips phiComplete.enable in the user settings. */
  async toggleCompletions(): Promise<void> {
    await vscode.workspace.getConfiguration('phiComplete').update('enable', !this.settings().enable, vscode.ConfigurationTarget.Global);
  }

  /**
   * The status bar item's menu: the extension's commands, with the worker's state in the placeholder; while the
   * worker is paused, restarting it comes first.
   */
  async showMenu(state: WorkerState): Promise<void> {
    const restart = { label: '$(debug-restart) Restart Inference Worker', command: 'phiComplete.restartWorker' };
    const items: (vscode.QuickPickItem & { command: string })[] = [
      { label: this.settings().enable ? '$(circle-slash) Disable Completions' : '$(check) Enable Completions', command: 'phiComplete.toggle' },
      { label: '$(comment-discussion) Explain Selection', command: 'phiComplete.explainSelection' },
      { label: '$(gear) Select Model…', command: 'phiComplete.selectModel' },
      { label: '$(cloud-download) Download Model', command: 'phiComplete.downloadModel' },
      { label: '$(folder-opened) Use a Local Model Folder…', command: 'phiComplete.useLocalFolder' },
      { label: '$(pulse) Verify Model', command: 'phiComplete.verifyModel' },
      { label: '$(output) Show Log', command: 'phiComplete.showLog' },
    ];
    if (state === 'paused') items.unshift(restart);
    else items.push(restart);
    const choice = await vscode.window.showQuickPick(items, { placeHolder: `phi-complete (${state})` });
    if (choice) await vscode.commands.executeCommand(choice.command);
  }
}
