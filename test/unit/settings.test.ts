import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { buildCompletionPrompt } from '../../src/completion/context';
import { MAX_USEFUL_EXPLAIN_TOKENS } from '../../src/explain/explainPrompt';
import { bytesPerPosition, int8Planes } from '../../src/inference/kvCache';
import type { NoticeSeverity } from '../../src/lifecycle/modelLifecycle';
import { PHI_1_5 } from '../../src/model/config';
import { DEFAULT_CACHE_BYTES } from '../../src/protocol';
import { cacheBudgetBytes, changedSettings, DEFAULT_SETTINGS, MODEL_POSITIONS, MODEL_SETTINGS, needsReload, readSettings, sameModel, SETTING_KEYS, settingsProblems, type Settings } from '../../src/settings/settings';
import { SettingsStore, type SettingsChange, type SettingsSource } from '../../src/settings/store';
import { OPEN_SETTINGS, SettingsWarnings, type SettingsWarningsUi } from '../../src/settings/warnings';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { buildPhiTokenizerJson } from '../../src/tokenizer/tokenizerJson';

const manifest = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')) as {
  contributes: { configuration: { properties: Record<string, { default: unknown }> } };
};

test('every setting is contributed in package.json with the same default', () => {
  const contributed = manifest.contributes.configuration.properties;
  for (const [name, key] of Object.entries(SETTING_KEYS)) {
    const entry = contributed[`phiComplete.${key}`];
    assert.ok(entry, `phiComplete.${key} is not contributed`);
    assert.deepEqual(entry.default, DEFAULT_SETTINGS[name as keyof typeof DEFAULT_SETTINGS], key);
  }
  assert.equal(Object.keys(contributed).length, Object.keys(SETTING_KEYS).length);
});

test('unset settings take their defaults; valid ones are used', () => {
  const values: Record<string, unknown> = { device: 'cpu', threads: 4, 'completion.maxTokens': 32, hubEndpoint: ' https://mirror.example/ ' };
  const { settings, warnings } = readSettings((key) => values[key]);
  assert.deepEqual(warnings, []);
  assert.deepEqual(settings, { ...DEFAULT_SETTINGS, device: 'cpu', threads: 4, completionMaxTokens: 32, hubEndpoint: 'https://mirror.example' });
  assert.ok(Object.isFrozen(settings));
});

test('an invalid value falls back to the default with a warning naming the setting', () => {
  const values: Record<string, unknown> = { device: 'tpu', threads: -1, temperature: 'hot', languages: 'python', topP: 0 };
  const { settings, warnings } = readSettings((key) => values[key]);
  assert.deepEqual(settings, DEFAULT_SETTINGS);
  assert.deepEqual(warnings, [
    'phiComplete.languages is "python"; it must be a list of language ids. Using the default, ["python"].',
    'phiComplete.device is "tpu"; it must be auto, cpu, cuda, dml, coreml, webgpu. Using the default, "auto".',
    'phiComplete.threads is -1; it must be an integer from 0 (automatic) to 256. Using the default, 0.',
    'phiComplete.temperature is "hot"; it must be a number from 0 to 2. Using the default, 0.',
    'phiComplete.topP is 0; it must be a number above 0 and at most 1. Using the default, 0.95.',
  ]);
});

test('the hub endpoint, where the hub token goes, must be https; plain http only on this machine', () => {
  for (const [endpoint, accepted] of [
    ['https://mirror.example', true], ['http://127.0.0.1:8080', true], ['http://localhost:3000/hub', true], ['http://[::1]:9000', true],
    ['http://mirror.example', false], ['http://10.0.0.1', false], ['http://127.0.0.1.example.com', false], ['ftp://mirror.example', false], ['mirror.example', false],
  ] as const) {
    const { settings, warnings } = readSettings((key) => (key === 'hubEndpoint' ? endpoint : undefined));
    assert.equal(settings.hubEndpoint, accepted ? endpoint : DEFAULT_SETTINGS.hubEndpoint, endpoint);
    assert.equal(warnings.length, accepted ? 0 : 1, endpoint);
  }
});

test('snapshots are compared to find what changed and whether the model must reload', () => {
  const after = { ...DEFAULT_SETTINGS, temperature: 0.5, device: 'cpu' as const };
  assert.deepEqual(changedSettings(DEFAULT_SETTINGS, after), ['device', 'temperature']);
  assert.equal(needsReload(['temperature']), false);
  assert.equal(needsReload(['temperature', 'device']), true);
  assert.deepEqual(changedSettings(DEFAULT_SETTINGS, { ...DEFAULT_SETTINGS, languages: ['python'] }), []);
});

