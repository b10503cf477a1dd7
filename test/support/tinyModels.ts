/**
 * Tiny phi models for tests, built once per process into a temporary folder through the same builder
 * (and so the same code path) as the real phi-1.5.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PHI_TINY } from '../../src/model/config';
import { buildModel } from '../../src/model/build';
import type { Int4Layout, KvCacheFormat, KvOutputs, WeightFormat } from '../../src/model/manifest';
import { RandomWeights, type RandomInit } from '../../src/model/weights';

export const TINY_SEED = 1234;

let root: string | undefined;

/** A fresh temporary folder, removed when the process exits. */
export function scratchDir(): string {
  if (root === undefined) {
    const created = fs.mkdtempSync(path.join(os.tmpdir(), 'phi-test-'));
    process.once('exit', () => fs.rmSync(created, { recursive: true, force: true }));
    root = created;
  }
  return fs.mkdtempSync(path.join(root, 'work-'));
}

export function tinyWeights(init: RandomInit = 'flat'): RandomWeights {
  return new RandomWeights(PHI_TINY, TINY_SEED, 'tiny', init);
}

const built = new Map<string, string>();

/** Builds (once per process) the tiny random model and returns its folder; options left out take the builder's defaults. */
export function tinyModelDir(format: WeightFormat, init: RandomInit = 'flat', options: { accuracyLevel?: number; kvCache?: KvCacheFormat; kvOutputs?: KvOutputs; int4Layout?: Partial<Int4Layout> } = {}): string {
  const key = `${format}-${init}-${options.accuracyLevel ?? 'default'}-${options.kvCache ?? 'default'}${options.kvOutputs ? `-${options.kvOutputs}` : ''}${options.int4Layout ? `-${JSON.stringify(options.int4Layout)}` : ''}`;
  let dir = built.get(key);
  if (!dir) {
    dir = path.join(scratchDir(), key);
    buildModel(tinyWeights(init), dir, { format, ...options });
    built.set(key, dir);
  }
  return dir;
}
