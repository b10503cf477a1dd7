/**
 * Getting a model onto the user's machine: download a catalogue model's source files (resumable, verified),
 * then convert them into our ONNX layout in a separate process. Both steps write under temporary names, so
 * an interruption at any point leaves nothing that could be loaded by mistake; the next attempt resumes.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { downloadFiles, formatBytes } from '../model/download';
import { defaultKvCache, kvCacheOf, kvOutputsOf, MANIFEST_FILE, readManifest, returnsCache } from '../model/manifest';
import type { CatalogueEntry, ModelBuild } from './catalogue';
import { convertInChildProcess } from './convert';

export interface InstallProgress {
  readonly stage: 'download' | 'convert';
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
}

export function installedModelDir(storageDir: string, id: string): string {
  return path.join(storageDir, 'models', id);
}

export function isInstalled(dir: string): boolean {
  return fs.existsSync(path.join(dir, MANIFEST_FILE));
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

/** Removes what an interrupted conversion into `target` left behind (staging folders are never loaded). */
function removeStaleStaging(target: string): void {
  const parent = path.dirname(target);
  if (!fs.existsSync(parent)) return;
  const prefix = `${path.basename(target)}.partial-`;
  for (const name of fs.readdirSync(parent)) {
    if (name.startsWith(prefix)) fs.rmSync(path.join(parent, name), { recursive: true, force: true });
  }
}

async function convert(from: string, target: string, build: ModelBuild, options: InstallOptions): Promise<void> {
  removeStaleStaging(target);
  const what = `${build.format}${build.kvCache ? ` with a ${build.kvCache} KV cache` : ''}${returnsCache(build.kvOutputs ?? 'present_rows') ? ' for a GPU' : ''}`;
  options.onProgress?.({ stage: 'convert', message: `converting to ${what}`, fraction: 0 });
  await convertInChildProcess(options.convertScript, { from, to: target, ...build }, (fraction) => {
    options.onProgress?.({ stage: 'convert', message: `converting to ${what}: ${Math.round(fraction * 100)}%`, fraction });
  }, options.signal);
}

/**
 * Downloads and converts a catalogue model unless it is installed as the entry builds it; returns its folder.
 * A model built otherwise (the entry changed since) is rebuilt from the downloaded files, which are kept.
 */
export async function installCatalogueModel(entry: CatalogueEntry, options: InstallOptions): Promise<string> {
  const target = installedModelDir(options.storageDir, entry.id);
  if (isInstalled(target) && isBuiltAs(target, entry.build)) return target;
  const { repo, revision, files } = entry.source;
  const downloads = path.join(options.storageDir, 'downloads', `${repo.replace(/\//g, '--')}@${revision}`);
  fs.mkdirSync(downloads, { recursive: true });
  await downloadFiles({
    endpoint: options.endpoint,
    repo,
    revision,
    files,
    destination: downloads,
    token: options.token,
    signal: options.signal,
    onProgress: (p) => {
      const fraction = p.totalBytes ? p.receivedBytes / p.totalBytes : undefined;
      const eta = p.totalBytes && p.bytesPerSecond > 0 ? `, ${Math.ceil((p.totalBytes - p.receivedBytes) / p.bytesPerSecond)} s left` : '';
      const total = p.totalBytes ? ` of ${formatBytes(p.totalBytes)}` : '';
      options.onProgress?.({ stage: 'download', message: `${p.file}: ${formatBytes(p.receivedBytes)}${total} at ${formatBytes(p.bytesPerSecond)}/s${eta}`, fraction });
    },
  });
  await convert(downloads, target, entry.build, options);
  return target;
}

/**
 * A folder the user points at: our ONNX layout is used as it is (after checking its manifest); a Hugging Face
 * phi folder (config.json + *.safetensors) is converted once into the storage folder. Returns the folder to load.
 */
export async function importLocalFolder(folder: string, build: ModelBuild, options: InstallOptions): Promise<string> {
  if (fs.existsSync(path.join(folder, MANIFEST_FILE))) {
    readManifest(folder);
    return folder;
  }
  if (!fs.existsSync(path.join(folder, 'config.json')) || !fs.readdirSync(folder).some((f) => f.endsWith('.safetensors'))) {
    throw new Error(`${folder} is neither a phi-complete model folder (manifest.json) nor a Hugging Face phi folder (config.json and *.safetensors)`);
  }
  const buildTag = [build.format, build.kvCache, build.kvOutputs === 'present_rows' ? undefined : build.kvOutputs].filter(Boolean).join('-');
  const id = `local-${createHash('sha256').update(path.resolve(folder)).digest('hex').slice(0, 12)}-${buildTag}`;
  const target = installedModelDir(options.storageDir, id);
  if (!isInstalled(target)) await convert(folder, target, build, options);
  return target;
}