test('which changes reload the model is said once: a change of a setting the worker loads the model with, and only that', () => {
  const other: Partial<Record<keyof Settings, unknown>> = { model: 'phi-1_5-fp16', modelPath: '/models/phi', device: 'cpu', threads: 2 };
  for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof Settings)[]) {
    const reloads = MODEL_SETTINGS.includes(key);
    assert.equal(needsReload([key]), reloads, key);
    if (reloads) assert.equal(sameModel(DEFAULT_SETTINGS, { ...DEFAULT_SETTINGS, [key]: other[key] }), false, key);
  }
  assert.deepEqual([...MODEL_SETTINGS].sort(), ['device', 'model', 'modelPath', 'threads']);
  assert.equal(sameModel(DEFAULT_SETTINGS, { ...DEFAULT_SETTINGS, temperature: 0.5, cacheMemoryMB: 256, contextTokens: 512 }), true);
});

test('phiComplete.cacheMemoryMB: an integer of MiB from 64, applied without a reload; the default holds 4 full-size 1,024-token files', () => {
  const read = (value: unknown): ReturnType<typeof readSettings> => readSettings((key) => (key === 'cacheMemoryMB' ? value : undefined));
  assert.equal(read(1024).settings.cacheMemoryMB, 1024);
  assert.deepEqual(read(1024).warnings, []);
  assert.equal(cacheBudgetBytes(read(1024).settings), 1024 * 1024 * 1024);
  for (const bad of [32, 63, 100.5, '512', -1, 65537]) {
    const { settings, warnings } = read(bad);
    assert.equal(settings.cacheMemoryMB, DEFAULT_SETTINGS.cacheMemoryMB);
    assert.deepEqual(warnings, [`phiComplete.cacheMemoryMB is ${JSON.stringify(bad)}; it must be an integer from 64 to 65536. Using the default, 768.`]);
  }
  assert.equal(read(64).settings.cacheMemoryMB, 64);
  const changed = changedSettings(DEFAULT_SETTINGS, { ...DEFAULT_SETTINGS, cacheMemoryMB: 256 });
  assert.deepEqual(changed, ['cacheMemoryMB']);
  assert.equal(needsReload(changed), false);

  // What the description promises: the full-size int8 cache of a 1,024-token prompt, sized for a 64-token
  // completion and a 4-token draft (1,152 positions in steps of 128).
  const perPosition = bytesPerPosition(PHI_1_5.num_hidden_layers, PHI_1_5.num_attention_heads, int8Planes(PHI_1_5.hidden_size / PHI_1_5.num_attention_heads));
  const perFile = 1152 * perPosition;
  assert.equal(Math.round(perFile / 2 ** 20), 115);
  assert.equal(Math.floor(cacheBudgetBytes(DEFAULT_SETTINGS) / perFile), 6);
  assert.equal(DEFAULT_CACHE_BYTES, cacheBudgetBytes(DEFAULT_SETTINGS), 'the worker\'s budget until the host configures one is the setting\'s default');
  const contributed = manifest.contributes.configuration.properties['phiComplete.cacheMemoryMB'] as unknown as { markdownDescription: string; minimum: number };
  assert.match(contributed.markdownDescription, /about 115 MiB: the default 768 holds 6 of them/);
  assert.equal(contributed.minimum, 64);
});

test('settings that cannot work together are problems: context + completion past the model\'s positions, an explanation that leaves no room', () => {
  assert.equal(MODEL_POSITIONS, 2048);
  assert.deepEqual(settingsProblems(DEFAULT_SETTINGS), []);
  assert.deepEqual(settingsProblems({ ...DEFAULT_SETTINGS, contextTokens: 1024, completionMaxTokens: 1024 }), [], 'exactly 2,048 fits');
  assert.deepEqual(settingsProblems({ ...DEFAULT_SETTINGS, contextTokens: 1920, completionMaxTokens: 1024 }), [
    'phiComplete.contextTokens (1920) and phiComplete.completion.maxTokens (1024) add up to 2944 tokens, but the model reads 2048 at once, prompt and completion together. '
    + 'Completions read 1024 tokens of context instead; lower either so that they add up to 2048 or less.',
  ]);
  assert.deepEqual(settingsProblems({ ...DEFAULT_SETTINGS, explainMaxTokens: MAX_USEFUL_EXPLAIN_TOKENS }), []);
  const explain = settingsProblems({ ...DEFAULT_SETTINGS, explainMaxTokens: 2048 });
  assert.equal(explain.length, 1);
  assert.match(explain[0], new RegExp(`^phiComplete\\.explain\\.maxTokens \\(2048\\) leaves no room for the selected code: .* set it to ${MAX_USEFUL_EXPLAIN_TOKENS} or less\\.$`));
  assert.equal(settingsProblems({ ...DEFAULT_SETTINGS, contextTokens: 1920, completionMaxTokens: 1024, explainMaxTokens: 2048 }).length, 2);
});

