/**
 * Getting a model onto the user's machine: download a catalogue model's source files (resumable, verified),
 * then convert them into our ONNX layout in a separate process. Both steps write under temporary names, so
 * an interruption at any point leaves nothing that could be loaded by mistake; the next attempt resumes.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parsePhiConfig } from '../model/config';
import { defaultKvCache, INT4_LAYOUT, int4LayoutOf, kvCacheOf, kvOutputsOf, MANIFEST_FILE, modelFileHashProblems, modelFileProblems, readManifest, returnsCache, sameInt4Layout, type WeightFormat } from '../model/manifest';
import { phiTensorShapes } from '../model/weights';
import type { CatalogueEntry, ModelBuild } from './catalogue';
import { convertInChildProcess } from './convert';
import { checkDiskSpace, downloadedBytes, downloadFiles, formatBytes, type FreeSpaceProbe } from './download';
import { withFolderLock, type LockOptions } from './folderLock';

export interface InstallProgress {
  /** `wait`: another process (another VS Code window) is installing the same model; this one waits for it. */
  readonly stage: 'wait' | 'download' | 'convert';
  readonly message: string;
  /** 0 to 1 within the stage, when known. */
  readonly fraction?: number;
}

export interface InstallOptions {
  /** The extension's global storage folder. */
  readonly storageDir: string;
  readonly endpoint: string;
  readonly token?: string;
  readonly signal?: AbortSignal;
  /** The bundled conversion entry point (dist/convert.js). */
  readonly convertScript: string;
  readonly onProgress?: (progress: InstallProgress) => void;
  /**
   * Called with the model folder just before it is replaced (converted again): whatever has its files open (the
   * worker's loaded model) must let go of them first — on Windows an open file cannot be replaced.
   */
  readonly beforeReplace?: (dir: string) => Promise<void>;
  /** Bytes free in a folder (default: statfs). */
  readonly freeSpace?: FreeSpaceProbe;
}

export function installedModelDir(storageDir: string, id: string): string {
  return path.join(storageDir, 'models', id);
}

/** Whether `dir` holds a model whose files have the sizes its manifest records (cheap: no file is read). */
export function isInstalled(dir: string): boolean {
  return fs.existsSync(path.join(dir, MANIFEST_FILE)) && installDamage(dir) === undefined;
}

/**
 * What is wrong with the model installed in `dir` (a file missing or of the wrong size, an unreadable manifest);
 * undefined when nothing is, or when no model is installed there (no manifest).
 */
