/**
 * Writes phi weights as a GGUF v3 file of llama.cpp's `phi2` architecture, so that llama.cpp can run the very
 * same (random or real) weights our ONNX engine runs, for side-by-side benchmarks and cross-checks.
 *
 * The file is streamed: every tensor's size and offset is computed from the config's shapes first, the header
 * is written, then each tensor is fetched, encoded and written on its own. Only one tensor is ever in memory,
 * which matters for the full-size model (1.4B parameters).
 *
 * Layout (all little-endian):
 *   "GGUF" | version u32 = 3 | tensor count u64 | metadata count u64
 *   metadata: key (string) | value type u32 | value
 *   tensor infos: name (string) | n_dims u32 | ne[n_dims] u64, innermost first | ggml type u32 | offset u64
 *   padding to the alignment, then the data section: each tensor at its offset, padded to the alignment.
 * A string is its UTF-8 byte length (u64) followed by the bytes, without a terminator.
 */
import * as fs from 'node:fs';
import { rotaryDim, type PhiConfig } from '../../src/model/config';
import { float16ToFloat32, float32ToFloat16 } from '../../src/model/float16';
import { phiTensorShapes, type WeightSource } from '../../src/model/weights';

export type GgufTensorType = 'Q4_0' | 'F32';

const GGUF_MAGIC = 'GGUF';
const GGUF_VERSION = 3;
/** llama.cpp's default; written explicitly as general.alignment all the same. */
const GGUF_ALIGNMENT = 32;

/** Metadata value types (gguf.h, enum gguf_type). */
const enum ValueType {
  Uint32 = 4,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
}

/** Tensor data types (ggml.h, enum ggml_type). */
const GGML_TYPE: Record<GgufTensorType, number> = { F32: 0, Q4_0: 2 };

/** general.file_type: llama.h's llama_ftype for a file whose matrices are all of one type. */
const LLAMA_FILE_TYPE: Record<GgufTensorType, number> = { F32: 0, Q4_0: 2 };

/** Token types (llama.h, enum llama_token_type), as llama.cpp's own converter assigns them. */
const enum TokenType {
  Normal = 1,
  /** Special tokens such as <|endoftext|>: never produced by tokenizing plain text. */
  Control = 3,
  /** Added, non-special tokens: phi's runs of spaces and tabs. */
  UserDefined = 4,
  /** Padding rows beyond the tokenizer's vocabulary. */
  Unused = 5,
}

/** Q4_0 packs 32 weights into one block: an fp16 scale, then 16 bytes of 4-bit codes. */
export const Q4_0_BLOCK_SIZE = 32;
const Q4_0_BLOCK_BYTES = 2 + Q4_0_BLOCK_SIZE / 2;

// ---------------------------------------------------------------------------------------------------------------
// Tensors

interface PlannedTensor {
  /** llama.cpp's name, e.g. blk.0.attn_q.weight */
  readonly ggufName: string;
  /** Hugging Face's name, e.g. model.layers.0.self_attn.q_proj.weight */
  readonly hfName: string;
  /** GGUF dimensions, innermost first: a Linear weight [out, in] has ne = [in, out]. */
  readonly ne: readonly number[];
  readonly type: GgufTensorType;
  readonly elementCount: number;
  readonly byteLength: number;
  /** From the start of the data section; a multiple of the alignment. */
  readonly offset: number;
}

/** Hugging Face name pieces → llama.cpp's (convert_hf_to_gguf's phi2 tensor map). */
const LAYER_TENSOR_NAMES: Record<string, string> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.dense': 'attn_output',
  'mlp.fc1': 'ffn_up',
  'mlp.fc2': 'ffn_down',
};

