/**
 * Runs a model folder's decoder graph (see src/model/phiGraph.ts for its inputs and outputs) in ONNX Runtime.
 */
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { headDim, type PhiConfig } from '../model/config';
import { kvOutputsOf, MODEL_FILE, readManifest, returnsCache, type KvOutputs, type ModelManifest } from '../model/manifest';
import { buildMergeGraph } from '../model/mergeGraph';
import { floatPlanes, int8Planes, KvCache, type DecoderCache, type KvPlane, type NamedTensors } from './kvCache';
import { ResidentKvCache, settledPlanes } from './residentKvCache';

export type { DecoderCache } from './kvCache';

export interface DecoderOptions {
  readonly executionProviders?: ort.InferenceSession.SessionOptions['executionProviders'];
  /** CPU threads for one operator; ONNX Runtime picks when undefined. */
  readonly threads?: number;
}

/** The KV cache's float type in a float-cache model: the activations'. */
function floatCacheDtype(manifest: ModelManifest): 'float16' | 'float32' {
  return manifest.weights === 'fp16' ? 'float16' : 'float32';
}

/** The cache tensors of one layer, as the graph's inputs name them: int8 codes and scales, or floats. */
function cachePlanes(session: ort.InferenceSession, manifest: ModelManifest): KvPlane[] {
  const dim = headDim(manifest.config);
  return session.inputNames.includes('past_key_values.0.key_scale') ? int8Planes(dim) : floatPlanes(dim, floatCacheDtype(manifest));
}

/** Whether ONNX Runtime can hand `present.*` back as GPU buffers (onnxruntime-node supports it for WebGPU only). */
function keepsOutputsOnGpu(providers: NonNullable<DecoderOptions['executionProviders']>): boolean {
  const first = providers[0];
  return (typeof first === 'string' ? first : first?.name) === 'webgpu';
}

export class PhiDecoder {
  /** The cache tensors of one layer, as the graph's inputs name them. */
  readonly kvPlanes: readonly KvPlane[];
  private readonly hasLogitsToKeep: boolean;
  /**
   * `present_rows` graphs return the new key/value rows (KvCache); `present` graphs the kept past and new rows
   * (ResidentKvCache); `present_settled` graphs also read a settled part of the cache.
   */
  private readonly kvOutputs: KvOutputs;

  private constructor(
    private readonly session: ort.InferenceSession,
    /** Merges a present_settled graph's cache parts (src/model/mergeGraph.ts); undefined for other graphs. */
    private readonly mergeSession: ort.InferenceSession | undefined,
    readonly config: PhiConfig,
    readonly manifest: ModelManifest,
  ) {
    this.kvPlanes = cachePlanes(session, manifest);
    this.hasLogitsToKeep = session.inputNames.includes('logits_to_keep');
    const hasSettled = session.inputNames.includes('settled_key_values.0.key');
    this.kvOutputs = session.outputNames.includes('present_rows.0.key') ? 'present_rows' : hasSettled ? 'present_settled' : 'present';
    if (hasSettled !== (mergeSession !== undefined)) throw new Error(`${MODEL_FILE}: its settled_key_values inputs do not match the manifest's kvOutputs (${kvOutputsOf(manifest)}); rebuild the model`);
  }

  static async load(modelDir: string, options: DecoderOptions = {}): Promise<PhiDecoder> {
    const manifest = readManifest(modelDir);
    const executionProviders = options.executionProviders ?? ['cpu'];
    const kvOutputs = kvOutputsOf(manifest);
    // A present graph's cache stays on the GPU between passes (and merges); logits (read by the sampler) come to the host.
    const cacheOnGpu = returnsCache(kvOutputs) && keepsOutputsOnGpu(executionProviders);
    const layers = Array.from({ length: manifest.config.num_hidden_layers }, (_, i) => i);
    const sessionOptions = (gpuOutputs: string[]): ort.InferenceSession.SessionOptions => ({
      executionProviders,
      graphOptimizationLevel: 'all',
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
      ...(cacheOnGpu ? { preferredOutputLocation: Object.fromEntries(gpuOutputs.map((name) => [name, 'gpu-buffer' as const])) } : {}),
    });
    const session = await ort.InferenceSession.create(path.join(modelDir, MODEL_FILE), sessionOptions(layers.flatMap((i) => [`present.${i}.key`, `present.${i}.value`])));
    let mergeSession: ort.InferenceSession | undefined;
    try {
      if (kvOutputs === 'present_settled') {
        // The settled part's planes, as the cache will hold them (ResidentKvCache, from the same session inputs).
        const planes = settledPlanes(cachePlanes(session, manifest));
        const graph = buildMergeGraph(layers.length, manifest.config.num_attention_heads, planes, floatCacheDtype(manifest));
        mergeSession = await ort.InferenceSession.create(graph, sessionOptions(layers.flatMap((i) => planes.map((plane) => `merged.${i}.${plane.name}`))));
      }
      return new PhiDecoder(session, mergeSession, manifest.config, manifest);
    } catch (error) {
      await Promise.all([session.release(), mergeSession?.release()]);
      throw error;
    }
  }

