/**
 * Which model folder the worker loads: the `modelPath` setting when set, otherwise the catalogue model in the
 * extension's global storage, once it is installed.
 */
import * as fs from 'node:fs';
import type { Settings } from './config';
import { catalogueEntry, type CatalogueEntry } from './install/catalogue';
import { installedModelDir, isBuiltAs, isInstalled } from './install/install';

export type ModelLocation =
  | { readonly ok: true; readonly dir: string }
  | { readonly ok: false; readonly message: string; readonly missing?: CatalogueEntry; readonly rebuild?: boolean };

export function locateModel(settings: Settings, globalStorage: string): ModelLocation {
  if (settings.modelPath) {
    if (!fs.existsSync(settings.modelPath)) {
      return { ok: false, message: `The model folder ${settings.modelPath} (setting phiComplete.modelPath) does not exist. Point the setting at a model folder, or clear it to use ${settings.model}.` };
    }
    return { ok: true, dir: settings.modelPath };
  }
  const entry = catalogueEntry(settings.model);
  if (!entry) return { ok: false, message: `Unknown model "${settings.model}" (setting phiComplete.model).` };
  const dir = installedModelDir(globalStorage, entry.id);
  if (!isInstalled(dir)) return { ok: false, message: `${entry.title} is not on this machine yet.`, missing: entry };
  if (!isBuiltAs(dir, entry.build)) {
    return { ok: false, message: `${entry.title} was built differently from how this version builds it, and must be rebuilt from its downloaded weights.`, missing: entry, rebuild: true };
  }
  return { ok: true, dir };
}
