/**
 * The extension's settings as one typed, readonly snapshot. Invalid values are replaced by their defaults, with
 * a warning naming the setting; settings that are valid alone but cannot work together are reported as problems
 * and fitted to the model (see settingsProblems). Snapshots are compared (changedSettings), and which changes
 * reload the model is said here, once (MODEL_SETTINGS). The store that holds the current snapshot: ./store.ts.
 */
import { MAX_USEFUL_EXPLAIN_TOKENS } from '../explain/explainPrompt';
import { PHI_1_5 } from '../model/config';
import { DEVICES, type Device } from '../protocol';
import { insecureUrlReason, redactUrl } from '../util/secureUrl';

export interface Settings {
  /** Inline completions on or off (VS Code resolves per-language overrides before we read it). */
  readonly enable: boolean;
  /** Language ids that get inline completions. */
  readonly languages: readonly string[];
  /** A catalogue model id (see models/). */
  readonly model: string;
  /** A local model folder; when set it is used instead of `model`. */
  readonly modelPath: string;
  readonly device: Device;
  /** CPU threads for ONNX Runtime; 0 lets it choose. */
  readonly threads: number;
  readonly completionMaxTokens: number;
  readonly explainMaxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  readonly debounceMs: number;
  readonly contextTokens: number;
  readonly speculative: boolean;
  readonly hubEndpoint: string;
  /** MiB the worker's KV caches (one per recently used file) may hold together; applies without a reload. */
  readonly cacheMemoryMB: number;
  /** Where suggestions come from: the local worker, or a server (src/server/). */
  readonly backend: Backend;
  /** The server's base URL (https, or http on loopback), without a trailing slash. */
  readonly serverUrl: string;
  readonly serverApi: ServerApi;
  /** The model name the server's API asks for (OpenAI-compatible servers); '' for none. */
  readonly serverModel: string;
}

export type Backend = 'local' | 'server';
/** llama.cpp: llama-server's own /completion; openai: /v1/completions (vLLM, SGLang, Ollama, llama-server). */
export type ServerApi = 'llama.cpp' | 'openai';
export const SERVER_APIS: readonly ServerApi[] = ['llama.cpp', 'openai'];

/**
 * Settings only the user may set (package.json scope `application`), read ignoring workspace values: a workspace
 * that could point them elsewhere could send the user's code, and the server token, to a host of its choosing.
 */
export const USER_ONLY_SETTINGS: readonly (keyof Settings)[] = ['backend', 'serverUrl', 'serverApi', 'serverModel'];

export const DEFAULT_SETTINGS: Settings = {
  enable: true,
  languages: ['python'],
  model: 'phi-1_5-int4',
  modelPath: '',
  device: 'auto',
  threads: 0,
  completionMaxTokens: 64,
  explainMaxTokens: 384,
  temperature: 0,
  topP: 0.95,
  debounceMs: 150,
  contextTokens: 1024,
  speculative: false,
  hubEndpoint: 'https://huggingface.co',
  // The full-size int8 cache takes 104,448 bytes a position (24 layers · 32 heads · (64 + 4 + 64 + 4)), so a
  // 1,024-token window's cache (room for its completion too: 1,152 positions) is 115 MiB: 768 MiB holds 6 (a file
  // can use two or three: the window where the user types, the one warmed ahead of it, another place in it).
  cacheMemoryMB: 768,
  backend: 'local',
  serverUrl: '',
  serverApi: 'llama.cpp',
  serverModel: '',
};

/** Setting keys as they appear in settings.json, under the `phiComplete.` section. */
export const SETTING_KEYS: Record<keyof Settings, string> = {
  enable: 'enable',
  languages: 'languages',
  model: 'model',
  modelPath: 'modelPath',
  device: 'device',
  threads: 'threads',
  completionMaxTokens: 'completion.maxTokens',
  explainMaxTokens: 'explain.maxTokens',
  temperature: 'temperature',
  topP: 'topP',
  debounceMs: 'debounceMs',
  contextTokens: 'contextTokens',
  speculative: 'speculativeDecoding',
  hubEndpoint: 'hubEndpoint',
  cacheMemoryMB: 'cacheMemoryMB',
  backend: 'backend',
  serverUrl: 'server.url',
  serverApi: 'server.api',
  serverModel: 'server.model',
};

