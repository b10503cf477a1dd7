/**
 * Cross-check of the transformers.js peer against our own engine, run by hand (it needs transformers.js, which
 * is installed on first use, so it is not part of `npm test`):
 *
 *   npx tsc -p . && node out/bench/peers/transformersJs.check.js
 *
 * The tiny random phi (bigram init, so greedy choices have real margins) is built as the peer's model is built
 * (int4, float KV cache, Optimum's present.* outputs) and also in fp32, each written in transformers.js' layout.
 * transformers.js' greedy continuation of a short prompt must equal our PhiDecoder's greedy continuation
 * (argmax over all logits, as transformers.js takes it) on the same model folder, token for token.
 * Prints PASS or FAIL and exits non-zero on failure.
 */
import * as path from 'node:path';
import { PhiDecoder } from '../../src/inference/decoder';
import { argmax } from '../../src/inference/sampler';
import { buildModel } from '../../src/model/build';
import { SHAPES } from '../../src/model/config';
import { RandomWeights } from '../../src/model/weights';
import { buildTransformersJsModel, ensureTransformersJs, transformersJsGreedy, writeTransformersJsLayout } from './transformersJs';
import { runCheck } from '../support/check';

const GENERATED_TOKENS = 16;
const THREADS = 2;
/** 16 GPT-2 token ids: "The quick brown fox jumps over the lazy dog.\ndef add(a, b):\n" */
const PROMPT = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 198, 4299, 751, 7, 64, 11];

/** Our engine's greedy tokens: one prefill pass, then one token per pass, argmax over every logit. */
async function ourGreedy(modelDir: string, prompt: readonly number[], count: number): Promise<number[]> {
  const decoder = await PhiDecoder.load(modelDir, { threads: THREADS });
  const cache = decoder.createCache();
  try {
    const tokens: number[] = [];
    let logits = await decoder.forward(prompt, cache, 1);
    for (;;) {
      tokens.push(argmax(logits));
      if (tokens.length === count) return tokens;
      logits = await decoder.forward([tokens[tokens.length - 1]], cache, 1);
    }
  } finally {
    cache.dispose();
    await decoder.dispose();
  }
}

runCheck('transformers-js', async (dir) => {
  const install = ensureTransformersJs();
  console.log(`transformers.js ${install.version} on onnxruntime-node ${install.onnxruntimeNodeVersion}`);
  const weights = new RandomWeights(SHAPES.tiny, 1234, 'tiny', 'bigram');
  const variants: { label: string; build: (modelDir: string) => void }[] = [
    { label: 'int4, float cache, present.* (the peer\'s build)', build: (modelDir) => buildTransformersJsModel(weights, modelDir) },
    { label: 'fp32, float cache, present.*', build: (modelDir) => buildModel(weights, modelDir, { format: 'fp32', kvCache: 'float', kvOutputs: 'present', overwrite: true }) },
  ];
  const problems: string[] = [];
  for (const [index, variant] of variants.entries()) {
    const modelDir = path.join(dir, `model-${index}`);
    const hfDir = path.join(dir, `hf-${index}`);
    variant.build(modelDir);
    writeTransformersJsLayout(modelDir, hfDir);
    const ours = await ourGreedy(modelDir, PROMPT, GENERATED_TOKENS);
    const theirs = await transformersJsGreedy({ hfModelDir: hfDir, threads: THREADS, prompt: PROMPT, tokens: GENERATED_TOKENS });
    const agree = ours.filter((token, i) => token === theirs[i]).length;
    console.log(`${variant.label}:`);
    console.log(`  phi-complete:    ${ours.join(' ')}`);
    console.log(`  transformers.js: ${theirs.join(' ')}`);
    console.log(`  ${agree}/${GENERATED_TOKENS} tokens agree`);
    if (agree !== GENERATED_TOKENS || theirs.length !== GENERATED_TOKENS) problems.push(`${variant.label}: transformers.js differs from our engine`);
  }
  return { problems, passed: `transformers.js reproduces our engine's ${GENERATED_TOKENS} greedy tokens on the same models` };
});
