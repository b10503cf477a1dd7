/**
 * Runs a model folder's decoder graph (see src/model/phiGraph.ts for its inputs and outputs) in ONNX Runtime.
 */
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { headDim, type PhiConfig } from '../model/config';
import { MODEL_FILE, readManifest, type ModelManifest } from '../model/manifest';
import { floatPlanes, int8Planes, KvCache, type KvArray, type KvPlane } from './kvCache';

export interface DecoderOptions {
  readonly executionProviders?: ort.InferenceSession.SessionOptions['executionProviders'];
  /** CPU threads for one operator; ONNX Runtime picks when undefined. */
  readonly threads?: number;
}

/** Each head's last `rows` rows of a float [1, heads, length, dim] tensor, as [1, heads, rows, dim]. */
function lastRows(tensor: KvArray, heads: number, length: number, rows: number, dim: number): KvArray {
  const out = tensor instanceof Uint16Array ? new Uint16Array(heads * rows * dim) : new Float32Array(heads * rows * dim);
  for (let head = 0; head < heads; head++) {
    const from = (head * length + length - rows) * dim;
    out.set(tensor.subarray(from, from + rows * dim), head * rows * dim);
  }
  return out;
}

export class PhiDecoder {
  /** The cache tensors of one layer, as the graph's inputs name them. */
  readonly kvPlanes: readonly KvPlane[];
  private readonly hasLogitsToKeep: boolean;
  /** Our graphs return only the new key/value rows; Optimum's return past and new rows (`present.*`). */
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
    const session = await ort.InferenceSession.create(path.join(modelDir, MODEL_FILE), {
      executionProviders: options.executionProviders ?? ['cpu'],
      graphOptimizationLevel: 'all',
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
    });
    return new PhiDecoder(session, manifest.config, manifest);
  }

  createCache(): KvCache {
    return new KvCache(this.config.num_hidden_layers, this.config.num_attention_heads, this.kvPlanes, this.config.max_position_embeddings);
  }

  /**
   * Feeds `tokenIds` after the cached positions and appends their keys and values to `cache`.
   * Returns logits [n, vocab] (row-major) for the last n = `logitsFor` tokens (default all of them).
   */
  async forward(tokenIds: readonly number[], cache: KvCache, logitsFor = tokenIds.length): Promise<Float32Array> {
    const seq = tokenIds.length;
    const filled = cache.length;
    cache.reserve(seq);
    const slots = cache.capacity;
    const { num_hidden_layers: layers, num_attention_heads: heads } = this.config;
    const dim = headDim(this.config);
    // Slots [0, filled) hold the context, [filled, slots) are unused, then come the new tokens.
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
        feeds[`past_key_values.${i}.${plane.name}`] = new ort.Tensor(plane.dtype, cache.buffer(i, p), cache.shape(p, slots));
      });
    }
    const outputs = await this.session.run(feeds);
    const newRows = Array.from({ length: layers }, (_, i) => this.kvPlanes.map((plane) => this.hasPresentRows
      ? outputs[`present_rows.${i}.${plane.name}`].data as KvArray
      // Optimum's present.* is [1, heads, slots + seq, dim]: take each head's last `seq` rows.
      : lastRows(outputs[`present.${i}.${plane.name}`].data as KvArray, heads, slots + seq, seq, dim)));
    cache.append(newRows, seq);
    const logits = outputs.logits.data as Float32Array;
    return keep > Math.min(logitsFor, seq) ? logits.subarray((keep - Math.min(logitsFor, seq)) * this.config.vocab_size) : logits;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
