/**
 * The int4 layout options the eval compares (block size, lm_head bits, embedding format): each one changes the
 * built model as it says, the model still computes what fp32 computes within quantisation error, and building
 * without options is byte for byte the default layout.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PhiDecoder } from '../../src/inference/decoder';
import { buildModel } from '../../src/model/build';
import { DATA_FILE } from '../../src/model/manifest';
import { INT4_LAYOUT, type Int4Layout } from '../../src/model/manifest';
import { scratchDir, tinyModelDir, tinyWeights } from '../support/tinyModels';

const PROMPT = [50256, 464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290];

function buildTiny(layout: Partial<Int4Layout> | undefined): string {
  const dir = path.join(scratchDir(), 'model');
  buildModel(tinyWeights('bigram'), dir, { format: 'int4', kvCache: 'float', int4Layout: layout });
  return dir;
}

async function lastLogits(dir: string): Promise<Float32Array> {
  const decoder = await PhiDecoder.load(dir);
  try {
    const cache = decoder.createCache();
    const logits = await decoder.forward(PROMPT, cache, 1);
    cache.dispose();
    return logits;
  } finally {
    await decoder.dispose();
  }
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

const dataBytes = (dir: string): number => fs.statSync(path.join(dir, DATA_FILE)).size;

describe('int4 layout options', () => {
  it('leaves the default layout unchanged when no option is given', () => {
    const plain = buildTiny(undefined);
    const explicit = buildTiny({ ...INT4_LAYOUT });
    assert.ok(fs.readFileSync(path.join(plain, DATA_FILE)).equals(fs.readFileSync(path.join(explicit, DATA_FILE))));
  });

  it('changes the weights\' bytes as each option says, and still computes what fp32 computes', async () => {
    const reference = await lastLogits(tinyModelDir('fp32', 'bigram'));
    const defaultDir = buildTiny(undefined);
    const defaultLogits = await lastLogits(defaultDir);
    const defaultError = maxDifference(defaultLogits, reference);
    const cases: { layout: Partial<Int4Layout>; bytes: 'more' | 'fewer' }[] = [
      { layout: { blockSize: 64 }, bytes: 'more' },
      { layout: { blockSize: 32 }, bytes: 'more' },
      { layout: { lmHeadBits: 4 }, bytes: 'fewer' },
      { layout: { embedding: 'fp16' }, bytes: 'more' },
    ];
    for (const { layout, bytes } of cases) {
      const dir = buildTiny(layout);
      const logits = await lastLogits(dir);
      const label = JSON.stringify(layout);
      assert.ok(bytes === 'more' ? dataBytes(dir) > dataBytes(defaultDir) : dataBytes(dir) < dataBytes(defaultDir), `${label}: ${bytes} bytes than the default`);
      assert.ok(maxDifference(logits, defaultLogits) > 0, `${label}: computes something else than the default layout`);
      // Quantisation error of the same order as the default layout's (a wrong layout would be garbage).
      assert.ok(maxDifference(logits, reference) < 4 * defaultError + 0.05, `${label}: error ${maxDifference(logits, reference)} vs default ${defaultError}`);
    }
  });

  it('is exposed by the build-model CLI, for int4 only', () => {
    const cli = path.join(__dirname, '../../src/model/cli.js');
    const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--random', '--shape', 'tiny', '--out', path.join(scratchDir(), 'm'), ...args], { encoding: 'utf8' });
    const built = run('--block-size', '128', '--lm-head-bits', '4', '--embedding', 'fp16');
    assert.equal(built.status, 0, built.stderr);
    assert.match(run('--format', 'fp32', '--block-size', '32').stderr, /apply to --format int4 only/);
    assert.match(run('--block-size', '48').stderr, /power of 2/);
    assert.match(run('--lm-head-bits', '2').stderr, /--lm-head-bits must be one of 4, 8/);
  });
});
