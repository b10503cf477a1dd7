/**
 * The phi decoder as an ONNX graph with a KV cache, in the input/output names of Optimum's and
 * transformers.js' decoder exports (transformers.js runs our `present` build in the bench):
 *
 *   inputs   input_ids [batch, seq] int64, attention_mask [batch, past+seq] int64, position_ids [batch, seq] int64,
 *            logits_to_keep [1] int64 (logits for the last n positions only, as in Hugging Face),
 *            past_key_values.{i}.key|value [batch, heads, past, headDim] float
 *   outputs  logits [batch, n, vocab] float, present_rows.{i}.key|value [batch, heads, seq, headDim] float
 * With an int8 cache (int4 models' default) each layer's cache is four tensors instead, inputs and outputs alike:
 *            key [batch, heads, headDim, past] int8 (transposed), key_scale [batch, heads, 1, past] float,
 *            value [batch, heads, past, headDim] int8, value_scale [batch, heads, 1, past] float
 *
 * Unlike Optimum's `present.*` (past and new rows concatenated), the graph returns only the new rows by default
 * (`present_rows`): the host appends them into its own preallocated cache, because onnxruntime-node copies every
 * output into a fresh buffer, and copying the whole cache at every step would make decoding slow down with context.
 * The past may hold unused slots (attention_mask 0), so the host can feed a cache buffer larger than what is filled.
 * On a GPU the cache stays in device memory as the graph's own outputs (`present`, fed back as the next past), and
 * `present_settled` splits it in two so that no pass copies all of it (a GPU-side Concat of the whole cache grew
 * from 3 to 24 ms a step between 128 and 1,024 positions on an H200):
 *   inputs   settled_key_values.{i}.key [batch, heads, headDim, settled] (transposed: no Transpose at every step),
 *            settled_key_values.{i}.value [batch, heads, settled, headDim]: read only, fed unchanged pass after pass
 *            past_key_values.{i}.key|value: the recent rows, returned with the new ones as present.{i}.key|value
 *            attention_mask [batch, settled + past + seq]
 * and the host merges past into settled from time to time (src/model/mergeGraph.ts, ResidentKvCache).
 *
 * Per layer (parallel attention and MLP from one LayerNorm):
 *   h = LN(x);  x' = x + dense(attention(rotary(q), rotary(k), v)) + fc2(gelu_new(fc1(h)))
 * built from ONNX Runtime's fused contrib ops where they help: SkipLayerNormalization (adds the residual and
 * normalises in one kernel), RotaryEmbedding (partial rotary), FastGelu (= gelu_new) and, for int4,
 * MatMulNBits. QKᵀ is written as Transpose + MatMul, which ONNX Runtime fuses for the CPU (no Kᵀ is made).
 */
import { headDim, rotaryDim, type PhiConfig } from './config';
import { float32ToFloat16 } from './float16';
import { DataType, type GraphBuilder } from './onnx/graphBuilder';
import { quantizeMatrix } from './quantize';
import { INT4_LAYOUT, returnsCache, type Int4Layout, type KvCacheFormat, type KvOutputs, type WeightFormat } from './manifest';
import type { WeightSource } from './weights';

/**
 * fp32: every weight in float32 (the exact reference format).
 * fp16: weights, activations and the KV cache in float16 (for GPUs); logits are cast to float32.
 * int4: Linear weights of the blocks and the embedding table in 4 bits (asymmetric; as llama.cpp's Q4_0 files
 *       do with token_embd), lm_head in 8 bits, since its error goes straight into the logits (INT4_LAYOUT).
 */

