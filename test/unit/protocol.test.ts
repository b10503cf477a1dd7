/** The host → worker messages' validation: what the worker accepts, and the reason it gives for what it does not. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateHostMessage, type GenerationParams } from '../../src/protocol';

const PARAMS: GenerationParams = { maxNewTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], speculative: false };

test('generate: a sequence is optional, and a non-empty string when given', () => {
  assert.equal(validateHostMessage({ type: 'generate', id: 1, prompt: 'x', params: PARAMS }), undefined);
  assert.equal(validateHostMessage({ type: 'generate', id: 1, prompt: 'x', params: PARAMS, sequence: 'file:///a.py' }), undefined);
  for (const sequence of ['', 7, null, ['a']]) {
    assert.equal(validateHostMessage({ type: 'generate', id: 1, prompt: 'x', params: PARAMS, sequence }), 'generate: sequence must be a non-empty string when given');
  }
});

test('prefill: id, sequence, prompt and maxNewTokens are checked', () => {
  const valid = { type: 'prefill', id: 3, sequence: 'file:///a.py', prompt: 'import os\n', maxNewTokens: 64 };
  assert.equal(validateHostMessage(valid), undefined);
  assert.equal(validateHostMessage({ ...valid, maxNewTokens: 0 }), undefined);
  assert.equal(validateHostMessage({ ...valid, id: -1 }), 'prefill: id must be a non-negative integer');
  assert.equal(validateHostMessage({ ...valid, id: undefined }), 'prefill: id must be a non-negative integer');
  assert.equal(validateHostMessage({ ...valid, sequence: '' }), 'prefill: sequence must be a non-empty string');
  assert.equal(validateHostMessage({ ...valid, sequence: undefined }), 'prefill: sequence must be a non-empty string');
  assert.equal(validateHostMessage({ ...valid, prompt: 42 }), 'prefill: prompt must be a string');
  assert.equal(validateHostMessage({ ...valid, maxNewTokens: 1.5 }), 'prefill: maxNewTokens must be a non-negative integer');
  assert.equal(validateHostMessage({ ...valid, maxNewTokens: '64' }), 'prefill: maxNewTokens must be a non-negative integer');
  assert.equal(validateHostMessage({ ...valid, quick: { prompt: 'os\n', readLimit: 48 }, nextOnly: true }), undefined);
  assert.equal(validateHostMessage({ ...valid, quick: { prompt: 'os\n', readLimit: -1 } }), 'prefill: quick must be { prompt: string, readLimit: non-negative integer, maxNewTokens?: non-negative integer } when given');
  assert.equal(validateHostMessage({ ...valid, quick: { prompt: 'os\n', readLimit: 48, maxNewTokens: 32 } }), undefined);
  assert.equal(validateHostMessage({ ...valid, quick: { prompt: 'os\n', readLimit: 48, maxNewTokens: 1.5 } }), 'prefill: quick must be { prompt: string, readLimit: non-negative integer, maxNewTokens?: non-negative integer } when given');
  assert.equal(validateHostMessage({ ...valid, quick: 'os' }), 'prefill: quick must be { prompt: string, readLimit: non-negative integer, maxNewTokens?: non-negative integer } when given');
  assert.equal(validateHostMessage({ ...valid, nextOnly: 1 }), 'prefill: nextOnly must be a boolean when given');
});

test('configure: cacheBytes is a non-negative integer', () => {
  assert.equal(validateHostMessage({ type: 'configure', cacheBytes: 512 * 2 ** 20 }), undefined);
  assert.equal(validateHostMessage({ type: 'configure', cacheBytes: 0 }), undefined);
  for (const cacheBytes of [-1, 1.5, Infinity, NaN, '512', undefined]) {
    assert.equal(validateHostMessage({ type: 'configure', cacheBytes }), 'configure: cacheBytes must be a non-negative integer');
  }
});
