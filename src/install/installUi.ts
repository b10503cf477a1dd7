/**
 * The first-run experience: when the configured model is missing, offer to download it (with progress, rate,
 * ETA and cancel), to use a local folder, or to open the settings. Nothing touches the network unless the
 * user chooses Download.
 */
import * as vscode from 'vscode';
import type { SettingsReader } from '../settings/settings';
import { askForSecret } from '../util/secretInput';
import { redactCredentials } from '../util/secureUrl';
import { catalogueEntry, type CatalogueEntry } from './catalogue';
import { DownloadError, formatBytes, offlineHelp } from './download';
import { importLocalFolder, installCatalogueModel, installDamage, installedModelDir, type InstallOptions, type InstallProgress } from './install';

export const TOKEN_SECRET = 'phiComplete.hubToken';

export interface InstallUiContext {
  readonly extension: vscode.ExtensionContext;
  readonly settings: SettingsReader;
  readonly log: vscode.LogOutputChannel;
  /** Mirrors install progress in the status bar ("downloading 42%"); undefined when it ends. */
  readonly onStatus: (text: string | undefined) => void;
}

function installOptions(ui: InstallUiContext, token: string | undefined, signal: AbortSignal, report: (p: InstallProgress) => void, beforeReplace?: (dir: string) => Promise<void>): InstallOptions {
  return {
    ...(beforeReplace ? { beforeReplace } : {}),
    storageDir: ui.extension.globalStorageUri.fsPath,
    endpoint: ui.settings().hubEndpoint,
    token,
    signal,
    convertScript: ui.extension.asAbsolutePath('dist/convert.js'),
    onProgress: report,
  };
}

const STAGE_STATUS: Record<InstallProgress['stage'], string> = { wait: 'waiting for another window', download: 'downloading', convert: 'converting' };

/** What the user can do about a failed install: manual steps help with the network, not with a full disk or a refused endpoint. */
function failureActions(kind: DownloadError['kind'] | undefined): string[] {
  if (kind === 'unauthorized') return ['Set Hub Token', 'Use a Local Folder'];
  if (kind === 'disk-space') return ['Use a Local Folder'];
  if (kind === 'insecure') return ['Open Settings', 'Use a Local Folder'];
  return ['Show Manual Steps', 'Use a Local Folder'];
}

/** Runs an install step under a cancellable notification; resolves to the model folder, or undefined. */
async function withInstallProgress(ui: InstallUiContext, title: string, run: (signal: AbortSignal, report: (p: InstallProgress) => void) => Promise<string>): Promise<string | undefined> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, cancellation) => {
    const controller = new AbortController();
    cancellation.onCancellationRequested(() => controller.abort());
    let last: InstallProgress | undefined;
    try {
      return await run(controller.signal, (p) => {
        // `increment` is relative: report the change in percent within the current stage.
        const increment = p.fraction !== undefined && last?.stage === p.stage && last.fraction !== undefined ? (p.fraction - last.fraction) * 100 : undefined;
        progress.report({ message: p.message, ...(increment && increment > 0 ? { increment } : {}) });
        ui.onStatus(`${STAGE_STATUS[p.stage]}${p.fraction === undefined ? '' : ` ${Math.floor(p.fraction * 100)}%`}`);
        last = p;
      });
    } catch (error) {
      if (controller.signal.aborted) {
        void vscode.window.showInformationMessage('phi-complete: cancelled. What was downloaded is kept, and the next attempt resumes from there.');
        return undefined;
      }
      throw error;
    } finally {
      ui.onStatus(undefined);
    }
  });
}

/** `beforeReplace`: see InstallOptions (a repair replaces the folder of the model loaded now). */
export async function downloadModel(ui: InstallUiContext, entry: CatalogueEntry, beforeReplace?: (dir: string) => Promise<void>): Promise<boolean> {
  const token = await ui.extension.secrets.get(TOKEN_SECRET);
  try {
    const dir = await withInstallProgress(ui, `Getting ${entry.title}`, (signal, report) => installCatalogueModel(entry, installOptions(ui, token, signal, report, beforeReplace)));
    if (dir) ui.log.info(`installed ${entry.id} into ${dir}`);
    return dir !== undefined;
  } catch (error) {
    // Messages already leave out the endpoint's credentials; anything else that quotes a URL with them does too.
    const message = redactCredentials((error as Error).message);
    ui.log.error(`installing ${entry.id} failed: ${message}`);
    const choice = await vscode.window.showErrorMessage(`phi-complete: ${message}`, ...failureActions(error instanceof DownloadError ? error.kind : undefined));
    if (choice === 'Set Hub Token') await setHubToken(ui);
    if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'phiComplete.hubEndpoint');
    if (choice === 'Use a Local Folder') return useLocalFolder(ui);
    if (choice === 'Show Manual Steps') {
      const help = offlineHelp({ endpoint: ui.settings().hubEndpoint, ...entry.source });
      ui.log.info(help);
      ui.log.show();
    }
    return false;
  }
}

/** Lets the user pick a model folder (ours, or a Hugging Face phi folder to convert) and points the setting at it. */
export async function useLocalFolder(ui: InstallUiContext): Promise<boolean> {
  const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Use This Model Folder' });
  if (!picked?.[0]) return false;
  const folder = picked[0].fsPath;
  try {
    // A Hugging Face folder is converted as the selected catalogue model would be (CPU or GPU build).
    const build = catalogueEntry(ui.settings().model)?.build ?? { format: 'int4' };
    const dir = await withInstallProgress(ui, `Preparing ${folder}`, (signal, report) => importLocalFolder(folder, build, installOptions(ui, undefined, signal, report)));
    if (!dir) return false;
    await vscode.workspace.getConfiguration('phiComplete').update('modelPath', dir, vscode.ConfigurationTarget.Global);
    return true;
  } catch (error) {
    void vscode.window.showErrorMessage(`phi-complete: ${(error as Error).message}`);
    return false;
  }
}

export function setHubToken(ui: InstallUiContext): Promise<void> {
  return askForSecret(ui.extension.secrets, TOKEN_SECRET, 'Access token for the model hub');
}

/**
 * The first-run question; when the installed model was built otherwise than this version builds it (`rebuild`),
 * the offer to rebuild it from the kept download; when its files are damaged, the offer to repair it.
 * Returns true when a model is now in place.
 */
export async function offerModel(ui: InstallUiContext, entry: CatalogueEntry, rebuild = false): Promise<boolean> {
  const damage = installDamage(installedModelDir(ui.extension.globalStorageUri.fsPath, entry.id));
  const action = rebuild ? 'Rebuild' : damage ? 'Repair' : 'Download';
  const choice = await vscode.window.showInformationMessage(
    rebuild
      ? `phi-complete: ${entry.title} must be rebuilt for this version from its downloaded weights (a few minutes of CPU).`
      : action === 'Repair'
        ? `phi-complete: ${entry.title} is damaged (${damage}). Repair fetches what is missing or wrong and converts it again.`
        : `phi-complete: ${entry.title} (≈${formatBytes(entry.downloadBytes)} download, ≈${formatBytes(entry.modelBytes)} on disk) is needed for local completions.`,
    action, 'Use a Local Folder', 'Settings',
  );
  if (choice === action) return downloadModel(ui, entry);
  if (choice === 'Use a Local Folder') return useLocalFolder(ui);
  if (choice === 'Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'phiComplete.model');
  return false;
}