export function installDamage(dir: string): string | undefined {
  if (!fs.existsSync(path.join(dir, MANIFEST_FILE))) return undefined;
  try {
    const problems = modelFileProblems(dir);
    return problems.length > 0 ? problems.join(', ') : undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** As isInstalled, and every file's sha256 matches its manifest (reads every byte). */
async function isIntact(dir: string, signal: AbortSignal | undefined): Promise<boolean> {
  if (!isInstalled(dir)) return false;
  try {
    return (await modelFileHashProblems(dir, signal)).length === 0;
  } catch (error) {
    if (signal?.aborted) throw error;
    return false;
  }
}

/** Whether the model in `dir` was built as `build` asks (a catalogue update may change how its model is built). */
export function isBuiltAs(dir: string, build: ModelBuild): boolean {
  try {
    const manifest = readManifest(dir);
    return manifest.weights === build.format && kvCacheOf(manifest) === (build.kvCache ?? defaultKvCache(build.format))
      && kvOutputsOf(manifest) === (build.kvOutputs ?? 'present_rows');
  } catch {
    return false;
  }
}

/**
 * Whether an int4 model in `dir` stores its weights as this version's builder does (blocks of 128 since
 * 2026-12-05; before manifests recorded it, 64). One in an older layout works, only slower: it is loaded, offered
 * for a rebuild, and rebuilt by Download Model.
 */
export function hasCurrentLayout(dir: string): boolean {
  try {
    const layout = int4LayoutOf(readManifest(dir));
    return layout === undefined || sameInt4Layout(layout, INT4_LAYOUT);
  } catch {
    return false;
  }
}

/**
 * Removes what an interrupted conversion into `target` left behind (staging folders are never loaded). Only
 * under `target`'s lock: a staging folder of a conversion running in another process is then impossible.
 */
function removeStaleStaging(target: string): void {
  const parent = path.dirname(target);
  if (!fs.existsSync(parent)) return;
  const prefix = `${path.basename(target)}.partial-`;
  for (const name of fs.readdirSync(parent)) {
    if (name.startsWith(prefix)) fs.rmSync(path.join(parent, name), { recursive: true, force: true });
  }
}

/** Bytes per weight of a converted model, on phi-1.5 (int4 in blocks of 128: ≈843 MB for 1.42 billion weights). */
const BYTES_PER_WEIGHT: Record<WeightFormat, number> = { int4: 0.595, fp16: 2, fp32: 4 };

/** About how many bytes the model converted from a Hugging Face folder takes (from its config.json's shapes). */
function estimateModelBytes(folder: string, format: WeightFormat): number {
  const configPath = path.join(folder, 'config.json');
  const config = parsePhiConfig(JSON.parse(fs.readFileSync(configPath, 'utf8')), configPath);
  let weights = 0;
  for (const shape of phiTensorShapes(config).values()) weights += shape.reduce((a, b) => a * b, 1);
  return Math.ceil(weights * BYTES_PER_WEIGHT[format]);
}

function lockOptions(options: InstallOptions, what: string): LockOptions {
  return {
    ...(options.signal ? { signal: options.signal } : {}),
    onWait: (owner) => options.onProgress?.({
      stage: 'wait',
      message: `waiting for another VS Code window${owner ? ` (process ${owner.pid})` : ''} that is installing ${what}`,
    }),
  };
}

/** Converts under `target`'s lock (the caller holds it), after checking there is room for the result. */
async function convert(from: string, target: string, build: ModelBuild, modelBytes: number, options: InstallOptions): Promise<void> {
  removeStaleStaging(target);
  await checkDiskSpace(path.dirname(target), modelBytes, options.freeSpace, 'the converted model');
  const what = `${build.format}${build.kvCache ? ` with a ${build.kvCache} KV cache` : ''}${returnsCache(build.kvOutputs ?? 'present_rows') ? ' for a GPU' : ''}`;
  options.onProgress?.({ stage: 'convert', message: `converting to ${what}`, fraction: 0 });
  await convertInChildProcess(options.convertScript, { from, to: target, ...build }, (fraction) => {
    options.onProgress?.({ stage: 'convert', message: `converting to ${what}: ${Math.round(fraction * 100)}%`, fraction });
  }, options.signal);
}

/**
 * Fails as 'disk-space' before anything is fetched when the rest of the download and the converted model do
 * not fit (the catalogue's sizes are approximate; each file is checked again when the hub says its size).
 */
async function checkInstallSpace(entry: CatalogueEntry, downloads: string, options: InstallOptions): Promise<void> {
  const downloaded = await downloadedBytes(downloads, entry.source.files);
  const download = downloaded.complete ? 0 : Math.max(0, entry.downloadBytes - downloaded.bytes);
  await checkDiskSpace(options.storageDir, download + entry.modelBytes, options.freeSpace,
    `${entry.title} (${formatBytes(download)} still to download, ${formatBytes(entry.modelBytes)} for the converted model)`);
}

/**
 * Downloads and converts a catalogue model unless it is installed intact (every file's sha256 as its manifest
 * says) as the entry builds it; returns its folder. A damaged model is repaired: the downloaded files are
 * checked (what is missing or wrong is fetched again) and the model is converted again. A model built otherwise
 * (the entry changed since) is rebuilt from the downloaded files, which are kept. Another process installing
 * the same model (another window) is waited for, and its result used.
 */
export async function installCatalogueModel(entry: CatalogueEntry, options: InstallOptions): Promise<string> {
  const target = installedModelDir(options.storageDir, entry.id);
  const ready = async (): Promise<boolean> => isBuiltAs(target, entry.build) && hasCurrentLayout(target) && await isIntact(target, options.signal);
  if (await ready()) return target;
  const { repo, revision, files } = entry.source;
  const downloads = path.join(options.storageDir, 'downloads', `${repo.replace(/\//g, '--')}@${revision}`);
  // Always the model's lock first, then the download's: two catalogue entries share one download.
  return withFolderLock(target, lockOptions(options, entry.title), () => withFolderLock(downloads, lockOptions(options, `${repo}'s files`), async () => {
    if (await ready()) return target; // installed by the process this one waited for
    fs.mkdirSync(downloads, { recursive: true });
    await checkInstallSpace(entry, downloads, options);
    await downloadFiles({
      endpoint: options.endpoint,
      repo,
      revision,
      files,
      destination: downloads,
      token: options.token,
      signal: options.signal,
      ...(options.freeSpace ? { freeSpace: options.freeSpace } : {}),
      onProgress: (p) => {
        const fraction = p.totalBytes ? p.receivedBytes / p.totalBytes : undefined;
        const eta = p.totalBytes && p.bytesPerSecond > 0 ? `, ${Math.ceil((p.totalBytes - p.receivedBytes) / p.bytesPerSecond)} s left` : '';
        const total = p.totalBytes ? ` of ${formatBytes(p.totalBytes)}` : '';
        options.onProgress?.({ stage: 'download', message: `${p.file}: ${formatBytes(p.receivedBytes)}${total} at ${formatBytes(p.bytesPerSecond)}/s${eta}`, fraction });
      },
    });
    if (fs.existsSync(target)) await options.beforeReplace?.(target);
    await convert(downloads, target, entry.build, entry.modelBytes, options);
    return target;
  }));
}

/**
 * A folder the user points at: our ONNX layout is used as it is (after checking its manifest and its files'
 * sizes); a Hugging Face phi folder (config.json + *.safetensors) is converted once into the storage folder.
 * Returns the folder to load.
 */
export async function importLocalFolder(folder: string, build: ModelBuild, options: InstallOptions): Promise<string> {
  if (fs.existsSync(path.join(folder, MANIFEST_FILE))) {
    const damage = installDamage(folder);
    if (damage) throw new Error(`the model in ${folder} is damaged (${damage}); rebuild it or copy it again`);
    return folder;
  }
  if (!fs.existsSync(path.join(folder, 'config.json')) || !fs.readdirSync(folder).some((f) => f.endsWith('.safetensors'))) {
    throw new Error(`${folder} is neither a phi-complete model folder (manifest.json) nor a Hugging Face phi folder (config.json and *.safetensors)`);
  }
  const buildTag = [build.format, build.kvCache, build.kvOutputs === 'present_rows' ? undefined : build.kvOutputs].filter(Boolean).join('-');
  const id = `local-${createHash('sha256').update(path.resolve(folder)).digest('hex').slice(0, 12)}-${buildTag}`;
  const target = installedModelDir(options.storageDir, id);
  if (isInstalled(target)) return target;
  await withFolderLock(target, lockOptions(options, folder), async () => {
    if (!isInstalled(target)) await convert(folder, target, build, estimateModelBytes(folder, build.format), options);
  });
  return target;
}