export function ggufTensorName(hfName: string): string {
  if (hfName === 'model.embed_tokens.weight') return 'token_embd.weight';
  const finalNorm = /^model\.final_layernorm\.(weight|bias)$/.exec(hfName);
  if (finalNorm) return `output_norm.${finalNorm[1]}`;
  const head = /^lm_head\.(weight|bias)$/.exec(hfName);
  if (head) return `output.${head[1]}`;
  const layer = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hfName);
  const mapped = layer ? LAYER_TENSOR_NAMES[layer[2]] : undefined;
  if (!layer || mapped === undefined) throw new Error(`gguf: no phi2 tensor name for ${hfName}`);
  return `blk.${layer[1]}.${mapped}.${layer[3]}`;
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Every tensor's name, GGUF shape, type and data offset, from the config alone (no weights are read). */
function planTensors(config: PhiConfig, matrixType: GgufTensorType): PlannedTensor[] {
  const planned: PlannedTensor[] = [];
  let offset = 0;
  for (const [hfName, shape] of phiTensorShapes(config)) {
    const ne = [...shape].reverse();
    const elementCount = shape.reduce((a, b) => a * b, 1);
    // Quantise matrices only: llama.cpp keeps norms and biases in F32 (they are tiny and precision-sensitive).
    const type: GgufTensorType = shape.length === 2 ? matrixType : 'F32';
    if (type === 'Q4_0' && ne[0] % Q4_0_BLOCK_SIZE !== 0) {
      throw new Error(`gguf: ${hfName} rows of ${ne[0]} values cannot be cut into Q4_0 blocks of ${Q4_0_BLOCK_SIZE}`);
    }
    const byteLength = type === 'Q4_0' ? (elementCount / Q4_0_BLOCK_SIZE) * Q4_0_BLOCK_BYTES : elementCount * 4;
    planned.push({ ggufName: ggufTensorName(hfName), hfName, ne, type, elementCount, byteLength, offset });
    offset = alignUp(offset + byteLength, GGUF_ALIGNMENT);
  }
  return planned;
}

/** Bytes of the tensors llama.cpp reads to decode one token: all but the embedding table, of which it reads one row. */
export function ggufBytesReadPerToken(config: PhiConfig, matrixType: GgufTensorType): number {
  return planTensors(config, matrixType).filter((tensor) => tensor.ggufName !== 'token_embd.weight').reduce((sum, tensor) => sum + tensor.byteLength, 0);
}

/**
 * llama.cpp's reference Q4_0 quantiser (quantize_row_q4_0_ref), in float32 arithmetic like the C: per block of 32,
 * the element of largest magnitude `max` sets the scale d = max / −8, so it maps exactly to code 0 and the
 * other values to round(x/d) + 8, clamped to 15. Values decode as (q − 8)·d. Byte j of a block's codes holds
 * element j in its low nibble and element j + 16 in its high nibble.
 */
export function quantizeQ4_0(values: Float32Array): Uint8Array {
  if (values.length % Q4_0_BLOCK_SIZE !== 0) throw new Error(`quantizeQ4_0: ${values.length} values is not a whole number of blocks`);
  const f32 = Math.fround;
  const blockCount = values.length / Q4_0_BLOCK_SIZE;
  const half = Q4_0_BLOCK_SIZE / 2;
  const scales = new Float32Array(blockCount);
  const out = new Uint8Array(blockCount * Q4_0_BLOCK_BYTES);
  for (let block = 0; block < blockCount; block++) {
    const start = block * Q4_0_BLOCK_SIZE;
    let largestMagnitude = 0;
    let max = 0; // the signed value of largest magnitude (the first one, on ties)
    for (let j = 0; j < Q4_0_BLOCK_SIZE; j++) {
      const v = values[start + j];
      if (largestMagnitude < Math.abs(v)) {
        largestMagnitude = Math.abs(v);
        max = v;
      }
    }
    const d = f32(max / -8);
    // The C computes the inverse from the float32 scale, not from its fp16 rounding.
    const inverse = d !== 0 ? f32(1 / d) : 0;
    scales[block] = d;
    const codes = block * Q4_0_BLOCK_BYTES + 2;
    for (let j = 0; j < half; j++) {
      // (int8_t)(x + 8.5f) truncates toward zero; x + 8.5 is ≥ 0.5 here, so that is round-half-up of x + 8.
      const low = Math.min(15, Math.trunc(f32(f32(values[start + j] * inverse) + 8.5)));
      const high = Math.min(15, Math.trunc(f32(f32(values[start + half + j] * inverse) + 8.5)));
      out[codes + j] = low | (high << 4);
    }
  }
  // One conversion call for all scales: float32ToFloat16 works on whole arrays.
  const scaleBits = float32ToFloat16(scales);
  for (let block = 0; block < blockCount; block++) {
    out[block * Q4_0_BLOCK_BYTES] = scaleBits[block] & 0xff;
    out[block * Q4_0_BLOCK_BYTES + 1] = scaleBits[block] >> 8;
  }
  return out;
}

