import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cacheBudgetBytes, changedSettings, DEFAULT_SETTINGS, needsReload, readSettings, SETTING_KEYS } from '../../src/config';
import { bytesPerPosition, int8Planes } from '../../src/inference/kvCache';
import { PHI_1_5 } from '../../src/model/config';

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

test('snapshots are compared to find what changed and whether the model must reload', () => {
  const after = { ...DEFAULT_SETTINGS, temperature: 0.5, device: 'cpu' as const };
  assert.deepEqual(changedSettings(DEFAULT_SETTINGS, after), ['device', 'temperature']);
  assert.equal(needsReload(['temperature']), false);
  assert.equal(needsReload(['temperature', 'device']), true);
  assert.deepEqual(changedSettings(DEFAULT_SETTINGS, { ...DEFAULT_SETTINGS, languages: ['python'] }), []);
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
  const contributed = manifest.contributes.configuration.properties['phiComplete.cacheMemoryMB'] as unknown as { markdownDescription: string; minimum: number };
  assert.match(contributed.markdownDescription, /about 115 MiB: the default 768 holds 6 of them/);
  assert.equal(contributed.minimum, 64);
});
