/**
 * phi-1.5's tokenizer: encoding through @huggingface/tokenizers, decoding through raw token bytes.
 *
 * Decoding goes bytes-first (tokenBytes + TextDecoder) so that whole-sequence decoding and the streaming
 * detokenizer share one path and agree byte for byte.
 */
import * as fs from 'node:fs';
import { TextDecoder, TextEncoder } from 'node:util';

/**
 * The slice of @huggingface/tokenizers used here, typed locally: the package's own declarations use
 * extensionless relative imports inside an ESM package, which node16 resolution cannot follow (every type
 * would silently become `any`). Its CommonJS build is loaded through the "require" export condition.
 */
interface HfTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  token_to_id(token: string): number | undefined;
}
type HfTokenizerClass = new (tokenizerJson: object, tokenizerConfig: object) => HfTokenizer;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: HfTokenizerClass };

// Not imported from ./tokenizerJson: that module is a build-time generator that locates a devDependency.
const EOS_TOKEN = '<|endoftext|>';

/** Maps the characters of GPT-2's byte-level alphabet back to the bytes they stand for. */
const UNICODE_TO_BYTE: ReadonlyMap<string, number> = (() => {
  // Printable Latin-1 bytes stand for themselves; the other 68 bytes are shifted to U+0100 onwards, in byte order.
  const isPrintable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map = new Map<string, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) map.set(String.fromCharCode(isPrintable(b) ? b : 256 + shifted++), b);
  return map;
})();

/** What tokenizers.js reads from tokenizer_config.json; phi-1.5's CodeGen tokenizer adds no BOS. */
const TOKENIZER_CONFIG = {
  tokenizer_class: 'CodeGenTokenizer',
  add_bos_token: false,
  add_prefix_space: false,
  bos_token: EOS_TOKEN,
  eos_token: EOS_TOKEN,
  unk_token: EOS_TOKEN,
  clean_up_tokenization_spaces: false,
};

const utf8 = new TextEncoder();

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isTokenId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function byteLevelToBytes(token: string, id: number): Uint8Array {
  const bytes = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const byte = UNICODE_TO_BYTE.get(token[i]);
    if (byte === undefined) throw new Error(`vocab token ${JSON.stringify(token)} (id ${id}) is not byte-level encoded`);
    bytes[i] = byte;
  }
  return bytes;
}

/** The bytes each id stands for, indexed by id; checks that ids are dense from 0. */
function buildByteTable(json: Record<string, unknown>): Uint8Array[] {
  const model = json.model;
  if (!isRecord(model) || !isRecord(model.vocab)) throw new Error('missing model.vocab object');
  if (!Array.isArray(json.added_tokens)) throw new Error('missing added_tokens array');

  // Dense ids can't exceed the number of entries; checking up front keeps a corrupt huge id from looping.
  const vocab = Object.entries(model.vocab);
  const idLimit = vocab.length + json.added_tokens.length;
  const isValidId = (id: unknown): id is number => isTokenId(id) && id < idLimit;

  const table: Uint8Array[] = [];
  for (const [token, id] of vocab) {
    if (!isValidId(id)) throw new Error(`vocab token ${JSON.stringify(token)} has invalid id ${JSON.stringify(id)}`);
    table[id] = byteLevelToBytes(token, id);
  }
  // Added tokens are stored as plain text, not in the byte-level alphabet; they override the vocab.
  for (const added of json.added_tokens as unknown[]) {
    if (!isRecord(added) || !isValidId(added.id) || typeof added.content !== 'string') {
      throw new Error(`invalid added_tokens entry ${JSON.stringify(added)}`);
    }
    table[added.id] = utf8.encode(added.content);
  }
  for (let id = 0; id < table.length; id++) {
    if (table[id] === undefined) throw new Error(`token id ${id} is missing: ids must run from 0 without gaps`);
  }
  return table;
}

export class PhiTokenizer {
  /** Id of `<|endoftext|>`. */
  readonly eosTokenId: number;
  /** Number of token ids (ids run 0 … vocabSize - 1). */
  readonly vocabSize: number;

  private readonly hf: HfTokenizer;
  private readonly bytesById: readonly Uint8Array[];

  private constructor(json: Record<string, unknown>) {
    this.bytesById = buildByteTable(json);
    this.vocabSize = this.bytesById.length;
    this.hf = new Tokenizer(json, TOKENIZER_CONFIG);
    const eos = this.hf.token_to_id(EOS_TOKEN);
    if (eos === undefined) throw new Error(`${EOS_TOKEN} is not in the vocabulary`);
    this.eosTokenId = eos;
  }

  /** Reads a tokenizer.json; any failure is reported with the file's path and what is wrong with it. */
  static fromFile(file: string): PhiTokenizer {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read tokenizer file ${file}: ${messageOf(err)}`, { cause: err });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new Error(`tokenizer file ${file} is not valid JSON (truncated or corrupt?): ${messageOf(err)}`, { cause: err });
    }
    try {
      if (!isRecord(json)) throw new Error('top level is not a JSON object');
      return PhiTokenizer.fromJson(json);
    } catch (err) {
      throw new Error(`tokenizer file ${file} is not a usable tokenizer.json: ${messageOf(err)}`, { cause: err });
    }
  }

  /** Builds the tokenizer from a parsed tokenizer.json object (for instance buildPhiTokenizerJson()). */
  static fromJson(json: Record<string, unknown>): PhiTokenizer {
    return new PhiTokenizer(json);
  }

  /** Token ids for `text`, with no BOS added; a literal `<|endoftext|>` becomes its special id. */
  encode(text: string): number[] {
    if (text.length === 0) return [];
    return this.hf.encode(text, { add_special_tokens: false }).ids;
  }

  /** The text of `ids`; bytes that do not form valid UTF-8 become U+FFFD. */
  decode(ids: readonly number[]): string {
    const parts = ids.map((id) => this.bytesOf(id));
    const bytes = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
    let offset = 0;
    for (const part of parts) {
      bytes.set(part, offset);
      offset += part.length;
    }
    return newUtf8Decoder().decode(bytes);
  }

  /** The raw bytes token `id` stands for (a fresh copy; a token may hold only part of a UTF-8 character). */
  tokenBytes(id: number): Uint8Array {
    return this.bytesOf(id).slice();
  }

  private bytesOf(id: number): Uint8Array {
    const bytes = Number.isInteger(id) ? this.bytesById[id] : undefined;
    if (bytes === undefined) throw new RangeError(`token id ${id} is outside 0…${this.vocabSize - 1}`);
    return bytes;
  }
}

/** A lenient UTF-8 decoder that keeps a leading U+FEFF (the default would silently drop it as a BOM). */
export function newUtf8Decoder(): TextDecoder {
  return new TextDecoder('utf-8', { ignoreBOM: true });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