type Check = (value: unknown) => boolean;
const integerIn = (min: number, max: number): Check => (v) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
const numberIn = (min: number, max: number): Check => (v) => typeof v === 'number' && v >= min && v <= max;
const isBoolean: Check = (v) => typeof v === 'boolean';
const isString: Check = (v) => typeof v === 'string';

/** The hub token (and, for a server, the user's code) is sent to the endpoint: https only, or plain http on this machine. */
function isSecureEndpoint(value: string): boolean {
  try {
    return insecureUrlReason(new URL(value)) === undefined;
  } catch {
    return false;
  }
}

const CHECKS: Record<keyof Settings, [Check, string]> = {
  enable: [isBoolean, 'true or false'],
  languages: [(v) => Array.isArray(v) && v.every((id) => typeof id === 'string' && id !== ''), 'a list of language ids'],
  model: [(v) => typeof v === 'string' && v !== '', 'a model id'],
  modelPath: [isString, 'a folder path'],
  device: [(v) => DEVICES.includes(v as Device), DEVICES.join(', ')],
  threads: [integerIn(0, 256), 'an integer from 0 (automatic) to 256'],
  completionMaxTokens: [integerIn(1, 1024), 'an integer from 1 to 1024'],
  explainMaxTokens: [integerIn(1, 2048), 'an integer from 1 to 2048'],
  temperature: [numberIn(0, 2), 'a number from 0 to 2'],
  topP: [(v) => typeof v === 'number' && v > 0 && v <= 1, 'a number above 0 and at most 1'],
  debounceMs: [integerIn(0, 5000), 'an integer from 0 to 5000'],
  contextTokens: [integerIn(64, 1920), 'an integer from 64 to 1920'],
  speculative: [isBoolean, 'true or false'],
  hubEndpoint: [(v) => typeof v === 'string' && isSecureEndpoint(v.trim()), 'an https URL (plain http only for 127.0.0.1 or localhost)'],
  cacheMemoryMB: [integerIn(64, 65536), 'an integer from 64 to 65536'],
  backend: [(v) => v === 'local' || v === 'server', 'local or server'],
  serverUrl: [(v) => typeof v === 'string' && (v.trim() === '' || isSecureEndpoint(v.trim())), 'an https URL (plain http only for 127.0.0.1 or localhost)'],
  serverApi: [(v) => SERVER_APIS.includes(v as ServerApi), SERVER_APIS.join(' or ')],
  serverModel: [isString, 'a model name'],
};

function normalise(name: keyof Settings, value: unknown): unknown {
  if (name === 'modelPath') return (value as string).trim();
  if (name === 'hubEndpoint' || name === 'serverUrl') return (value as string).trim().replace(/\/+$/, '');
  if (name === 'serverModel') return (value as string).trim();
  return value;
}

/** Positions the model reads at once, prompt and generated tokens together (every catalogued model is phi-1.5). */
export const MODEL_POSITIONS = PHI_1_5.max_position_embeddings;

/**
 * Combinations of valid settings that cannot work together, one message per problem: what the user set, what
 * happens instead, and what to set. Empty when the settings fit the model.
 */
export function settingsProblems(settings: Settings): string[] {
  const problems: string[] = [];
  const completion = settings.contextTokens + settings.completionMaxTokens;
  if (completion > MODEL_POSITIONS) {
    problems.push(`phiComplete.${SETTING_KEYS.contextTokens} (${settings.contextTokens}) and phiComplete.${SETTING_KEYS.completionMaxTokens} (${settings.completionMaxTokens}) `
      + `add up to ${completion} tokens, but the model reads ${MODEL_POSITIONS} at once, prompt and completion together. `
      + `Completions read ${completionContextTokens(settings)} tokens of context instead; lower either so that they add up to ${MODEL_POSITIONS} or less.`);
  }
  if (settings.explainMaxTokens > MAX_USEFUL_EXPLAIN_TOKENS) {
    problems.push(`phiComplete.${SETTING_KEYS.explainMaxTokens} (${settings.explainMaxTokens}) leaves no room for the selected code: the model reads ${MODEL_POSITIONS} tokens `
      + `at once, selection and explanation together. Explanations are shortened to fit the selection; set it to ${MAX_USEFUL_EXPLAIN_TOKENS} or less.`);
  }
  if (settings.backend === 'server' && settings.serverUrl === '') {
    problems.push(`phiComplete.${SETTING_KEYS.backend} is "server" but phiComplete.${SETTING_KEYS.serverUrl} is not set. Suggestions come from the local model until it is.`);
  }
  return problems;
}

