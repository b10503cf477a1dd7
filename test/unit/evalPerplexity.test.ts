/**
 * The eval's perplexity (bench/eval/perplexity.ts) through the engine on a tiny model, against the independent
 * float64 reference forward pass, and the speculation projection's pricing of passes.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PhiDecoder } from '../../src/inference/decoder';
import { PHI_TINY } from '../../src/model/config';
import { enginePerplexity, evenlySpacedWindows, negativeLogLikelihood } from '../../bench/eval/perplexity';
import { passCost } from '../../bench/eval/speculation';
import { referenceLogits } from '../support/referenceForward';
import { tinyModelDir, tinyWeights } from '../support/tinyModels';

describe('eval perplexity', () => {
  it('cuts evenly spaced windows from the token stream', () => {
    const stream = Array.from({ length: 10 }, (_, i) => i);
    assert.deepEqual(evenlySpacedWindows(stream, 3, 4), [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]);
    assert.deepEqual(evenlySpacedWindows(stream, 5, 9), [[0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8, 9]]);
    assert.deepEqual(evenlySpacedWindows(stream, 2, 11), []);
  });

  it('computes −log p with a stable log-sum-exp', () => {
    const logits = Float32Array.from([1000, 1000, 0, 0]);
    assert.ok(Math.abs(negativeLogLikelihood(logits, 0, 2, 1) - Math.log(2)) < 1e-9);
    assert.ok(Math.abs(negativeLogLikelihood(logits, 2, 2, 0) - Math.log(2)) < 1e-9);
  });

  it('equals the reference forward pass\'s perplexity on the fp32 tiny model, through prefill chunks and one-token steps', async () => {
    const weights = tinyWeights('bigram');
    // 70 tokens: two 32-token prefill chunks and a shorter one for the first half, then 34 one-token steps.
    const windows = [Array.from({ length: 70 }, (_, i) => (i * 7919 + 13) % 50000), Array.from({ length: 70 }, (_, i) => (i * 104729 + 5) % 50000)];
    let referenceNll = 0;
    for (const window of windows) {
      const logits = referenceLogits(PHI_TINY, (name) => weights.tensor(name), window);
      for (let t = 0; t + 1 < window.length; t++) {
        const row = Float32Array.from(logits[t]);
        referenceNll += negativeLogLikelihood(row, 0, PHI_TINY.vocab_size, window[t + 1]);
      }
    }
    referenceNll /= windows.length * 69;
    const decoder = await PhiDecoder.load(tinyModelDir('fp32', 'bigram'));
    try {
      const result = await enginePerplexity(decoder, windows);
      assert.equal(result.scoredTokens, 2 * 69);
      assert.ok(Math.abs(result.meanNll - referenceNll) < 1e-4, `engine ${result.meanNll}, reference ${referenceNll}`);
      assert.ok(result.prefillPerplexity > 1 && result.decodePerplexity > 1);
    } finally {
      await decoder.dispose();
    }
  });
});

describe('eval speculation projection', () => {
  it('prices a pass over n tokens from the measured speed-ups, interpolating between sizes', () => {
    const speedups = { 1: 1, 2: 1.6, 4: 2 };
    assert.equal(passCost(1, speedups), 1);
    assert.equal(passCost(2, speedups), 2 / 1.6);
    assert.equal(passCost(3, speedups), (2 / 1.6 + 2) / 2);
    assert.equal(passCost(8, speedups), 4, 'past the largest measured size: its cost per token');
  });
});