/** Inverse of quantizeQ4_0: the values llama.cpp's kernels multiply by, (q − 8)·d with d read back from fp16. */
export function dequantizeQ4_0(bytes: Uint8Array): Float32Array {
  if (bytes.length % Q4_0_BLOCK_BYTES !== 0) throw new Error(`dequantizeQ4_0: ${bytes.length} bytes is not a whole number of blocks`);
  const blockCount = bytes.length / Q4_0_BLOCK_BYTES;
  const half = Q4_0_BLOCK_SIZE / 2;
  const scaleBits = new Uint16Array(blockCount);
  for (let block = 0; block < blockCount; block++) {
    scaleBits[block] = bytes[block * Q4_0_BLOCK_BYTES] | (bytes[block * Q4_0_BLOCK_BYTES + 1] << 8);
  }
  const scales = float16ToFloat32(scaleBits);
  const out = new Float32Array(blockCount * Q4_0_BLOCK_SIZE);
  for (let block = 0; block < blockCount; block++) {
    const codes = block * Q4_0_BLOCK_BYTES + 2;
    const start = block * Q4_0_BLOCK_SIZE;
    for (let j = 0; j < half; j++) {
      out[start + j] = ((bytes[codes + j] & 0x0f) - 8) * scales[block];
      out[start + half + j] = ((bytes[codes + j] >> 4) - 8) * scales[block];
    }
  }
  return out;
}

/** The tensor's bytes in the data section. */
function encodeTensor(tensor: PlannedTensor, values: Float32Array): Uint8Array {
  if (values.length !== tensor.elementCount) {
    throw new Error(`gguf: ${tensor.hfName} has ${values.length} values, its shape needs ${tensor.elementCount}`);
  }
  if (tensor.type === 'Q4_0') return quantizeQ4_0(values);
  // F32: the typed array's own bytes (every platform Node runs on is little-endian, as GGUF is).
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

// ---------------------------------------------------------------------------------------------------------------
// Tokenizer

interface GgufVocabulary {
  /** One entry per embedding row (config.vocab_size). */
  readonly tokens: string[];
  readonly tokenTypes: TokenType[];
  /** BPE merges in rank order, "left right". */
  readonly merges: string[];
}

interface TokenizerJson {
  readonly model?: { readonly vocab?: unknown; readonly merges?: unknown };
  readonly added_tokens?: unknown;
}

interface AddedToken {
  readonly id: number;
  readonly content: string;
  readonly special: boolean;
}

/**
 * The vocabulary as llama.cpp's converter lays it out: the tokenizer's tokens by id, added tokens typed CONTROL
 * (special) or USER_DEFINED, and ids the tokenizer lacks — phi's embedding has 51,200 rows for 50,295 tokens —
 * filled with unused `[PAD<id>]` tokens, since llama.cpp needs one token per embedding row.
 */
function readVocabulary(tokenizerJsonPath: string, vocabSize: number): GgufVocabulary {
  const fail = (problem: string): never => {
    throw new Error(`${tokenizerJsonPath}: ${problem}`);
  };
  const json = JSON.parse(fs.readFileSync(tokenizerJsonPath, 'utf8')) as TokenizerJson;
  const vocab = json.model?.vocab;
  if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) fail('model.vocab must map token strings to ids');
  const merges = json.model?.merges;
  if (!Array.isArray(merges)) fail('model.merges must be an array');
  const addedTokens = json.added_tokens ?? [];
  if (!Array.isArray(addedTokens)) fail('added_tokens must be an array');

  const tokens: (string | undefined)[] = new Array<string | undefined>(vocabSize);
  const tokenTypes = new Array<TokenType>(vocabSize).fill(TokenType.Normal);
  const place = (id: unknown, token: string, origin: string): number => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocabSize) {
      return fail(`${origin} ${JSON.stringify(token)} has id ${String(id)}, outside the model's ${vocabSize} embedding rows`);
    }
    const existing = tokens[id];
    if (existing !== undefined && existing !== token) {
      fail(`id ${id} is both ${JSON.stringify(existing)} and ${JSON.stringify(token)}`);
    }
    tokens[id] = token;
    return id;
  };
  for (const [token, id] of Object.entries(vocab as Record<string, unknown>)) place(id, token, 'model.vocab token');
  for (const entry of addedTokens as unknown[]) {
    const added = entry as Partial<AddedToken>;
    if (typeof added.content !== 'string') fail('added_tokens entries need a string content');
    const id = place(added.id, added.content!, 'added token');
    tokenTypes[id] = added.special === true ? TokenType.Control : TokenType.UserDefined;
  }
  for (let id = 0; id < vocabSize; id++) {
    if (tokens[id] === undefined) {
      tokens[id] = `[PAD${id}]`;
      tokenTypes[id] = TokenType.Unused;
    }
  }

  // tokenizer.json has two spellings for merges: "left right" strings, or (newer) [left, right] pairs.
  const mergeStrings = (merges as unknown[]).map((merge, rank) => {
    if (typeof merge === 'string' && merge.split(' ').length === 2) return merge;
    if (Array.isArray(merge) && merge.length === 2 && merge.every((part) => typeof part === 'string')) return merge.join(' ');
    return fail(`merge ${rank} is neither "left right" nor [left, right]`);
  });
  return { tokens: tokens as string[], tokenTypes, merges: mergeStrings };
}

