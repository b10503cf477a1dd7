/**
 * The full-size random-weight model the benchmarks run (npm run bench, npm run bench:editor): phi-1.5's shape,
 * the bench weights (benchWeights), built once into ~/.cache/phi-complete/bench and keyed by the builder's code.
 *
 * Run directly (node out/bench/support/benchModel.js [--format int4|fp16] [--kv-cache int8|float]
 * [--kv-outputs present_rows|…]) it builds the model if needed and prints its folder on stdout: the default is the
 * CPU catalogue entry's build (phi-1_5-int4: int4 weights, the builder's default cache, present_rows outputs).
 * With --gguf it prints the path of the same weights as a Q4_0 GGUF (ensureGguf) instead.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildModel } from '../../src/model/build';
import { KV_CACHE_FORMATS, KV_OUTPUTS, MANIFEST_FILE, TOKENIZER_FILE, type KvCacheFormat, type KvOutputs, type WeightFormat } from '../../src/model/manifest';
import { writePhiGguf } from '../peers/gguf';
import { benchKey, benchWeights, MODEL_WRITER } from './benchWeights';
import { defaultCacheDir } from './cache';

/** Where the benchmarks keep their models. */
export function benchCacheDir(): string {
  return path.join(defaultCacheDir(), 'bench');
}

/**
 * The folder of the full-size random model with these builder options under `cacheDir`, built first if missing
 * (minutes; buildModel stages its output and renames it into place, so a build cut short never looks complete).
 */
export function ensureModel(
  cacheDir: string,
  format: WeightFormat,
  kvCache: KvCacheFormat | undefined,
  kvOutputs: KvOutputs,
  log: (message: string) => void = (message) => process.stderr.write(`[bench] ${message}\n`),
  blockSize?: number,
): string {
  const variant = `${kvCache ? `${format}-${kvCache}` : format}${kvOutputs === 'present_rows' ? '' : `-${kvOutputs}`}${blockSize === undefined ? '' : `-b${blockSize}`}`;
  const dir = path.join(cacheDir, `phi-1_5-random-${variant}-${benchKey(MODEL_WRITER)}`);
  if (!fs.existsSync(path.join(dir, MANIFEST_FILE))) {
    log(`building the full-size random ${variant} model into ${dir} (a few minutes, once)`);
    buildModel(benchWeights(), dir, { format, kvCache, kvOutputs, overwrite: true, ...(blockSize === undefined ? {} : { int4Layout: { blockSize } }) });
  }
  return dir;
}

/**
 * The same weights as a Q4_0 GGUF under `cacheDir`, written first if missing: for llama.cpp (npm run bench) and
 * llama-server (npm run bench:editor -- --backend server). Keyed by the writer's code and the weights.
 */
export function ensureGguf(cacheDir: string, tokenizerPath: string, log: (message: string) => void): string {
  const key = benchKey([path.join(__dirname, '../peers/gguf.js'), path.join(__dirname, '../../src/model/weights.js'), path.join(__dirname, '../../src/util/rng.js')]);
  const file = path.join(cacheDir, `phi-1_5-random-q4_0-${key}.gguf`);
  if (!fs.existsSync(file)) {
    log(`writing the same weights as a Q4_0 GGUF for llama.cpp: ${file}`);
    const partial = `${file}.partial`;
    writePhiGguf(benchWeights(), tokenizerPath, partial, 'Q4_0');
    fs.renameSync(partial, file);
  }
  return file;
}

function main(argv: readonly string[]): void {
  // --gguf: the CPU build's weights as a GGUF instead (its path on stdout).
  if (argv[0] === '--gguf') {
    const dir = ensureModel(benchCacheDir(), 'int4', undefined, 'present_rows');
    process.stdout.write(`${ensureGguf(benchCacheDir(), path.join(dir, TOKENIZER_FILE), (message) => process.stderr.write(`[bench] ${message}\n`))}\n`);
    return;
  }
  let format: WeightFormat = 'int4';
  let kvCache: KvCacheFormat | undefined;
  let kvOutputs: KvOutputs = 'present_rows';
  let blockSize: number | undefined;
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${name} needs a value`);
    if (name === '--format' && (value === 'int4' || value === 'fp16')) format = value;
    else if (name === '--kv-cache' && (KV_CACHE_FORMATS as readonly string[]).includes(value)) kvCache = value as KvCacheFormat;
    else if (name === '--kv-outputs' && (KV_OUTPUTS as readonly string[]).includes(value)) kvOutputs = value as KvOutputs;
    else if (name === '--block-size' && /^(16|32|64|128|256)$/.test(value)) blockSize = Number(value);
    else throw new Error(`unknown argument ${name} ${value}`);
  }
  process.stdout.write(`${ensureModel(benchCacheDir(), format, kvCache, kvOutputs, undefined, blockSize)}\n`);
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`benchModel: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