  createCache(): DecoderCache {
    const { num_hidden_layers: layers, num_attention_heads: heads, max_position_embeddings: maxLength } = this.config;
    if (this.kvOutputs === 'present_rows') return new KvCache(layers, heads, this.kvPlanes, maxLength);
    return new ResidentKvCache(layers, heads, this.kvPlanes, maxLength, this.kvOutputs === 'present_settled' ? settledPlanes(this.kvPlanes) : undefined);
  }

  /**
   * Feeds `tokenIds` after the cached positions and appends their keys and values to `cache`.
   * Returns logits [n, vocab] (row-major) for the last n = `logitsFor` tokens (default all of them).
   */
  async forward(tokenIds: readonly number[], cache: DecoderCache, logitsFor = tokenIds.length): Promise<Float32Array> {
    if (cache.kvOutputs !== this.kvOutputs) throw new Error('PhiDecoder.forward: the cache was not made by this decoder (createCache)');
    const seq = tokenIds.length;
    const filled = cache.length;
    cache.layOutFor(seq);
    const mergeInputs = cache.mergeInputs();
    if (mergeInputs) cache.takeMerged(await this.merge(mergeInputs));
    const mask = cache.attentionMask(seq);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokenIds, (id) => BigInt(id)), [1, seq]),
      attention_mask: new ort.Tensor('int64', mask, [1, mask.length]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: seq }, (_, i) => BigInt(filled + i)), [1, seq]),
      ...cache.pastInputs(),
    };
    // Published Optimum exports have no logits_to_keep (they return every position's logits).
    const keep = this.hasLogitsToKeep ? Math.max(1, Math.min(logitsFor, seq)) : seq;
    if (this.hasLogitsToKeep) feeds.logits_to_keep = new ort.Tensor('int64', BigInt64Array.of(BigInt(keep)), [1]);
    const outputs = await this.session.run(feeds);
    cache.takeOutputs(outputs, seq);
    const logits = outputs.logits.data as Float32Array;
    return keep > Math.min(logitsFor, seq) ? logits.subarray((keep - Math.min(logitsFor, seq)) * this.config.vocab_size) : logits;
  }

  /**
   * Runs once the kinds of pass a request makes — a prefill chunk of `chunk` tokens, a shorter one, one-token steps,
   * a 3-token verify, and a merge where the graph has a settled part — and fails if the device cannot run them.
   * On a GPU the first pass of each kind compiles its kernels: better at load than in the user's first completion.
   */
  async warmUp(tokenId: number, chunk: number): Promise<void> {
    const cache = this.createCache();
    try {
      for (const [tokens, logits] of [[chunk, 1], [8, 1], [1, 1], [1, 1], [3, 3]]) {
        await this.forward(new Array<number>(tokens).fill(tokenId), cache, logits);
      }
    } finally {
      // Before any session release: a GPU-resident cache's buffers belong to the session.
      cache.dispose();
    }
  }

  /** Runs the merge graph (present_settled graphs): a cache's past part into its settled part, on the device that holds them. */
  private async merge(inputs: NamedTensors): Promise<NamedTensors> {
    if (!this.mergeSession) throw new Error('PhiDecoder: this model has no settled cache part to merge into');
    return this.mergeSession.run(inputs);
  }

  async dispose(): Promise<void> {
    await Promise.all([this.session.release(), this.mergeSession?.release()]);
  }
}
