/**
 * Runs a model folder's decoder graph (see src/model/phiGraph.ts for its inputs and outputs) in ONNX Runtime.
 */
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { headDim, type PhiConfig } from '../model/config';
import { kvOutputsOf, MODEL_FILE, readManifest, type ModelManifest } from '../model/manifest';
import { floatPlanes, int8Planes, KvCache, type KvArray, type KvPlane } from './kvCache';
import { ResidentKvCache } from './residentKvCache';

export interface DecoderOptions {
  readonly executionProviders?: ort.InferenceSession.SessionOptions['executionProviders'];
  /** CPU threads for one operator; ONNX Runtime picks when undefined. */
  readonly threads?: number;
}

/** A decoder's cache: host buffers for `present_rows` graphs, the graph's own outputs for `present` graphs. */
export type DecoderCache = KvCache | ResidentKvCache;

/** Whether ONNX Runtime can hand `present.*` back as GPU buffers (onnxruntime-node supports it for WebGPU only). */
function keepsOutputsOnGpu(providers: NonNullable<DecoderOptions['executionProviders']>): boolean {
  const first = providers[0];
  return (typeof first === 'string' ? first : first?.name) === 'webgpu';
}

export class PhiDecoder {
  /** The cache tensors of one layer, as the graph's inputs name them. */
  readonly kvPlanes: readonly KvPlane[];
  private readonly hasLogitsToKeep: boolean;
  /** `present_rows` graphs return the new key/value rows (KvCache); `present` graphs the kept past and new rows (ResidentKvCache). */
  private readonly hasPresentRows: boolean;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly config: PhiConfig,
    readonly manifest: ModelManifest,
  ) {
    const dim = headDim(config);
    this.kvPlanes = session.inputNames.includes('past_key_values.0.key_scale') ? int8Planes(dim) : floatPlanes(dim, manifest.weights === 'fp16' ? 'float16' : 'float32');
    this.hasLogitsToKeep = session.inputNames.includes('logits_to_keep');
    this.hasPresentRows = session.outputNames.includes('present_rows.0.key');
  }

  static async load(modelDir: string, options: DecoderOptions = {}): Promise<PhiDecoder> {
    const manifest = readManifest(modelDir);
    const executionProviders = options.executionProviders ?? ['cpu'];
    // A present graph's cache stays on the GPU between passes; logits (read by the sampler) come to the host.
    const cacheOnGpu = kvOutputsOf(manifest) === 'present' && keepsOutputsOnGpu(executionProviders);
    const presentNames = cacheOnGpu ? Array.from({ length: manifest.config.num_hidden_layers }, (_, i) => [`present.${i}.key`, `present.${i}.value`]).flat() : [];
    const session = await ort.InferenceSession.create(path.join(modelDir, MODEL_FILE), {
      executionProviders,
      graphOptimizationLevel: 'all',
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
      ...(cacheOnGpu ? { preferredOutputLocation: Object.fromEntries(presentNames.map((name) => [name, 'gpu-buffer' as const])) } : {}),
    });
    return new PhiDecoder(session, manifest.config, manifest);
  }

  createCache(): DecoderCache {
    const { num_hidden_layers: layers, num_attention_heads: heads, max_position_embeddings: maxLength } = this.config;
    return this.hasPresentRows ? new KvCache(layers, heads, this.kvPlanes, maxLength) : new ResidentKvCache(layers, heads, this.kvPlanes, maxLength);
  }

  /**
   * Feeds `tokenIds` after the cached positions and appends their keys and values to `cache`.
   * Returns logits [n, vocab] (row-major) for the last n = `logitsFor` tokens (default all of them).
   */
  async forward(tokenIds: readonly number[], cache: DecoderCache, logitsFor = tokenIds.length): Promise<Float32Array> {
    if ((cache instanceof KvCache) !== this.hasPresentRows) throw new Error('PhiDecoder.forward: the cache was not made by this decoder (createCache)');
    const seq = tokenIds.length;
    const filled = cache.length;
    cache.reserve(seq);
    const slots = cache instanceof KvCache ? cache.capacity : cache.heldRows;
    const layers = this.config.num_hidden_layers;
    // Slots [0, filled) hold the context, [filled, slots) are unused or forgotten, then come the new tokens.
    const mask = new BigInt64Array(slots + seq);
    mask.fill(1n, 0, filled);
    mask.fill(1n, slots);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokenIds, (id) => BigInt(id)), [1, seq]),
      attention_mask: new ort.Tensor('int64', mask, [1, slots + seq]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: seq }, (_, i) => BigInt(filled + i)), [1, seq]),
    };
    // Published Optimum exports have no logits_to_keep (they return every position's logits).
    const keep = this.hasLogitsToKeep ? Math.max(1, Math.min(logitsFor, seq)) : seq;
    if (this.hasLogitsToKeep) feeds.logits_to_keep = new ort.Tensor('int64', BigInt64Array.of(BigInt(keep)), [1]);
    for (let i = 0; i < layers; i++) {
      this.kvPlanes.forEach((plane, p) => {
        feeds[`past_key_values.${i}.${plane.name}`] = cache instanceof KvCache ? new ort.Tensor(plane.dtype, cache.buffer(i, p), cache.shape(p, slots)) : cache.past(i, p);
      });
    }
    const outputs = await this.session.run(feeds);
    const layerIndices = Array.from({ length: layers }, (_, i) => i);
    if (cache instanceof KvCache) {
      cache.append(layerIndices.map((i) => this.kvPlanes.map((plane) => outputs[`present_rows.${i}.${plane.name}`].data as KvArray)), seq);
    } else {
      cache.replace(layerIndices.map((i) => this.kvPlanes.map((plane) => outputs[`present.${i}.${plane.name}`])), seq);
    }
    const logits = outputs.logits.data as Float32Array;
    return keep > Math.min(logitsFor, seq) ? logits.subarray((keep - Math.min(logitsFor, seq)) * this.config.vocab_size) : logits;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
