/**
 * npm run build-model -- --from <Hugging Face folder> --out models/<name> [--format int4|fp16|fp32]
 * npm run build-model -- --random --shape tiny|phi-1_5 --out models/<name> [--seed N] [--init flat|bigram]
 * Common: [--accuracy-level 0|1|2|3|4] [--kv-cache int8|float] [--kv-outputs present_rows|present|present_settled] [--force]
 * int4 layout: [--block-size 16|32|64|128|256] [--lm-head-bits 4|8] [--embedding int4|fp16] (defaults: INT4_LAYOUT)
 */
import { parseArgs } from 'node:util';
import { SHAPES, type ShapeName } from './config';
import { buildModel } from './build';
import { INT4_LAYOUT, type Int4Layout } from './manifest';
import { KV_CACHE_FORMATS, KV_OUTPUTS, kvOutputsNeedFloatCache, WEIGHT_FORMATS, type KvCacheFormat, type KvOutputs, type WeightFormat } from './manifest';
import { HuggingFaceWeights, RandomWeights, type RandomInit, type WeightSource } from './weights';

const USAGE = `usage:
  npm run build-model -- --from <hf-folder> --out models/<name> [--format int4|fp16|fp32] [--force]
  npm run build-model -- --random --shape tiny|phi-1_5 --out models/<name> [--seed N] [--init flat|bigram] [--format int4|fp16|fp32] [--force]
options: --accuracy-level N (int4 MatMulNBits accuracy level, 0 exact … 4 fastest; default 4)
         --kv-cache int8|float (the KV cache's format; default int8 for int4, float otherwise)
         --kv-outputs present_rows|present|present_settled (the cache outputs; default present_rows, the CPU's;
           present_settled keeps the cache on a GPU (WebGPU), present is Optimum's layout; both need --kv-cache float)
         --block-size N, --lm-head-bits 4|8, --embedding int4|fp16 (int4 only: the blocks' quantisation block size,
           lm_head's bits, the embedding table's format; defaults ${INT4_LAYOUT.blockSize}, ${INT4_LAYOUT.lmHeadBits}, ${INT4_LAYOUT.embedding})`;

function fail(message: string): never {
  process.stderr.write(`build-model: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function oneOf<T extends string>(value: string, allowed: readonly T[], option: string): T {
  if (!(allowed as readonly string[]).includes(value)) fail(`${option} must be one of ${allowed.join(', ')} (got "${value}")`);
  return value as T;
}

function integer(value: string, option: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) fail(`${option} must be an integer from ${min} to ${max} (got "${value}")`);
  return n;
}

function parseInt4Layout(blockSize: string | undefined, lmHeadBits: string | undefined, embedding: string | undefined): Partial<Int4Layout> {
  const layout: { -readonly [K in keyof Int4Layout]?: Int4Layout[K] } = {};
  if (blockSize !== undefined) {
    layout.blockSize = integer(blockSize, '--block-size', 16, 256);
    if ((layout.blockSize & (layout.blockSize - 1)) !== 0) fail(`--block-size must be a power of 2 (got ${blockSize})`);
  }
  if (lmHeadBits !== undefined) layout.lmHeadBits = Number(oneOf(lmHeadBits, ['4', '8'], '--lm-head-bits')) as 4 | 8;
  if (embedding !== undefined) layout.embedding = oneOf(embedding, ['int4', 'fp16'] as const, '--embedding');
  return layout;
}

function main(): void {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        from: { type: 'string' },
        random: { type: 'boolean' },
        shape: { type: 'string' },
        seed: { type: 'string', default: '1' },
        init: { type: 'string', default: 'flat' },
        out: { type: 'string' },
        format: { type: 'string', default: 'int4' },
        'accuracy-level': { type: 'string' },
        'kv-cache': { type: 'string' },
        'kv-outputs': { type: 'string' },
        'block-size': { type: 'string' },
        'lm-head-bits': { type: 'string' },
        embedding: { type: 'string' },
        force: { type: 'boolean' },
      },
      strict: true,
    }));
  } catch (error) {
    fail((error as Error).message);
  }
  if (!values.out) fail('--out is required');
  if (Boolean(values.from) === Boolean(values.random)) fail('give exactly one of --from <folder> and --random');
  const format = oneOf<WeightFormat>(values.format, WEIGHT_FORMATS, '--format');
  const accuracyLevel = values['accuracy-level'] === undefined ? undefined : integer(values['accuracy-level'], '--accuracy-level', 0, 4);
  const kvCache = values['kv-cache'] === undefined ? undefined : oneOf<KvCacheFormat>(values['kv-cache'], KV_CACHE_FORMATS, '--kv-cache');
  const kvOutputs = values['kv-outputs'] === undefined ? undefined : oneOf<KvOutputs>(values['kv-outputs'], KV_OUTPUTS, '--kv-outputs');
  if (kvOutputs && kvOutputsNeedFloatCache(format, kvCache, kvOutputs)) fail(`--kv-outputs ${kvOutputs} needs a float KV cache (add --kv-cache float)`);
  const int4Layout = parseInt4Layout(values['block-size'], values['lm-head-bits'], values.embedding);
  if (Object.keys(int4Layout).length > 0 && format !== 'int4') fail('--block-size, --lm-head-bits and --embedding apply to --format int4 only');

  let source: WeightSource;
  if (values.random) {
    if (!values.shape) fail('--random needs --shape tiny|phi-1_5');
    const shape = oneOf<ShapeName>(values.shape, Object.keys(SHAPES) as ShapeName[], '--shape');
    const init = oneOf<RandomInit>(values.init, ['flat', 'bigram'], '--init');
    source = new RandomWeights(SHAPES[shape], integer(values.seed, '--seed', 0, 2 ** 31 - 1), shape, init);
  } else {
    source = new HuggingFaceWeights(values.from!);
  }
  const started = Date.now();
  try {
    const manifest = buildModel(source, values.out, { format, accuracyLevel, kvCache, kvOutputs, int4Layout, overwrite: values.force });
    const megabytes = Object.values(manifest.files).reduce((n, f) => n + f.bytes, 0) / 2 ** 20;
    process.stdout.write(`built ${values.out}: ${format}, ${megabytes.toFixed(1)} MiB, ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  } finally {
    source.close();
  }
}

try {
  main();
} catch (error) {
  process.stderr.write(`build-model: ${(error as Error).message}\n`);
  process.exit(1);
}
