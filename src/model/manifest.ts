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
  readonly source: Record<string, unknown>;
  readonly files: Record<string, FileRecord>;
  readonly createdAt: string;
}

/** The model's KV cache format (manifests written before int8 caches existed name none: float). */
export function kvCacheOf(manifest: ModelManifest): KvCacheFormat {
  return manifest.kvCache ?? 'float';
}

/** The graph's cache outputs (manifests written before `present` graphs were offered name none: present_rows). */
export function kvOutputsOf(manifest: ModelManifest): KvOutputs {
  return manifest.kvOutputs ?? 'present_rows';
}

export function readManifest(modelDir: string): ModelManifest {
  const file = path.join(modelDir, MANIFEST_FILE);
  let manifest: ModelManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as ModelManifest;
  } catch (error) {
    throw new Error(`${file}: cannot read the model manifest (${(error as Error).message}); rebuild or re-download the model`);
  }
  if (manifest.format !== MANIFEST_FORMAT) throw new Error(`${file}: unknown manifest format ${String(manifest.format)}`);
  return manifest;
}

/**
 * What is wrong with a model folder's files by its manifest's recorded sizes (missing, cut, grown): empty when
 * nothing is. Cheap (no file is read), so it runs before every load.
 */
export function modelFileProblems(modelDir: string, manifest: ModelManifest = readManifest(modelDir)): string[] {
  const problems: string[] = [];
  for (const [name, record] of Object.entries(manifest.files)) {
    let bytes: number;
    try {
      bytes = fs.statSync(path.join(modelDir, name)).size;
    } catch {
      problems.push(`${name} is missing`);
      continue;
    }
    if (bytes !== record.bytes) problems.push(`${name} has ${bytes} bytes instead of ${record.bytes}`);
  }
  return problems;
}

/** As modelFileProblems, and then every file's sha256 against the manifest (reads every byte: for repairs). */
export async function modelFileHashProblems(modelDir: string, signal?: AbortSignal): Promise<string[]> {
  const manifest = readManifest(modelDir);
  const problems = modelFileProblems(modelDir, manifest);
  if (problems.length > 0) return problems;
  for (const [name, record] of Object.entries(manifest.files)) {
    const hash = createHash('sha256');
    for await (const chunk of fs.createReadStream(path.join(modelDir, name), signal ? { signal } : {})) hash.update(chunk as Buffer);
    const actual = hash.digest('hex');
    if (actual !== record.sha256) problems.push(`${name} has sha256 ${actual} instead of ${record.sha256}`);
  }
  return problems;
}
