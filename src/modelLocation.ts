/**
 * Which model folder the worker loads: the `modelPath` setting when set, otherwise the catalogue model in the
 * extension's global storage, once it is installed with every file the size its manifest records.
 *
 * `modelPath` must be absolute (a leading `~` is the home folder): it is a machine setting, so there is no one
 * workspace folder to resolve a relative path against, and the extension host's working directory means nothing.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Settings } from './settings/settings';
import { catalogueEntry, type CatalogueEntry } from './install/catalogue';
import { hasCurrentLayout, installDamage, installedModelDir, isBuiltAs, isInstalled } from './install/install';
import { MANIFEST_FILE } from './model/manifest';

export type ModelLocation =
  /** `olderBuild`: the catalogue model works but was built in an older, slower layout (Download Model rebuilds it). */
  | { readonly ok: true; readonly dir: string; readonly olderBuild?: CatalogueEntry }
  | { readonly ok: false; readonly message: string; readonly missing?: CatalogueEntry; readonly rebuild?: boolean; readonly huggingFace?: boolean };

/** Whether `dir` is a Hugging Face phi folder (config.json and *.safetensors, no manifest.json): it must be converted first. */
function isHuggingFaceFolder(dir: string): boolean {
  try {
    return !fs.existsSync(path.join(dir, MANIFEST_FILE)) && fs.existsSync(path.join(dir, 'config.json')) && fs.readdirSync(dir).some((f) => f.endsWith('.safetensors'));
  } catch {
    return false;
  }
}

/** The `modelPath` setting as an absolute path (`~` expanded), or undefined when it is relative. */
export function absoluteModelPath(modelPath: string): string | undefined {
  const expanded = modelPath === '~' || /^~[\\/]/.test(modelPath) ? path.join(os.homedir(), modelPath.slice(1)) : modelPath;
  return path.isAbsolute(expanded) ? path.normalize(expanded) : undefined;
}

export function locateModel(settings: Settings, globalStorage: string): ModelLocation {
  if (settings.modelPath) {
    const dir = absoluteModelPath(settings.modelPath);
    if (dir === undefined) {
      return { ok: false, message: `The model folder ${settings.modelPath} (setting phiComplete.modelPath) is a relative path. Set it to the folder's full path (e.g. ${path.join(os.homedir(), 'models', 'phi-1_5')}), or clear it to use ${settings.model}.` };
    }
    if (!fs.existsSync(dir)) {
      return { ok: false, message: `The model folder ${dir} (setting phiComplete.modelPath) does not exist. Point the setting at a model folder, or clear it to use ${settings.model}.` };
    }
    if (isHuggingFaceFolder(dir)) {
      return {
        ok: false,
        huggingFace: true,
        message: `The model folder ${dir} (setting phiComplete.modelPath) is a Hugging Face folder, which must be converted first: run "phi-complete: Use a Local Model Folder" and pick it (the converted model is then used).`,
      };
    }
    return { ok: true, dir };
  }
  const entry = catalogueEntry(settings.model);
  if (!entry) return { ok: false, message: `Unknown model "${settings.model}" (setting phiComplete.model).` };
  const dir = installedModelDir(globalStorage, entry.id);
  const damage = installDamage(dir);
  if (damage) return { ok: false, message: `${entry.title} is damaged (${damage}): Download Model repairs it.`, missing: entry };
  if (!isInstalled(dir)) return { ok: false, message: `${entry.title} is not on this machine yet.`, missing: entry };
  if (!isBuiltAs(dir, entry.build)) {
    return { ok: false, message: `${entry.title} was built differently from how this version builds it, and must be rebuilt from its downloaded weights.`, missing: entry, rebuild: true };
  }
  return hasCurrentLayout(dir) ? { ok: true, dir } : { ok: true, dir, olderBuild: entry };
}
