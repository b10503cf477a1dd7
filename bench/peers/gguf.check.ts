/**
 * Cross-check of the GGUF writer against llama.cpp, run by hand (it needs node-llama-cpp, which is installed
 * on first use, so it is not part of `npm test`):
 *
 *   npx tsc -p . && node out/bench/peers/gguf.check.js
 *
 * The tiny random phi (bigram init, so greedy choices have real margins) is written as an F32 and a Q4_0 GGUF.
 * llama.cpp's greedy continuation of a short prompt is compared with the float64 reference forward pass:
 * - F32 must agree token for token (it checks names, shapes, layouts, metadata and the architecture mapping);
 * - Q4_0 is compared with the reference run on the float weights (quantisation error included) and on the
 *   Q4_0-dequantised weights (which isolates the block layout from quantisation error); its agreement is
 *   reported, and only its first token must match the dequantised reference.
 * Prints PASS or FAIL and exits non-zero on failure.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PHI_TINY, type PhiConfig } from '../../src/model/config';
import { phiTensorShapes, RandomWeights, type WeightSource } from '../../src/model/weights';
import { buildPhiTokenizerJson } from '../../src/tokenizer/tokenizerJson';
import { referenceLogits, type WeightLookup } from '../../test/support/referenceForward';
import { dequantizeQ4_0, quantizeQ4_0, writePhiGguf } from './gguf';
import { llamaCppGreedy } from './llamaCpp';
import { runCheck } from '../support/check';

const GENERATED_TOKENS = 32;
/** 16 GPT-2 token ids: "The quick brown fox jumps over the lazy dog.\ndef add(a, b):\n" */
const PROMPT = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 198, 4299, 751, 7, 64, 11];

interface GreedyRun {
  readonly tokens: number[];
  /** Per step, the reference's top-1 minus top-2 logit: how close each greedy choice was. */
  readonly margins: number[];
}

/**
 * Greedy decoding with the reference forward pass, recomputing the whole sequence each step (tiny model). The
 * argmax runs over all 51,200 logits, padding ids included, as llama.cpp's greedy sampler does.
 */
function referenceGreedy(config: PhiConfig, weight: WeightLookup, prompt: readonly number[], count: number): GreedyRun {
  const sequence = [...prompt];
  const tokens: number[] = [];
  const margins: number[] = [];
  for (let step = 0; step < count; step++) {
    const [logits] = referenceLogits(config, weight, sequence, { lastPositionOnly: true });
    let best = 0;
    for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v;
    let second = -Infinity;
    for (let v = 0; v < logits.length; v++) if (v !== best && logits[v] > second) second = logits[v];
    tokens.push(best);
    margins.push(logits[best] - second);
    sequence.push(best);
  }
  return { tokens, margins };
}

/** Memoises tensors: the reference asks for every tensor once per step. */
function memoised(source: (name: string) => Float32Array): WeightLookup {
  const cache = new Map<string, Float32Array>();
  return (name) => {
    let values = cache.get(name);
    if (values === undefined) {
      values = source(name);
      cache.set(name, values);
    }
    return values;
  };
}

/** The weights llama.cpp multiplies by in the Q4_0 file: matrices through Q4_0 and back, vectors as they are. */
function q4_0RoundTrip(weights: WeightSource): WeightLookup {
  const shapes = phiTensorShapes(weights.config);
  return memoised((name) => {
    const values = weights.tensor(name);
    return shapes.get(name)?.length === 2 ? dequantizeQ4_0(quantizeQ4_0(values)) : values;
  });
}

/** How many positions agree, and the first that does not (−1 if none). */
function compare(actual: readonly number[], expected: readonly number[]): { matches: number; firstDifference: number } {
  let matches = 0;
  let firstDifference = -1;
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] === expected[i]) matches++;
    else if (firstDifference < 0) firstDifference = i;
  }
  return { matches, firstDifference };
}

function describe(label: string, actual: readonly number[], expected: GreedyRun): { exact: boolean; firstDifference: number } {
  const { matches, firstDifference } = compare(actual, expected.tokens);
  const exact = matches === expected.tokens.length && actual.length === expected.tokens.length;
  const where = exact ? 'identical' : `first difference at step ${firstDifference} (reference margin there ${expected.margins[firstDifference].toFixed(3)})`;
  console.log(`${label}: ${matches}/${expected.tokens.length} tokens agree, ${where}`);
  return { exact, firstDifference };
}

runCheck('gguf', async (dir) => {
  const weights = new RandomWeights(PHI_TINY, 1234, 'tiny', 'bigram');
  const tokenizerPath = path.join(dir, 'tokenizer.json');
  fs.writeFileSync(tokenizerPath, JSON.stringify(buildPhiTokenizerJson()));
  const f32Path = path.join(dir, 'tiny-f32.gguf');
  const q4Path = path.join(dir, 'tiny-q4_0.gguf');
  writePhiGguf(weights, tokenizerPath, f32Path, 'F32');
  writePhiGguf(weights, tokenizerPath, q4Path, 'Q4_0');
  console.log(`wrote ${f32Path} (${fs.statSync(f32Path).size} bytes) and ${q4Path} (${fs.statSync(q4Path).size} bytes)`);

  const reference = referenceGreedy(weights.config, memoised((name) => weights.tensor(name)), PROMPT, GENERATED_TOKENS);
  const dequantizedReference = referenceGreedy(weights.config, q4_0RoundTrip(weights), PROMPT, GENERATED_TOKENS);
  const smallestMargin = Math.min(...reference.margins);
  console.log(`reference greedy: ${reference.tokens.join(' ')} (smallest top-1 margin ${smallestMargin.toFixed(3)})`);

  const f32Tokens = await llamaCppGreedy({ ggufPath: f32Path, threads: 2, prompt: PROMPT, tokens: GENERATED_TOKENS });
  const q4Tokens = await llamaCppGreedy({ ggufPath: q4Path, threads: 2, prompt: PROMPT, tokens: GENERATED_TOKENS });
  console.log(`llama.cpp F32:    ${f32Tokens.join(' ')}`);
  console.log(`llama.cpp Q4_0:   ${q4Tokens.join(' ')}`);

  const f32 = describe('F32 GGUF vs float64 reference', f32Tokens, reference);
  describe('Q4_0 GGUF vs float64 reference', q4Tokens, reference);
  const q4 = describe('Q4_0 GGUF vs reference on Q4_0-dequantised weights', q4Tokens, dequantizedReference);

  // Q4_0 need not match exactly (llama.cpp also rounds activations to 8 bits in Q4_0 products), but a wrong
  // block layout scrambles the bigram chain at once: the first token must agree.
  const problems: string[] = [];
  if (!f32.exact) problems.push('llama.cpp on the F32 GGUF does not reproduce the reference greedy tokens');
  if (q4.firstDifference === 0) problems.push("llama.cpp on the Q4_0 GGUF misses the dequantised reference's first token");
  return { problems, passed: `F32 GGUF reproduces the reference's ${GENERATED_TOKENS} greedy tokens; Q4_0 GGUF is consistent` };
});
