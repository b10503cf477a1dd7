/**
 * The scripted tiny model (test/support/scriptedModel.ts) writes exactly its text, through the real decoder and
 * generator, after an Explain Selection prompt: what the in-editor test of the Explain panel relies on.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildExplainPrompt, EXPLAIN_STOPS } from '../../src/explain/explainPrompt';
import { Generator } from '../../src/inference/generator';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { buildPhiTokenizerJson } from '../../src/tokenizer/tokenizerJson';
import { HOSTILE_TEXT, scriptedChain } from '../support/scriptedModel';
import { openScriptedDecoder } from '../support/tinyDecoder';

test('a scripted model answers an explain prompt with exactly its text, then ends', async () => {
  const { decoder, tokenizer } = await openScriptedDecoder('scripted', 'Answer:', HOSTILE_TEXT);
  const generator = new Generator(decoder, tokenizer);
  try {
    for (const code of ['def f(x):\n    return x + 1\n', 'print("hello")']) {
      const { prompt } = buildExplainPrompt(code, 'python');
      const result = await generator.generate({ prompt, maxNewTokens: 96, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, stop: EXPLAIN_STOPS, speculative: false });
      assert.equal(result.text, HOSTILE_TEXT);
      assert.equal(result.finishReason, 'eos');
    }
  } finally {
    await generator.dispose();
    await decoder.dispose();
  }
});

test('a text with a token followed by two different tokens cannot be scripted', () => {
  const tokenizer = PhiTokenizer.fromJson(buildPhiTokenizerJson());
  assert.throws(() => scriptedChain(tokenizer, 25, '<b>x</b>y'), /followed by two different tokens/);
});
