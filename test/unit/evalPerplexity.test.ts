/**
 * The eval's perplexity (bench/eval/perplexity.ts) through the engine on a tiny model, against the independent
 * float64 reference forward pass, and the speculation projection's pricing of passes.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PhiDecoder } from '../../src/inference/decoder';
import { PHI_TINY } from '../../src/model/config';
import { contextNll, contextSamples, pairedDifference, summarizeContextNll } from '../../bench/eval/contextLength';
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

describe('eval context length', () => {
  it('samples points inside single files, with the largest context before and the scored tokens after', () => {
    const files = [{ path: 'a', tokens: Array.from({ length: 12 }, (_, i) => i) }, { path: 'short', tokens: [1, 2, 3] }, { path: 'b', tokens: Array.from({ length: 10 }, (_, i) => 100 + i) }];
    // Points: a at 4..10 (7 points), b at 4..8 (5 points); 4 samples take the midpoints of 4 equal parts of the 12.
    const samples = contextSamples(files, 4, 4, 2);
    assert.deepEqual(samples.map((s) => [s.file, s.at]), [['a', 5], ['a', 8], ['b', 4], ['b', 7]]);
    assert.deepEqual(samples[2].tokens, [100, 101, 102, 103, 104, 105]);
    assert.equal(contextSamples(files, 100, 4, 2).length, 12, 'no more samples than points');
  });

  it('gives a paired difference with its 95% interval', () => {
    assert.deepEqual(pairedDifference([1, 2, 3], [1, 2, 3]), { mean: 0, low: 0, high: 0 });
    const { mean, low, high } = pairedDifference([2, 3, 5, 4], [1, 1, 1, 1]);
    assert.equal(mean, 2.5);
    const half = 1.96 * Math.sqrt(((1.5 ** 2 + 0.5 ** 2) * 2) / 3 / 4);
    assert.ok(Math.abs(low - (mean - half)) < 1e-12 && Math.abs(high - (mean + half)) < 1e-12);
  });

  it('scores the same tokens after exactly the last N tokens, as the reference forward pass does', async () => {
    const weights = tinyWeights('bigram');
    const tokens = Array.from({ length: 80 }, (_, i) => (i * 7919 + 13) % 50000);
    const [sample] = contextSamples([{ path: 'f', tokens }], 1, 40, 33);
    const decoder = await PhiDecoder.load(tinyModelDir('fp32', 'bigram'));
    try {
      const contexts = [5, 40];
      const nll = await contextNll(decoder, [sample], contexts, 33);
      for (const [c, context] of contexts.entries()) {
        const input = sample.tokens.slice(40 - context);
        const logits = referenceLogits(PHI_TINY, (name) => weights.tensor(name), input.slice(0, -1));
        let reference = 0;
        for (let t = context - 1; t < input.length - 1; t++) reference += negativeLogLikelihood(Float32Array.from(logits[t]), 0, PHI_TINY.vocab_size, input[t + 1]);
        assert.ok(Math.abs(nll[c][0] - reference / 33) < 1e-4, `context ${context}: engine ${nll[c][0]}, reference ${reference / 33}`);
      }
      const rows = summarizeContextNll(contexts, nll, 33);
      assert.equal(rows[1].vsLongest.ratio, 1);
      assert.equal(rows[0].scoredTokens, 33);
      assert.ok(Math.abs(rows[0].vsLongest.ratio - Math.exp(nll[0][0] - nll[1][0])) < 1e-4);
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
