/**
 * The weights every engine in the benchmark runs: a random phi-1.5 of the full shape, seeded, with the bigram
 * init (top-1 margins like a trained model's), and the keys of the artefacts cached from them.
 */
import * as path from 'node:path';
import { PHI_1_5 } from '../../src/model/config';
import { RandomWeights } from '../../src/model/weights';
import { codeKey } from './cache';

const SEED = 1;
export const BENCH_INIT = 'bigram';

export function benchWeights(): RandomWeights {
  return new RandomWeights(PHI_1_5, SEED, 'phi-1_5', BENCH_INIT);
}

/** The compiled builder modules that write our ONNX model from the weights. */
export const MODEL_WRITER = [
  ...['build', 'phiGraph', 'quantize', 'weights', 'float16', 'config', 'onnx/graphBuilder'].map((name) => path.join(__dirname, `../../src/model/${name}.js`)),
  path.join(__dirname, '../../src/util/rng.js'),
];

/** A key that changes whenever `writers` (the compiled code that writes an artefact) or the weights change. */
export function benchKey(writers: readonly string[]): string {
  return codeKey(writers, `${SEED}/${BENCH_INIT}`);
}