export interface PhiGraphOptions {
  readonly format: WeightFormat;
  /** MatMulNBits accuracy_level: 4 quantises activations to int8 (faster), 0 keeps them in float (exact). */
  readonly accuracyLevel: number;
  /**
   * The cache outputs (see KvOutputs): `present_rows` returns only the new rows; `present` Optimum's
   * `present.{i}.key|value` (the kept past rows and the new rows), the layout of published exports, whose cache can
   * stay on a GPU (fed back as the next past without reaching the host; see ResidentKvCache); `present_settled` adds
   * the read-only settled part. On the CPU the last two are slower: onnxruntime-node copies the returned cache out.
   */
  readonly kvOutputs: KvOutputs;
  /** The KV cache's format: `float` (the activations' type) or `int8` (see int8Attention). */
  readonly kvCache: KvCacheFormat;
  /** Called after each layer is written, with the fraction of layers done. */
  readonly onProgress?: (fraction: number) => void;
  /** int4 only: overrides of INT4_LAYOUT. */
  readonly int4Layout?: Partial<Int4Layout>;
}

const MS = 'com.microsoft';

export const OPSETS = { '': 17, [MS]: 1 };

/** The largest int8 code of a cached key or value (see int8Attention). */
const CACHE_CODE_MAX = 64;


