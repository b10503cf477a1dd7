import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { changedSettings, DEFAULT_SETTINGS, needsReload, readSettings, SETTING_KEYS } from '../../src/config';

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