test('the snapshot fits the completion\'s context to the room its tokens leave, and reports the problem (not a warning about a value)', () => {
  const values: Record<string, unknown> = { contextTokens: 1920, 'completion.maxTokens': 1024 };
  const { settings, warnings, problems } = readSettings((key) => values[key]);
  assert.deepEqual(warnings, []);
  assert.equal(problems.length, 1);
  assert.equal(settings.contextTokens, 1024);
  assert.equal(settings.completionMaxTokens, 1024);
  assert.deepEqual(settingsProblems(settings), [], 'the fitted snapshot has no completion problem left');
  assert.equal(readSettings((key) => ({ contextTokens: 1920, 'completion.maxTokens': 64 } as Record<string, unknown>)[key]).settings.contextTokens, 1920, 'no clipping where it fits');
});

test('with the fitted snapshot a long file\'s prompt keeps its header and leaves the completion its room (the worker does not cut its start)', () => {
  const tokenizer = PhiTokenizer.fromJson(buildPhiTokenizerJson());
  const header = 'import os\nimport sys\nfrom collections import defaultdict\n\n';
  const body = Array.from({ length: 400 }, (_, i) => `def handler_${i}(request, count=${i}):\n    return defaultdict(list, name=request.path + "${i}")\n\n`).join('');
  const prefix = `${header}${body}def main():\n    `;
  const values: Record<string, unknown> = { contextTokens: 1920, 'completion.maxTokens': 1024 };
  const { settings } = readSettings((key) => values[key]);
  // As the provider and the warmer build it (src/completion/warmer.ts: 3 characters a token).
  const { prompt, headerIncluded } = buildCompletionPrompt({
    prefix, suffix: '', languageId: 'python', fileName: '/work/main.py', tokenBudget: settings.contextTokens, countTokens: (t) => Math.ceil(t.length / 3),
  });
  const promptTokens = tokenizer.encode(prompt).length;
  assert.ok(promptTokens + settings.completionMaxTokens <= MODEL_POSITIONS, `${promptTokens} prompt tokens + ${settings.completionMaxTokens} to generate exceed ${MODEL_POSITIONS}`);
  assert.ok(headerIncluded && prompt.startsWith(header), 'the file\'s imports are kept in front');
  assert.ok(prompt.endsWith('def main():\n    '), 'the prompt ends at the cursor');
  assert.ok(promptTokens > 700, `the prompt still reads most of the room (${promptTokens} tokens)`);
});

/** The editor as the store and SettingsWarnings see it: settings the test sets, notifications recorded and answered. */
class RecordingUi implements SettingsSource, SettingsWarningsUi {
  readonly notices: { severity: NoticeSeverity; message: string; actions: string[] }[] = [];
  readonly warnLines: string[] = [];
  readonly opened: string[] = [];
  readonly values = new Map<string, unknown>();
  answer: string | undefined = undefined;
  readonly listeners = new Set<() => void>();
  readonly log = { debug: () => undefined, info: () => undefined, warn: (message: string) => void this.warnLines.push(message), error: () => undefined };

  readSetting(key: string): unknown {
    return this.values.get(key);
  }

