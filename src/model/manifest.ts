/**
 * A model folder's layout and manifest: what the builder writes and what the runtime reads.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PhiConfig } from './config';

/** Weight formats (see src/model/phiGraph.ts). */
export type WeightFormat = 'fp32' | 'fp16' | 'int4';
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['int4', 'fp16', 'fp32'];

/** KV cache formats (see src/model/phiGraph.ts); the runtime reads the format off the graph's inputs. */
export type KvCacheFormat = 'float' | 'int8';
export const KV_CACHE_FORMATS: readonly KvCacheFormat[] = ['int8', 'float'];

/** The KV cache a model gets when its build does not say: int8 for int4 models (the CPU's), else float. */
export function defaultKvCache(format: WeightFormat): KvCacheFormat {
  return format === 'int4' ? 'int8' : 'float';
}

/**
 * Which cache outputs the graph has (see src/model/phiGraph.ts): `present_rows` (the new rows, appended by the
 * host into its own cache), `present` (Optimum's kept past and new rows, fed back as the next past: on a GPU
 * the cache stays there) or `present_settled` (present.* plus a read-only settled part of the cache, inputs
 * `settled_key_values.*`, that the host merges the past into now and then: on a GPU no pass copies the whole cache).
 */
export type KvOutputs = 'present_rows' | 'present' | 'present_settled';

export const KV_OUTPUTS: readonly KvOutputs[] = ['present_rows', 'present', 'present_settled'];

/** Whether the graph returns the cache it was fed (present.*), which can then stay on a GPU (ResidentKvCache). */
export function returnsCache(kvOutputs: KvOutputs): boolean {
  return kvOutputs !== 'present_rows';
}

/** Whether a build's choices conflict: a graph that returns its cache (present.*) needs a float one. */
export function kvOutputsNeedFloatCache(format: WeightFormat, kvCache: KvCacheFormat | undefined, kvOutputs: KvOutputs): boolean {
  return returnsCache(kvOutputs) && (kvCache ?? defaultKvCache(format)) !== 'float';
}

/** How an int4 model stores its weights (INT4_LAYOUT by default; `npm run eval` measures the alternatives). */
export interface Int4Layout {
  /** The blocks' matrices: weights per scale along the input (MatMulNBits block_size: a power of 2, ≥ 16). */
  readonly blockSize: number;
  /** lm_head's bits (blocks of 32 for 8 bits, `blockSize` for 4). */
  readonly lmHeadBits: 4 | 8;
  /** The embedding table: 4-bit blocks (GatherBlockQuantized) or float16 (Gather, then Cast to float32). */
  readonly embedding: 'int4' | 'fp16';
  readonly embeddingBlockSize: number;
}

/**
 * int4 layout: the blocks' matrices in 4 bits, blocks of 128 along the input (with fp32 scales and 4-bit zero
 * points: 4.28 bits a weight, against Q4_0's 4.5). Blocks of 128 prefill faster than 64 (the kernel converts to float
 * once a block: docs/benchmarks.md) at a perplexity cost within the eval's rule on both trained fixtures
 * (docs/eval.md). lm_head in 8 bits, the embedding table in 4 bits with blocks of 32 (GatherBlockQuantized reads
 * one row).
 */
export const INT4_LAYOUT: Int4Layout = { blockSize: 128, lmHeadBits: 8, embedding: 'int4', embeddingBlockSize: 32 };

/** What int4 models were built with before manifests recorded it. */
const INT4_LAYOUT_BEFORE_RECORDED: Int4Layout = { blockSize: 64, lmHeadBits: 8, embedding: 'int4', embeddingBlockSize: 32 };

export const MANIFEST_FILE = 'manifest.json';
export const MODEL_FILE = 'model.onnx';
export const DATA_FILE = 'model.onnx.data';
export const TOKENIZER_FILE = 'tokenizer.json';
export const MANIFEST_FORMAT = 'phi-complete-model/1';

export interface FileRecord {
  readonly bytes: number;
  readonly sha256: string;
}

export interface ModelManifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly architecture: 'phi';
  readonly config: PhiConfig;
  readonly weights: WeightFormat;
  readonly accuracyLevel: number;
  /** Absent in manifests written before int8 caches existed: float. */
  readonly kvCache?: KvCacheFormat;
  /** Absent in manifests written before `present` graphs were offered: present_rows. */
  readonly kvOutputs?: KvOutputs;
  /** int4 models: how the weights are stored (absent in manifests written before it was recorded: blocks of 64). */
  readonly int4Layout?: Int4Layout;
  readonly source: Record<string, unknown>;
  readonly files: Record<string, FileRecord>;
  readonly createdAt: string;
}

/** The model's KV cache format (manifests written before int8 caches existed name none: float). */
export function kvCacheOf(manifest: ModelManifest): KvCacheFormat {
  return manifest.kvCache ?? 'float';
}

/** An int4 model's weight layout (manifests written before it was recorded name none: blocks of 64); undefined for float models. */
export function int4LayoutOf(manifest: ModelManifest): Int4Layout | undefined {
  return manifest.weights === 'int4' ? manifest.int4Layout ?? INT4_LAYOUT_BEFORE_RECORDED : undefined;
}

