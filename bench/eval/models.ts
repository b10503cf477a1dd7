/**
 * The models the eval scores: a built model folder as it is, or builds of a Hugging Face phi folder (the loader
 * path a download takes: HuggingFaceWeights → buildModel), cached under ~/.cache/phi-complete/eval/<key>, the key
 * covering the builder's code, the weights file's identity and the build options.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildModel } from '../../src/model/build';
import { MANIFEST_FILE, TOKENIZER_FILE, type KvCacheFormat, type WeightFormat } from '../../src/model/manifest';
import type { Int4Layout } from '../../src/model/manifest';
import { HuggingFaceWeights } from '../../src/model/weights';
import { writePhiGguf } from '../peers/gguf';
import { defaultCacheDir } from '../support/cache';
import { MODEL_WRITER } from '../support/benchWeights';

export interface BuildVariant {
  readonly engine: 'phi-complete';
  /** Short name for the table. */
  readonly name: string;
  readonly format: WeightFormat;
  readonly kvCache: KvCacheFormat;
  readonly int4Layout?: Partial<Int4Layout>;
}

export interface GgufVariant {
  readonly engine: 'llama.cpp';
  readonly name: string;
}

export type Variant = BuildVariant | GgufVariant;

/** The variant set of `--variants`: each differs from the default int4 build in one choice, plus the references and the peer. */
export const VARIANTS: readonly Variant[] = [
  { engine: 'phi-complete', name: 'fp32', format: 'fp32', kvCache: 'float' },
  { engine: 'phi-complete', name: 'fp16', format: 'fp16', kvCache: 'float' },
  { engine: 'phi-complete', name: 'int4 (default: b64, 8-bit head, int4 emb, int8 KV)', format: 'int4', kvCache: 'int8' },
  { engine: 'phi-complete', name: 'int4 float KV', format: 'int4', kvCache: 'float' },
  { engine: 'phi-complete', name: 'int4 b32', format: 'int4', kvCache: 'int8', int4Layout: { blockSize: 32 } },
  { engine: 'phi-complete', name: 'int4 b128', format: 'int4', kvCache: 'int8', int4Layout: { blockSize: 128 } },
  { engine: 'phi-complete', name: 'int4 4-bit head', format: 'int4', kvCache: 'int8', int4Layout: { lmHeadBits: 4 } },
  { engine: 'phi-complete', name: 'int4 fp16 emb', format: 'int4', kvCache: 'int8', int4Layout: { embedding: 'fp16' } },
  { engine: 'llama.cpp', name: 'llama.cpp Q4_0' },
];

export function evalCacheDir(): string {
  return path.join(defaultCacheDir(), 'eval');
}

/** Whether `dir` is a model folder built by this project (rather than a Hugging Face folder). */
export function isBuiltModel(dir: string): boolean {
  return fs.existsSync(path.join(dir, MANIFEST_FILE));
}

/** The weights' identity without hashing gigabytes: each safetensors file's name, size and modification time, and config.json. */
function weightsIdentity(hfDir: string): string {
  const files = fs.readdirSync(hfDir).filter((name) => name.endsWith('.safetensors') || name === 'config.json').sort();
  return files.map((name) => {
    const stat = fs.statSync(path.join(hfDir, name));
    return `${name}:${stat.size}:${stat.mtimeMs}`;
  }).join('|') + `@${path.resolve(hfDir)}`;
}

function cacheKey(hfDir: string, options: unknown, writers: readonly string[]): string {
  const hash = createHash('sha256');
  for (const file of writers) hash.update(fs.readFileSync(file));
  hash.update(weightsIdentity(hfDir));
  hash.update(JSON.stringify(options));
  return hash.digest('hex').slice(0, 16);
}

/** The build of `hfDir` with these options, built first if it is not cached. */
export function ensureBuild(hfDir: string, variant: Omit<BuildVariant, 'engine' | 'name'>, log: (message: string) => void): string {
  const options = { format: variant.format, kvCache: variant.kvCache, int4Layout: variant.int4Layout ?? {} };
  const dir = path.join(evalCacheDir(), `build-${cacheKey(hfDir, options, MODEL_WRITER)}`);
  if (!isBuiltModel(dir)) {
    log(`building ${JSON.stringify(options)} from ${hfDir} into ${dir}`);
    const weights = new HuggingFaceWeights(hfDir);
    try {
      buildModel(weights, dir, { ...options, overwrite: true });
    } finally {
      weights.close();
    }
  }
  return dir;
}

const GGUF_WRITER = [path.join(__dirname, '../peers/gguf.js')];

/** llama.cpp's Q4_0 GGUF of `hfDir` (the bench's writer), written first if it is not cached; `tokenizerJson` is any build's. */
export function ensureGguf(hfDir: string, tokenizerJson: string, log: (message: string) => void): string {
  const file = path.join(evalCacheDir(), `q4_0-${cacheKey(hfDir, 'Q4_0', GGUF_WRITER)}.gguf`);
  if (!fs.existsSync(file)) {
    log(`writing the Q4_0 GGUF of ${hfDir} into ${file}`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const weights = new HuggingFaceWeights(hfDir);
    try {
      writePhiGguf(weights, tokenizerJson, file, 'Q4_0');
    } finally {
      weights.close();
    }
  }
  return file;
}

export function tokenizerOf(builtDir: string): string {
  return path.join(builtDir, TOKENIZER_FILE);
}