// ---------------------------------------------------------------------------------------------------------------
// Header encoding

/** Accumulates the header's byte chunks. */
class HeaderEncoder {
  private readonly chunks: Buffer[] = [];
  metadataCount = 0;

  concat(): Buffer {
    return Buffer.concat(this.chunks);
  }

  rawBytes(bytes: Uint8Array): void {
    this.chunks.push(Buffer.from(bytes));
  }

  rawUint32(value: number): void {
    const chunk = Buffer.alloc(4);
    chunk.writeUInt32LE(value);
    this.chunks.push(chunk);
  }

  rawUint64(value: number): void {
    const chunk = Buffer.alloc(8);
    chunk.writeBigUInt64LE(BigInt(value));
    this.chunks.push(chunk);
  }

  rawString(text: string): void {
    const bytes = Buffer.from(text, 'utf8');
    this.rawUint64(bytes.length);
    this.chunks.push(bytes);
  }

  private key(key: string, type: ValueType): void {
    this.metadataCount++;
    this.rawString(key);
    this.rawUint32(type);
  }

  uint32(key: string, value: number): void {
    this.key(key, ValueType.Uint32);
    this.rawUint32(value);
  }

  float32(key: string, value: number): void {
    this.key(key, ValueType.Float32);
    const chunk = Buffer.alloc(4);
    chunk.writeFloatLE(value);
    this.chunks.push(chunk);
  }

  bool(key: string, value: boolean): void {
    this.key(key, ValueType.Bool);
    this.chunks.push(Buffer.from([value ? 1 : 0]));
  }

  string(key: string, value: string): void {
    this.key(key, ValueType.String);
    this.rawString(value);
  }

  stringArray(key: string, values: readonly string[]): void {
    this.key(key, ValueType.Array);
    this.rawUint32(ValueType.String);
    this.rawUint64(values.length);
    for (const value of values) this.rawString(value);
  }

  int32Array(key: string, values: readonly number[]): void {
    this.key(key, ValueType.Array);
    this.rawUint32(ValueType.Int32);
    this.rawUint64(values.length);
    const chunk = Buffer.alloc(values.length * 4);
    values.forEach((value, i) => chunk.writeInt32LE(value, i * 4));
    this.chunks.push(chunk);
  }
}

function modelName(weights: WeightSource): string {
  const { kind, shape, seed, init } = weights.description;
  if (kind === 'random') return `phi random ${String(shape)} seed ${String(seed)} ${String(init)}`;
  return 'phi-1.5';
}