export function sameInt4Layout(a: Int4Layout, b: Int4Layout): boolean {
  return a.blockSize === b.blockSize && a.lmHeadBits === b.lmHeadBits && a.embedding === b.embedding && a.embeddingBlockSize === b.embeddingBlockSize;
}

/** The graph's cache outputs (manifests written before `present` graphs were offered name none: present_rows). */
export function kvOutputsOf(manifest: ModelManifest): KvOutputs {
  return manifest.kvOutputs ?? 'present_rows';
}

/** Why a manifest's file name is not a plain relative path inside the model folder, or undefined when it is one. */
function unsafeFileName(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.includes('\0')) return 'contains a NUL character';
  if (path.posix.isAbsolute(name) || path.win32.isAbsolute(name)) return 'is an absolute path';
  if (/^[a-z]:/i.test(name)) return 'names a drive';
  const parts = name.split(/[\\/]/);
  if (parts.includes('..')) return 'leaves the folder (..)';
  if (parts.some((part) => part === '' || part === '.')) return 'has an empty or "." segment';
  return undefined;
}

const shown = (value: unknown): string => {
  const text = value === undefined ? 'missing' : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
};

/**
 * Checks the manifest's `files` (the manifest is data, as a downloaded or copied folder is: its names must not
 * reach outside the folder, nor its records be of another shape than the builder writes).
 */
function checkFiles(file: string, files: unknown): asserts files is Record<string, FileRecord> {
  const problem = (what: string): Error => new Error(`${file}: ${what}; rebuild or re-download the model`);
  if (files === null || typeof files !== 'object' || Array.isArray(files)) {
    throw problem(`its "files" field must be an object of file names and their { "bytes", "sha256" }, but it is ${shown(files)}`);
  }
  for (const [name, record] of Object.entries(files)) {
    const unsafe = unsafeFileName(name);
    if (unsafe) throw problem(`its "files" field names ${JSON.stringify(name)}, which ${unsafe}: every file must be a plain relative path inside the model folder`);
    const { bytes, sha256 } = (record ?? {}) as Partial<Record<keyof FileRecord, unknown>>;
    if (typeof record !== 'object' || !Number.isSafeInteger(bytes) || (bytes as number) < 0 || typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(sha256)) {
      throw problem(`its "files" entry for ${JSON.stringify(name)} must be { "bytes": a whole number, "sha256": 64 hex digits }, but it is ${shown(record)}`);
    }
  }
}

export function readManifest(modelDir: string): ModelManifest {
  const file = path.join(modelDir, MANIFEST_FILE);
  let manifest: unknown;
  try {
    manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: cannot read the model manifest (${(error as Error).message}); rebuild or re-download the model`);
  }
  if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) throw new Error(`${file}: the model manifest is not a JSON object; rebuild or re-download the model`);
  const { format, files } = manifest as Partial<Record<keyof ModelManifest, unknown>>;
  if (format !== MANIFEST_FORMAT) throw new Error(`${file}: unknown manifest format ${String(format)}`);
  checkFiles(file, files);
  return manifest as ModelManifest;
}

/**
 * What is wrong with a model folder's files by its manifest's recorded sizes (missing, cut, grown, not a regular
 * file): empty when nothing is. Cheap (no file is read), so it runs before every load.
 */
export function modelFileProblems(modelDir: string, manifest: ModelManifest = readManifest(modelDir)): string[] {
  const problems: string[] = [];
  for (const [name, record] of Object.entries(manifest.files)) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(path.join(modelDir, name));
    } catch {
      problems.push(`${name} is missing`);
      continue;
    }
    if (!stat.isFile()) problems.push(`${name} is not a regular file`);
    else if (stat.size !== record.bytes) problems.push(`${name} has ${stat.size} bytes instead of ${record.bytes}`);
  }
  return problems;
}

/** The sha256 of a regular file (undefined for anything else: a device or a FIFO never ends); cancelled by `signal`. */
async function sha256OfFile(file: string, signal: AbortSignal | undefined): Promise<string | undefined> {
  // Non-blocking, so that opening a FIFO does not wait for a writer; no effect on a regular file.
  const handle = await fs.promises.open(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  try {
    if (!(await handle.stat()).isFile()) return undefined;
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) return hash.digest('hex');
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
}

/** As modelFileProblems, and then every file's sha256 against the manifest (reads every byte: for repairs). */
export async function modelFileHashProblems(modelDir: string, signal?: AbortSignal): Promise<string[]> {
  const manifest = readManifest(modelDir);
  const problems = modelFileProblems(modelDir, manifest);
  if (problems.length > 0) return problems;
  for (const [name, record] of Object.entries(manifest.files)) {
    const actual = await sha256OfFile(path.join(modelDir, name), signal);
    if (actual === undefined) problems.push(`${name} is not a regular file`);
    else if (actual !== record.sha256.toLowerCase()) problems.push(`${name} has sha256 ${actual} instead of ${record.sha256}`);
  }
  return problems;
}