/** The context a completion reads: contextTokens, less where the completion's own tokens need the room. */
function completionContextTokens(settings: Settings): number {
  return Math.min(settings.contextTokens, MODEL_POSITIONS - settings.completionMaxTokens);
}

/** A read-only view of the settings store (SettingsStore.read) for parts that only read: the current snapshot, at each call. */
export type SettingsReader = () => Settings;

/** One reading of the settings: the snapshot, and what the user is told about the values read. */
export interface SettingsRead {
  readonly settings: Settings;
  /** One per invalid value (replaced in the snapshot by its default). */
  readonly warnings: readonly string[];
  /** Valid settings that cannot work together (settingsProblems), already fitted to the model in the snapshot. */
  readonly problems: readonly string[];
}

/**
 * Reads every setting through `get` (the raw value, undefined when unset) and validates it.
 * Returns the snapshot, one warning per invalid value, and the problems of valid settings that cannot work
 * together (settingsProblems), which the snapshot has already fitted to the model: the completion's context is
 * clipped to the room its tokens leave (otherwise the worker would cut the prompt's start, header first, mid-line).
 */
export function readSettings(get: (key: string) => unknown): SettingsRead {
  const warnings: string[] = [];
  const settings = { ...DEFAULT_SETTINGS } as Record<keyof Settings, unknown>;
  for (const name of Object.keys(DEFAULT_SETTINGS) as (keyof Settings)[]) {
    const value = get(SETTING_KEYS[name]);
    if (value === undefined) continue;
    const [check, expected] = CHECKS[name];
    if (check(value)) {
      settings[name] = normalise(name, value);
    } else {
      // An endpoint's credentials (https://user:password@host) are not shown: warnings are logged.
      const shown = (name === 'hubEndpoint' || name === 'serverUrl') && typeof value === 'string' ? redactUrl(value) : value;
      warnings.push(`phiComplete.${SETTING_KEYS[name]} is ${JSON.stringify(shown)}; it must be ${expected}. Using the default, ${JSON.stringify(DEFAULT_SETTINGS[name])}.`);
    }
  }
  const valid = settings as unknown as Settings;
  // A server backend without a URL has nowhere to send to: the local backend until it has one.
  const backend = valid.backend === 'server' && valid.serverUrl === '' ? 'local' : valid.backend;
  const fitted: Settings = { ...valid, contextTokens: completionContextTokens(valid), backend };
  return { settings: Object.freeze(fitted), warnings, problems: settingsProblems(valid) };
}

/** The names of the settings that differ between two snapshots. */
export function changedSettings(before: Settings, after: Settings): (keyof Settings)[] {
  return (Object.keys(after) as (keyof Settings)[]).filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]));
}

/** The worker's KV cache budget in bytes (WorkerClient.setCacheBudget). */
export function cacheBudgetBytes(settings: Settings): number {
  return settings.cacheMemoryMB * 1024 * 1024;
}

/**
 * The settings the worker loads the model with: a change of any of them reloads it. The others apply to the next
 * request (cacheMemoryMB through WorkerClient.setCacheBudget).
 */
export const MODEL_SETTINGS: readonly (keyof Settings)[] = ['model', 'modelPath', 'device', 'threads'];

/** Whether a change needs the worker to reload the model (it changed one of MODEL_SETTINGS). */
export function needsReload(changed: readonly (keyof Settings)[]): boolean {
  return changed.some((key) => MODEL_SETTINGS.includes(key));
}

/** Whether two snapshots load the same model: nothing that differs between them needs a reload. */
export function sameModel(a: Settings, b: Settings): boolean {
  return !needsReload(changedSettings(a, b));
}
