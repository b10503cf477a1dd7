/**
 * Builds a model folder from a weight source:
 *   model.onnx (+ model.onnx.data, the weights), tokenizer.json, manifest.json (shape, format, source, sha256 of each file).
 * Everything is written under a temporary name beside the destination and renamed into place only when
 * complete, so a failure or an interruption never leaves a half-written model behind.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ExternalDataFile, GraphBuilder } from './onnx/graphBuilder';
import { buildPhiGraph, OPSETS } from './phiGraph';
import { DATA_FILE, defaultKvCache, INT4_LAYOUT, type Int4Layout, MANIFEST_FILE, MANIFEST_FORMAT, MODEL_FILE, TOKENIZER_FILE, type FileRecord, type KvCacheFormat, type KvOutputs, type ModelManifest, type WeightFormat } from './manifest';
import type { WeightSource } from './weights';
import { buildPhiTokenizerJson } from '../tokenizer/tokenizerJson';

export interface BuildOptions {
  readonly format: WeightFormat;
  /** MatMulNBits accuracy_level for int4 (see PhiGraphOptions). */
  readonly accuracyLevel?: number;
  /** The KV cache's format; int4 models default to int8, others to float. */
  readonly kvCache?: KvCacheFormat;
  /** Replace an existing model folder at the destination. */
  readonly overwrite?: boolean;
  /** The cache outputs (default present_rows); `present` (Optimum's layout) and `present_settled` keep the cache on a GPU (see PhiGraphOptions.kvOutputs). */
  readonly kvOutputs?: KvOutputs;
  /** int4 only: overrides of the int4 layout (block size, lm_head bits, embedding format); INT4_LAYOUT by default. */
  readonly int4Layout?: Partial<Int4Layout>;
  /** Progress through the layers, 0 to 1. */
  readonly onProgress?: (fraction: number) => void;
}

function recordOf(bytes: Uint8Array | string): FileRecord {
  return { bytes: Buffer.byteLength(bytes), sha256: createHash('sha256').update(bytes).digest('hex') };
}

export function buildModel(weights: WeightSource, outDir: string, options: BuildOptions): ModelManifest {
  const destination = path.resolve(outDir);
  if (fs.existsSync(destination) && !options.overwrite) {
    throw new Error(`${destination} already exists (pass --force to replace it)`);
  }
  fs.mkdirSync(path.dirname(destination), { recursive: true });
  const staging = fs.mkdtempSync(`${destination}.partial-`);
  try {
    const accuracyLevel = options.accuracyLevel ?? (options.format === 'int4' ? 4 : 0);
    const kvCache = options.kvCache ?? defaultKvCache(options.format);
    const data = new ExternalDataFile(path.join(staging, DATA_FILE), DATA_FILE);
    let dataRecord: FileRecord;
    let modelBytes: Uint8Array;
    try {
      const graph = new GraphBuilder(data);
      buildPhiGraph(graph, weights, { format: options.format, accuracyLevel, kvCache, kvOutputs: options.kvOutputs ?? 'present_rows', int4Layout: options.int4Layout, onProgress: options.onProgress });
      modelBytes = graph.encode('phi', OPSETS, { architecture: 'phi', weights: options.format });
    } finally {
      dataRecord = data.close();
    }
    fs.writeFileSync(path.join(staging, MODEL_FILE), modelBytes);

    const tokenizerText = weights.tokenizerPath ? fs.readFileSync(weights.tokenizerPath, 'utf8') : JSON.stringify(buildPhiTokenizerJson());
    fs.writeFileSync(path.join(staging, TOKENIZER_FILE), tokenizerText);

    const manifest: ModelManifest = {
      format: MANIFEST_FORMAT,
      architecture: 'phi',
      config: weights.config,
      weights: options.format,
      accuracyLevel,
      kvCache,
      kvOutputs: options.kvOutputs ?? 'present_rows',
      ...(options.format === 'int4' ? { int4Layout: { ...INT4_LAYOUT, ...options.int4Layout } } : {}),
      source: weights.description,
      files: {
        [MODEL_FILE]: recordOf(modelBytes),
        [DATA_FILE]: dataRecord,
        [TOKENIZER_FILE]: recordOf(tokenizerText),
      },
      createdAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(staging, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);

    if (fs.existsSync(destination)) fs.rmSync(destination, { recursive: true, force: true });
    fs.renameSync(staging, destination);
    return manifest;
  } catch (error) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw error;
  }
}