function transpose(weight: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(weight.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = weight[r * cols + c];
  return out;
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** cos/sin tables [maxPositions, rotaryDim/2] for RotaryEmbedding: angle = position / theta^(2j/rotaryDim). */
export function rotaryTables(config: PhiConfig): { cos: Float32Array; sin: Float32Array } {
  const half = rotaryDim(config) / 2;
  const positions = config.max_position_embeddings;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let j = 0; j < half; j++) {
      const angle = p / config.rope_theta ** ((2 * j) / rotaryDim(config));
      cos[p * half + j] = Math.cos(angle);
      sin[p * half + j] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

export function buildPhiGraph(g: GraphBuilder, weights: WeightSource, options: PhiGraphOptions): void {
  const config = weights.config;
  const d = config.hidden_size;
  const heads = config.num_attention_heads;
  const vocab = config.vocab_size;
  const eps = { float: config.layer_norm_eps };
  /** The element type of activations, float weights and the KV cache. */
  const floatType = options.format === 'fp16' ? DataType.FLOAT16 : DataType.FLOAT;
  const kvInt8 = options.kvCache === 'int8';
  const kvOutputs = options.kvOutputs;
  if (kvInt8 && (options.format === 'fp16' || kvOutputs !== 'present_rows')) throw new Error('an int8 KV cache needs float32 activations and our present_rows outputs');
  const layout: Int4Layout = { ...INT4_LAYOUT, ...options.int4Layout };
  const floatWeight = (name: string, dims: readonly number[], values: Float32Array): string =>
    g.weight(name, floatType, dims, floatType === DataType.FLOAT16 ? float32ToFloat16(values) : values);

  /** y = x·Wᵀ + b for W [n, k]; in int4 graphs through MatMulNBits with the given bit width. */
  const linear = (x: string, prefix: string, w: Float32Array, b: Float32Array | undefined, n: number, k: number, out: string, bits?: 4 | 8): string => {
    if (bits === undefined) {
      const product = g.node('MatMul', [x, floatWeight(`${prefix}.weight_t`, [k, n], transpose(w, n, k))], [b ? `${out}/matmul` : out])[0];
      return b ? g.node('Add', [product, floatWeight(`${prefix}.bias`, [n], b)], [out])[0] : product;
    }
    const q = quantizeMatrix(w, n, k, bits, bits === 4 ? layout.blockSize : 32);
    const blocks = Math.ceil(k / q.blockSize);
    return g.node('MatMulNBits', [
      x,
      g.weight(`${prefix}.qweight`, DataType.UINT8, [n, blocks, (q.blockSize * bits) / 8], q.codes),
      g.weight(`${prefix}.scales`, DataType.FLOAT, [n * blocks], q.scales),
      g.weight(`${prefix}.zero_points`, DataType.UINT8, [q.zeroPoints.length], q.zeroPoints),
      '',
      b ? g.weight(`${prefix}.bias`, DataType.FLOAT, [n], b) : '',
    ], [out], { K: k, N: n, bits, block_size: q.blockSize, accuracy_level: options.accuracyLevel }, MS)[0];
  };
  const blockBits = options.format === 'int4' ? 4 : undefined;
  const headBits = options.format === 'int4' ? layout.lmHeadBits : undefined;

  const inputIds = g.input('input_ids', DataType.INT64, ['batch_size', 'sequence_length']);
  const attentionMask = g.input('attention_mask', DataType.INT64, ['batch_size', 'total_sequence_length']);
  const positionIds = g.input('position_ids', DataType.INT64, ['batch_size', 'sequence_length']);
  // How many of the last positions get logits: 1 while prefilling (lm_head over a long prompt would cost
  // more than the whole model), all of them when a draft is verified.
  const logitsToKeep = g.input('logits_to_keep', DataType.INT64, [1]);

  // The cache's parts' lengths are read from layer 0's values: [batch, heads, rows, headDim] in every cache format.
  const rowsOf = (tensor: string, name: string): string => g.node('Shape', [tensor], [name], { start: 2, end: 3 })[0];
  const seqLength1d = g.node('Shape', [inputIds], ['seq_length_1d'], { start: 1, end: 2 })[0];
  const settledLength1d = kvOutputs === 'present_settled' ? rowsOf('settled_key_values.0.value', 'settled_length_1d') : undefined;
  // Which slots the new tokens may look at before causality, [batch, slots + seq] int64, and the lengths of the parts
  // attention reads them in (to split its weights by part).
  let attended: string;
  let partLengths: string | undefined;
  /** Slice(past, starts, ends, axes) gives the past rows present.* keeps (graphs that return their cache). */
  let keptPast: { readonly starts: string; readonly ends: string; readonly axes: string } | undefined;
  if (returnsCache(kvOutputs)) {
    const axis1 = g.constant('axes_1', new BigInt64Array([1n]), [1]);
    // present.* keeps the past rows the attention mask keeps: its first `kept` ones, kept = Σ attention_mask over the
    // past's and new slots − seq (all of them when the mask is all ones, as Optimum's callers feed it), so a host that
    // forgets positions by masking them (a rewind) gets them dropped from the next present.* (batch 1). Attention
    // reads present.* itself, every row of it, after the settled part (if any): fewer kernels than past and new apart.
    const pastAndNewMask = settledLength1d
      ? g.node('Slice', [attentionMask, settledLength1d, g.constant('mask_end', new BigInt64Array([BigInt(Number.MAX_SAFE_INTEGER)]), [1]), axis1], ['past_and_new_mask'])[0]
      : attentionMask;
    const zero1d = g.constant('zero_1d', new BigInt64Array([0n]), [1]);
    const keptPastLength1d = g.node('Sub', [g.node('ReduceSum', [pastAndNewMask, axis1], ['mask_sum'], { keepdims: 0 })[0], seqLength1d], ['kept_past_length'])[0];
    keptPast = { starts: zero1d, ends: keptPastLength1d, axes: g.constant('axis_2', new BigInt64Array([2n]), [1]) };
    const presentLength1d = g.node('Add', [keptPastLength1d, seqLength1d], ['present_length_1d'])[0];
    const presentShape = g.node('Concat', [g.constant('one_1d', new BigInt64Array([1n]), [1]), presentLength1d], ['present_mask_shape'], { axis: 0 })[0];
    const presentMask = g.node('Expand', [g.constant('one_i64', new BigInt64Array([1n]), []), presentShape], ['present_mask'])[0];
    attended = settledLength1d
      ? g.node('Concat', [g.node('Slice', [attentionMask, zero1d, settledLength1d, axis1], ['settled_mask'])[0], presentMask], ['attended_mask'], { axis: 1 })[0]
      : presentMask;
    partLengths = settledLength1d ? g.node('Concat', [settledLength1d, presentLength1d], ['part_lengths'], { axis: 0 })[0] : undefined;
  } else {
    attended = attentionMask;
    partLengths = g.node('Concat', [rowsOf('past_key_values.0.value', 'past_length_1d'), seqLength1d], ['part_lengths'], { axis: 0 })[0];
  }
  // One additive attention bias for every layer, [batch, 1, seq, slots + seq]: 0 where a new token may look,
  // −∞ (well, −BIG) at padding (attention_mask 0: unused or forgotten cache slots) and at later new tokens (causality).
  const totalLength1d = g.node('Shape', [attended], ['total_length_1d'], { start: 1, end: 2 })[0];
  const squareShape = g.node('Concat', [seqLength1d, totalLength1d], ['bias_shape'], { axis: 0 })[0];
  const ones = g.node('Expand', [g.constant('one_f32', new Float32Array([1]), []), squareShape], ['ones'])[0];
  // New token i sits at slot slots + i, so it may see slots j ≤ slots + i: the lower triangle shifted by slots.
  const cachedSlots = g.node('Squeeze', [g.node('Sub', [totalLength1d, seqLength1d], ['cached_slots_1d'])[0], g.constant('axes_0', new BigInt64Array([0n]), [1])], ['cached_slots'])[0];
  const causal = g.node('Trilu', [ones, cachedSlots], ['causal_keep'], { upper: 0 })[0];
  const padding = g.node('Unsqueeze', [g.node('Cast', [attended], ['mask_f32'], { to: DataType.FLOAT })[0], g.constant('axes_1_2', new BigInt64Array([1n, 2n]), [2])], ['padding_keep'])[0];
  const keep = g.node('Mul', [causal, padding], ['attention_keep'])[0];
  const biasF32 = g.node('Mul', [g.node('Sub', [keep, g.constant('one_f32_b', new Float32Array([1]), [])], ['attention_drop'])[0],
    g.constant('big_f32', new Float32Array([floatType === DataType.FLOAT16 ? 60000 : 1e9]), [])], ['attention_bias_f32'])[0];
  const attentionBias = floatType === DataType.FLOAT16 ? g.node('Cast', [biasF32], ['attention_bias'], { to: floatType })[0] : biasF32;
  const splitByPart = (): string => {
    if (!partLengths) throw new Error('phi graph: attention over one part has nothing to split');
    return partLengths;
  };
  const toHeads = g.constant('shape_heads', new BigInt64Array([0n, 0n, BigInt(heads), BigInt(headDim(config))]), [4]);
  const toHidden = g.constant('shape_hidden', new BigInt64Array([0n, 0n, BigInt(d)]), [3]);
  const queryScale = 1 / Math.sqrt(headDim(config));

  const { cos, sin } = rotaryTables(config);
  const half = rotaryDim(config) / 2;
  const cosCache = floatWeight('rotary.cos_cache', [config.max_position_embeddings, half], cos);
  const sinCache = floatWeight('rotary.sin_cache', [config.max_position_embeddings, half], sin);

  const queryZeroPoint = kvInt8 ? g.constant('query_zero_point', Uint8Array.of(128), []) : '';
  const kvShape = ['batch_size', heads, 'past_sequence_length', headDim(config)];
  const settledValueShape = ['batch_size', heads, 'settled_sequence_length', headDim(config)];
  const settledKeyShape = ['batch_size', heads, headDim(config), 'settled_sequence_length'];
  const newShape = ['batch_size', heads, 'sequence_length', headDim(config)];

  /**
   * Attention with a float cache, read in parts side by side so that it is only read, never copied: the past and the
   * new rows (present_rows graphs), or the settled part (if any) and present.* (graphs that return their cache).
   */
  const floatAttention = (p: string, i: number, query: string, newKey: string, newValue: string): string => {
    const pastKey = g.input(`past_key_values.${i}.key`, floatType, kvShape);
    const pastValue = g.input(`past_key_values.${i}.value`, floatType, kvShape);
    /** `keyTransposed`: the key is stored [batch, heads, headDim, rows], ready for QKᵀ. */
    let parts: { readonly name: string; readonly key: string; readonly value: string; readonly keyTransposed?: boolean }[];
    if (keptPast) {
      const { starts, ends, axes } = keptPast;
      const present = (past: string, rows: string, name: string): string => {
        g.node('Concat', [g.node('Slice', [past, starts, ends, axes], [`${name}/kept_past`])[0], rows], [name], { axis: 2 });
        g.output(name, floatType, ['batch_size', heads, 'present_sequence_length', headDim(config)]);
        return name;
      };
      parts = [{ name: 'present', key: present(pastKey, newKey, `present.${i}.key`), value: present(pastValue, newValue, `present.${i}.value`) }];
      if (kvOutputs === 'present_settled') {
        parts.unshift({
          name: 'settled',
          key: g.input(`settled_key_values.${i}.key`, floatType, settledKeyShape),
          value: g.input(`settled_key_values.${i}.value`, floatType, settledValueShape),
          keyTransposed: true,
        });
      }
    } else {
      g.output(newKey, floatType, newShape);
      g.output(newValue, floatType, newShape);
      parts = [{ name: 'past', key: pastKey, value: pastValue }, { name: 'new', key: newKey, value: newValue }];
    }
    // scores [batch, heads, seq, slots + seq] → softmax → split by part → sum of each part's weighted values.
    // Transpose + MatMul rather than FusedMatMul: ONNX Runtime fuses the pair back for the CPU, and GPU providers
    // without FusedMatMul (WebGPU, CoreML, DirectML) keep the attention on the GPU instead of the CPU.
    const scores = parts.map(({ name, key, keyTransposed }) => g.node('MatMul', [
      query, keyTransposed ? key : g.node('Transpose', [key], [`${p}/${name}_key_t`], { perm: [0, 1, 3, 2] })[0],
    ], [`${p}/${name}_scores`])[0]);
    const probs = softmax(p, scores.length > 1 ? g.node('Concat', scores, [`${p}/scores`], { axis: -1 })[0] : scores[0]);
    const partProbs = parts.length > 1 ? g.node('Split', [probs, splitByPart()], parts.map(({ name }) => `${p}/${name}_probs`), { axis: -1 }) : [probs];
    const contexts = parts.map(({ name, value }, k) => g.node('MatMul', [partProbs[k], value], [parts.length > 1 ? `${p}/${name}_context` : `${p}/context`])[0]);
    return contexts.reduce((sum, context, k) => g.node('Add', [sum, context], [k === contexts.length - 1 ? `${p}/context` : `${p}/context_${k}`])[0]);
  };

  /**
   * Attention with an int8 cache (a quarter of float32's bytes, which attention must read at every step):
   * every key and value row is stored as int8 codes with one float scale (symmetric, per head and position).
   *   scores = (q_codes · k_codesᵀ) · q_scale · k_scale        q quantised per row the same way
   *   context = ((p · v_scale)_codes · v_codes) · p_step        the weights p·v_scale quantised per row to uint8
   * Both products are exact integer sums (MatMulInteger), split over the cached and the new rows, so a token's
   * result does not depend on how the prompt was cut into chunks. Keys are stored transposed, [heads, dim, past].
   * Key and value codes span ±64, not ±127: x86's 8-bit kernels add pairs of u8·s8 products in int16, which
   * saturates (and then depends on which elements end up paired) unless one side fits in 7 bits.
   */
  const int8Attention = (p: string, i: number, query: string, newKey: string, newValue: string): string => {
    const pastKey = g.input(`past_key_values.${i}.key`, DataType.INT8, ['batch_size', heads, headDim(config), 'past_sequence_length']);
    const pastKeyScale = g.input(`past_key_values.${i}.key_scale`, DataType.FLOAT, ['batch_size', heads, 1, 'past_sequence_length']);
    const pastValue = g.input(`past_key_values.${i}.value`, DataType.INT8, kvShape);
    const pastValueScale = g.input(`past_key_values.${i}.value_scale`, DataType.FLOAT, ['batch_size', heads, 1, 'past_sequence_length']);
    const [keyCodes, keyScale] = quantizeRows(newKey, `${p}/new_key`, { max: CACHE_CODE_MAX, type: DataType.INT8 });
    const [valueCodes, valueScale] = quantizeRows(newValue, `${p}/new_value`, { max: CACHE_CODE_MAX, type: DataType.INT8, output: `present_rows.${i}.value` });
    const transposeLast = { perm: [0, 1, 3, 2] };
    const keyCodesT = g.node('Transpose', [keyCodes], [`present_rows.${i}.key`], transposeLast)[0];
    const keyScaleT = g.node('Transpose', [keyScale], [`present_rows.${i}.key_scale`], transposeLast)[0];
    const valueScaleT = g.node('Transpose', [valueScale], [`present_rows.${i}.value_scale`], transposeLast)[0];
    g.output(keyCodesT, DataType.INT8, ['batch_size', heads, headDim(config), 'sequence_length']);
    g.output(keyScaleT, DataType.FLOAT, ['batch_size', heads, 1, 'sequence_length']);
    g.output(valueCodes, DataType.INT8, newShape);
    g.output(valueScaleT, DataType.FLOAT, ['batch_size', heads, 1, 'sequence_length']);

    const [queryCodes, queryScale] = quantizeRows(query, `${p}/query`, { max: 127, type: DataType.UINT8, offset: 128 });
    const scoreCodes = g.node('Concat', [
      g.node('MatMulInteger', [queryCodes, pastKey, queryZeroPoint], [`${p}/past_score_codes`])[0],
      g.node('MatMulInteger', [queryCodes, keyCodesT, queryZeroPoint], [`${p}/new_score_codes`])[0],
    ], [`${p}/score_codes`], { axis: -1 })[0];
    const keyScales = g.node('Concat', [pastKeyScale, keyScaleT], [`${p}/key_scales`], { axis: -1 })[0];
    const scores = g.node('Mul', [g.node('Mul', [g.node('Cast', [scoreCodes], [`${p}/score_sums`], { to: DataType.FLOAT })[0], queryScale], [`${p}/scores_q`])[0], keyScales], [`${p}/scores`])[0];
    const probs = softmax(p, scores);
    const weights = g.node('Mul', [probs, g.node('Concat', [pastValueScale, valueScaleT], [`${p}/value_scales`], { axis: -1 })[0]], [`${p}/value_weights`])[0];
    const [weightCodes, weightStep] = quantizeRows(weights, `${p}/value_weights`, { max: 255, type: DataType.UINT8 });
    const [pastCodes, newCodes] = g.node('Split', [weightCodes, splitByPart()], [`${p}/past_weight_codes`, `${p}/new_weight_codes`], { axis: -1 });
    const sums = g.node('Add', [
      g.node('MatMulInteger', [pastCodes, pastValue], [`${p}/past_context_sums`])[0],
      g.node('MatMulInteger', [newCodes, valueCodes], [`${p}/new_context_sums`])[0],
    ], [`${p}/context_sums`])[0];
    return g.node('Mul', [g.node('Cast', [sums], [`${p}/context_unscaled`], { to: DataType.FLOAT })[0], weightStep], [`${p}/context`])[0];
  };

  /**
   * Symmetric per-row quantisation along the last axis: codes = round(x / step) + offset, step = max|x| / maxCode.
   * A signed row that multiplies int8 codes is coded as uint8 around 128 (MatMulInteger's a_zero_point): x86 has
   * fast u8·s8 kernels and no fast s8·s8 ones.
   */
  const quantizeRows = (x: string, name: string, code: { max: number; type: DataType; offset?: number; output?: string }): [string, string] => {
    const magnitude = g.node('ReduceMax', [g.node('Abs', [x], [`${name}/abs`])[0]], [`${name}/max`], { axes: [-1], keepdims: 1 })[0];
    // An all-zero row would divide by zero; any positive step codes it as zeros.
    const step = g.node('Max', [g.node('Div', [magnitude, g.constant(`${name}/max_code`, new Float32Array([code.max]), [])], [`${name}/raw_step`])[0], g.constant(`${name}/min_step`, new Float32Array([1e-30]), [])], [`${name}/step`])[0];
    let rounded = g.node('Round', [g.node('Div', [x, step], [`${name}/scaled`])[0]], [`${name}/rounded`])[0];
    if (code.offset) rounded = g.node('Add', [rounded, g.constant(`${name}/offset`, new Float32Array([code.offset]), [])], [`${name}/shifted`])[0];
    const codes = g.node('Cast', [rounded], [code.output ?? `${name}/codes`], { to: code.type })[0];
    return [codes, step];
  };

  const softmax = (p: string, scores: string): string =>
    g.node('Softmax', [g.node('Add', [scores, attentionBias], [`${p}/masked_scores`])[0]], [`${p}/probs`], { axis: -1 })[0];

  const embedding = weights.tensor('model.embed_tokens.weight');
  let x: string;
  if (options.format !== 'int4') {
    x = g.node('Gather', [floatWeight('embed_tokens', [vocab, d], embedding), inputIds], ['embeddings'])[0];
  } else if (layout.embedding === 'fp16') {
    const table = g.weight('embed_tokens', DataType.FLOAT16, [vocab, d], float32ToFloat16(embedding));
    x = g.node('Cast', [g.node('Gather', [table, inputIds], ['embeddings_fp16'])[0]], ['embeddings'], { to: DataType.FLOAT })[0];
  } else {
    // The embedding table in the blocks' 4-bit format, read row by row by GatherBlockQuantized.
    const q = quantizeMatrix(embedding, vocab, d, 4, layout.embeddingBlockSize);
    x = g.node('GatherBlockQuantized', [
      g.weight('embed_tokens.qweight', DataType.UINT8, [vocab, d / 2], q.codes),
      inputIds,
      g.weight('embed_tokens.scales', DataType.FLOAT, [vocab, d / q.blockSize], q.scales),
      g.weight('embed_tokens.zero_points', DataType.UINT8, [vocab, q.zeroPoints.length / vocab], q.zeroPoints),
    ], ['embeddings'], { gather_axis: 0, quantize_axis: 1, block_size: q.blockSize, bits: 4 }, MS)[0];
  }

  let h = '';
  let branchSum = '';
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    const read = (name: string): Float32Array => weights.tensor(`${p}.${name}`);
    const gamma = floatWeight(`${p}.input_layernorm.weight`, [d], read('input_layernorm.weight'));
    const beta = floatWeight(`${p}.input_layernorm.bias`, [d], read('input_layernorm.bias'));
    if (i === 0) {
      h = g.node('LayerNormalization', [x, gamma, beta], [`${p}/ln`], { axis: -1, epsilon: eps })[0];
    } else {
      // residual(i) = residual(i−1) + attention(i−1) + mlp(i−1), normalised in the same kernel.
      [h, , , x] = g.node('SkipLayerNormalization', [x, branchSum, gamma, beta], [`${p}/ln`, '', '', `${p}/residual`], { epsilon: eps }, MS);
    }

    // The attention scale 1/√headDim is folded into the query projection (rotary is linear, so it commutes):
    // QKᵀ with alpha = 1 lets ONNX Runtime use its matrix-vector kernel when decoding instead of packing K.
    const scaled = (values: Float32Array): Float32Array => values.map((value) => value * queryScale);
    const qkvWeight = concat([scaled(read('self_attn.q_proj.weight')), read('self_attn.k_proj.weight'), read('self_attn.v_proj.weight')]);
    const qkvBias = concat([scaled(read('self_attn.q_proj.bias')), read('self_attn.k_proj.bias'), read('self_attn.v_proj.bias')]);
    const qkv = linear(h, `${p}.self_attn.qkv_proj`, qkvWeight, qkvBias, 3 * d, d, `${p}/qkv`, blockBits);
    const [q, k, v] = g.node('Split', [qkv, g.constant(`${p}/qkv_split`, new BigInt64Array([BigInt(d), BigInt(d), BigInt(d)]), [3])], [`${p}/q`, `${p}/k`, `${p}/v`], { axis: -1 });
    const rotary = { interleaved: 0, num_heads: heads, rotary_embedding_dim: rotaryDim(config) };
    const qRotated = g.node('RotaryEmbedding', [q, positionIds, cosCache, sinCache], [`${p}/q_rotary`], rotary, MS)[0];
    const kRotated = g.node('RotaryEmbedding', [k, positionIds, cosCache, sinCache], [`${p}/k_rotary`], rotary, MS)[0];

    // [batch, seq, hidden] → [batch, heads, seq, headDim]
    const splitHeads = (x: string, out: string): string =>
      g.node('Transpose', [g.node('Reshape', [x, toHeads], [`${out}/bshd`])[0]], [out], { perm: [0, 2, 1, 3] })[0];
    const query = splitHeads(qRotated, `${p}/query`);
    const context = kvInt8
      ? int8Attention(p, i, query, splitHeads(kRotated, `${p}/new_key`), splitHeads(v, `${p}/new_value`))
      : floatAttention(p, i, query, splitHeads(kRotated, `present_rows.${i}.key`), splitHeads(v, `present_rows.${i}.value`));
    const attention = g.node('Reshape', [g.node('Transpose', [context], [`${p}/context_bshd`], { perm: [0, 2, 1, 3] })[0], toHidden], [`${p}/attention`])[0];
    const attentionOut = linear(attention, `${p}.self_attn.dense`, read('self_attn.dense.weight'), read('self_attn.dense.bias'), d, d, `${p}/attention_out`, blockBits);

    const ff = config.intermediate_size;
    const fc1 = linear(h, `${p}.mlp.fc1`, read('mlp.fc1.weight'), undefined, ff, d, `${p}/fc1`, blockBits);
    const gelu = g.node('FastGelu', [fc1, floatWeight(`${p}.mlp.fc1.bias`, [ff], read('mlp.fc1.bias'))], [`${p}/gelu`], {}, MS)[0];
    const mlpOut = linear(gelu, `${p}.mlp.fc2`, read('mlp.fc2.weight'), read('mlp.fc2.bias'), d, ff, `${p}/mlp_out`, blockBits);
    branchSum = g.node('Add', [attentionOut, mlpOut], [`${p}/branch_sum`])[0];
    options.onProgress?.((i + 1) / config.num_hidden_layers);
  }

  const finalGamma = floatWeight('model.final_layernorm.weight', [d], weights.tensor('model.final_layernorm.weight'));
  const finalBeta = floatWeight('model.final_layernorm.bias', [d], weights.tensor('model.final_layernorm.bias'));
  const [hAll] = g.node('SkipLayerNormalization', [x, branchSum, finalGamma, finalBeta], ['final_ln'], { epsilon: eps }, MS);
  const hFinal = g.node('Slice', [hAll, g.node('Neg', [logitsToKeep], ['logits_start'])[0],
    g.constant('slice_end', new BigInt64Array([BigInt(Number.MAX_SAFE_INTEGER)]), [1]), g.constant('axis_seq', new BigInt64Array([1n]), [1])], ['final_ln_kept'])[0];
  const logits = floatType === DataType.FLOAT16 ? 'logits_fp16' : 'logits';
  linear(hFinal, 'lm_head', weights.tensor('lm_head.weight'), weights.tensor('lm_head.bias'), vocab, d, logits, headBits);
  // Sampling reads every logit in JavaScript, which has no float16 arrays: hand them over as float32.
  if (logits !== 'logits') g.node('Cast', [logits], ['logits'], { to: DataType.FLOAT });
  g.output('logits', DataType.FLOAT, ['batch_size', 'logits_length', vocab]);
}
