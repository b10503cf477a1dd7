/**
 * Which model folder the worker loads: the `modelPath` setting when set, otherwise the catalogue model in the
 * extension's global storage. (Downloading catalogue models is not built yet: until it is, a missing model
 * says how to point `phiComplete.modelPath` at a folder.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Settings } from './config';
import { MANIFEST_FILE } from './model/manifest';

export type ModelLocation = { readonly ok: true; readonly dir: string } | { readonly ok: false; readonly message: string };

export function locateModel(settings: Settings, globalStorage: string): ModelLocation {
  if (settings.modelPath) {
    if (!fs.existsSync(settings.modelPath)) {
      return { ok: false, message: `The model folder ${settings.modelPath} (setting phiComplete.modelPath) does not exist. Point the setting at a folder built by "npm run build-model", or clear it.` };
    }
    return { ok: true, dir: settings.modelPath };
  }
  const dir = path.join(globalStorage, 'models', settings.model);
  if (fs.existsSync(path.join(dir, MANIFEST_FILE))) return { ok: true, dir };
  return {
    ok: false,
    message: `The model ${settings.model} is not on this machine yet. Build it from a phi-1.5 download ("npm run build-model -- --from <folder> --out <dir>", see the README) and set phiComplete.modelPath to <dir>.`,
  };
}