/** Metadata: everything llama.cpp's phi2 loader and its GPT-2 BPE vocabulary read. */
function encodeMetadata(header: HeaderEncoder, weights: WeightSource, vocabulary: GgufVocabulary, tensorType: GgufTensorType): void {
  const config = weights.config;
  const arch = 'phi2';
  header.string('general.architecture', arch);
  header.string('general.name', modelName(weights));
  header.uint32('general.alignment', GGUF_ALIGNMENT);
  header.uint32('general.file_type', LLAMA_FILE_TYPE[tensorType]);

  header.uint32(`${arch}.context_length`, config.max_position_embeddings);
  header.uint32(`${arch}.embedding_length`, config.hidden_size);
  header.uint32(`${arch}.feed_forward_length`, config.intermediate_size);
  header.uint32(`${arch}.block_count`, config.num_hidden_layers);
  header.uint32(`${arch}.attention.head_count`, config.num_attention_heads);
  header.uint32(`${arch}.attention.head_count_kv`, config.num_key_value_heads);
  header.float32(`${arch}.attention.layer_norm_epsilon`, config.layer_norm_eps);
  // Partial rotary: only the first rotaryDim dims of each head rotate (NEOX style, which phi2 implies).
  header.uint32(`${arch}.rope.dimension_count`, rotaryDim(config));
  header.float32(`${arch}.rope.freq_base`, config.rope_theta);

  header.string('tokenizer.ggml.model', 'gpt2');
  // The pre-tokenizer llama.cpp's converter detects for phi-2's (= phi-1.5's) tokenizer; llama.cpp maps it to its
  // GPT-2 regex. Without a known value llama.cpp falls back to "default" with a warning.
  header.string('tokenizer.ggml.pre', 'phi-2');
  header.stringArray('tokenizer.ggml.tokens', vocabulary.tokens);
  header.int32Array('tokenizer.ggml.token_type', vocabulary.tokenTypes);
  header.stringArray('tokenizer.ggml.merges', vocabulary.merges);
  header.uint32('tokenizer.ggml.bos_token_id', config.bos_token_id);
  header.uint32('tokenizer.ggml.eos_token_id', config.eos_token_id);
  // phi-1.5 prompts start without a BOS token (the converter writes the same).
  header.bool('tokenizer.ggml.add_bos_token', false);
}

function encodeTensorInfos(header: HeaderEncoder, planned: readonly PlannedTensor[]): void {
  for (const tensor of planned) {
    header.rawString(tensor.ggufName);
    header.rawUint32(tensor.ne.length);
    for (const dim of tensor.ne) header.rawUint64(dim);
    header.rawUint32(GGML_TYPE[tensor.type]);
    header.rawUint64(tensor.offset);
  }
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * Writes `weights` as a phi2 GGUF at `outPath`. With 'Q4_0' every matrix (token_embd and output included) is
 * Q4_0 and every vector F32; with 'F32' everything is F32. The file appears only once complete (it is written
 * under a temporary name and renamed).
 */
export function writePhiGguf(weights: WeightSource, tokenizerJsonPath: string, outPath: string, tensorType: GgufTensorType): void {
  const planned = planTensors(weights.config, tensorType);
  const vocabulary = readVocabulary(tokenizerJsonPath, weights.config.vocab_size);

  const metadata = new HeaderEncoder();
  encodeMetadata(metadata, weights, vocabulary, tensorType);
  const infos = new HeaderEncoder();
  encodeTensorInfos(infos, planned);
  const preamble = new HeaderEncoder();
  preamble.rawBytes(Buffer.from(GGUF_MAGIC, 'ascii'));
  preamble.rawUint32(GGUF_VERSION);
  preamble.rawUint64(planned.length);
  preamble.rawUint64(metadata.metadataCount);
  const header = Buffer.concat([preamble.concat(), metadata.concat(), infos.concat()]);

  const partialPath = `${outPath}.partial`;
  const fd = fs.openSync(partialPath, 'w');
  try {
    let position = 0;
    const write = (bytes: Uint8Array): void => {
      let done = 0;
      while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done, position + done);
      position += bytes.length;
    };
    const padTo = (target: number): void => {
      if (target > position) write(new Uint8Array(target - position));
    };
    write(header);
    padTo(alignUp(position, GGUF_ALIGNMENT));
    const dataStart = position;
    for (const tensor of planned) {
      if (position !== dataStart + tensor.offset) throw new Error(`gguf: ${tensor.ggufName} would land at the wrong offset`);
      const bytes = encodeTensor(tensor, weights.tensor(tensor.hfName));
      if (bytes.length !== tensor.byteLength) throw new Error(`gguf: ${tensor.ggufName} encoded to ${bytes.length} bytes, planned ${tensor.byteLength}`);
      write(bytes);
      padTo(dataStart + alignUp(tensor.offset + tensor.byteLength, GGUF_ALIGNMENT));
    }
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(partialPath, { force: true });
    throw error;
  }
  fs.closeSync(fd);
  fs.renameSync(partialPath, outPath);
}