  onDidChangeSettings(listener: () => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  set(key: string, value: unknown): void {
    if (value === undefined) this.values.delete(key);
    else this.values.set(key, value);
    for (const listener of this.listeners) listener();
  }

  notify(severity: NoticeSeverity, message: string, ...actions: string[]): Promise<string | undefined> {
    this.notices.push({ severity, message, actions });
    return Promise.resolve(this.answer);
  }

  openSettings(query: string): Promise<unknown> {
    this.opened.push(query);
    return Promise.resolve();
  }
}

test('each settings problem is shown once while it lasts, at start and on a change, with Open Settings', async () => {
  const ui = new RecordingUi();
  ui.values.set('contextTokens', 1920);
  ui.values.set('completion.maxTokens', 1024);
  ui.answer = OPEN_SETTINGS;
  const store = new SettingsStore(ui);
  const warnings = new SettingsWarnings(store, ui);
  const completionProblem = settingsProblems({ ...DEFAULT_SETTINGS, contextTokens: 1920, completionMaxTokens: 1024 })[0];
  assert.deepEqual(ui.notices, [{ severity: 'warning', message: `phi-complete: ${completionProblem}`, actions: [OPEN_SETTINGS] }]);
  assert.deepEqual(ui.warnLines, [completionProblem]);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(ui.opened, ['phiComplete'], 'Open Settings opens the extension\'s settings');

  ui.answer = undefined;
  ui.set('temperature', 0.5);
  ui.set('debounceMs', 10);
  assert.equal(ui.notices.length, 1, 'an unrelated change does not repeat a problem that is still there');
  ui.set('explain.maxTokens', 2048);
  assert.equal(ui.notices.length, 2, 'a new problem is shown');
  assert.match(ui.notices[1].message, /explain\.maxTokens \(2048\)/);
  ui.set('completion.maxTokens', undefined);
  ui.set('explain.maxTokens', undefined);
  assert.equal(ui.notices.length, 2, 'fixing a problem shows nothing');
  ui.set('completion.maxTokens', 1024);
  assert.equal(ui.notices.length, 3, 'a problem that comes back is shown again');
  ui.set('contextTokens', 1900);
  assert.equal(ui.notices.length, 4, 'a problem that reads otherwise is shown, though the fitted snapshot did not change');
  assert.match(ui.notices[3].message, /contextTokens \(1900\)/);
  warnings.dispose();
  ui.set('explain.maxTokens', 2048);
  assert.equal(ui.notices.length, 4, 'nothing after dispose');
  store.dispose();
});

test('an invalid value is shown once while it lasts, with Open Settings; another invalid value is shown again', () => {
  const ui = new RecordingUi();
  ui.values.set('threads', -1);
  const store = new SettingsStore(ui);
  const warnings = new SettingsWarnings(store, ui);
  const expected = (threads: unknown): string => readSettings((key) => (key === 'threads' ? threads : undefined)).warnings[0];
  assert.deepEqual(ui.notices, [{ severity: 'warning', message: `phi-complete: ${expected(-1)}`, actions: [OPEN_SETTINGS] }]);
  assert.deepEqual(ui.warnLines, [expected(-1)]);
  ui.set('temperature', 0.5);
  assert.equal(ui.notices.length, 1, 'not again on an unrelated change');
  ui.set('threads', -2);
  assert.deepEqual(ui.notices.map((n) => n.message), [`phi-complete: ${expected(-1)}`, `phi-complete: ${expected(-2)}`]);
  assert.equal(store.current.threads, DEFAULT_SETTINGS.threads);
  warnings.dispose();
  store.dispose();
});

describe('the settings store', () => {
  test('holds the snapshot as read; a change event fires only when the snapshot changed, with what changed and whether it reloads', () => {
    const ui = new RecordingUi();
    ui.values.set('threads', 2);
    const store = new SettingsStore(ui);
    assert.equal(store.current.threads, 2);
    assert.equal(store.read(), store.current, 'the reader gives the current snapshot');
    assert.ok(Object.isFrozen(store.current));
    const changes: SettingsChange[] = [];
    store.onDidChange((change) => changes.push(change));

    ui.set('temperature', 0.5);
    assert.deepEqual(changes, [{ settings: store.current, changed: ['temperature'], reload: false }]);
    ui.set('temperature', 0.5);
    ui.set('languages', ['python']);
    ui.set('threads', 'two');
    ui.set('threads', 0);
    ui.set('threads', 'zero');
    assert.equal(changes.length, 2, 'an event that changed nothing (the same value again, the default set explicitly, the default for an invalid value read as it) is no change');
    assert.deepEqual(changes[1], { settings: store.current, changed: ['threads'], reload: true });
    ui.set('contextTokens', 1920);
    ui.set('completion.maxTokens', 1024);
    ui.set('contextTokens', 1900);
    assert.deepEqual(changes.slice(2).map((c) => c.changed), [['contextTokens'], ['completionMaxTokens', 'contextTokens']],
      'the snapshot is compared as fitted to the model: 1,900 and 1,920 both read as 1,024 tokens of context');
    assert.equal(store.refresh(), undefined);
    store.dispose();
  });

  test('refresh reads at once and returns the change; listeners hear in the order they subscribed; disposed, it stops listening', () => {
    const ui = new RecordingUi();
    const store = new SettingsStore(ui);
    const heard: string[] = [];
    store.onDidChange(() => heard.push('first'));
    const second = store.onDidChange(() => heard.push('second'));
    const reads: number[] = [];
    store.onDidRead((read) => reads.push(read.settings.debounceMs));
    ui.values.set('debounceMs', 10);
    assert.deepEqual(store.refresh(), { settings: store.current, changed: ['debounceMs'], reload: false });
    assert.deepEqual(heard, ['first', 'second']);
    ui.set('debounceMs', 10);
    assert.deepEqual(reads, [10, 10], 'every reading is heard, changed or not');
    second.dispose();
    ui.set('model', 'phi-1_5-fp16');
    assert.deepEqual(heard, ['first', 'second', 'first']);
    store.dispose();
    assert.equal(ui.listeners.size, 0);
    ui.set('model', 'phi-1_5-int4');
    assert.equal(heard.length, 3);
    assert.equal(store.current.model, 'phi-1_5-fp16', 'the last snapshot read');
  });
});
