/** The prompt and limits for "Explain selection": phi-1.5 follows textbook question/answer layouts well. */
import { PHI_1_5 } from '../model/config';

/** Selections longer than this are cut (a long selection gets a vague explanation, and the answer needs room too). */
export const MAX_EXPLAIN_CHARS = 4000;

export const EXPLAIN_STOPS = ['\nQuestion:', '\nExercise:', '\n\n\n\n'];

/** What the model reads in all, prompt and explanation together (every catalogued model is phi-1.5). */
export const EXPLAIN_CONTEXT_TOKENS = PHI_1_5.max_position_embeddings;

/** The prompt's own words around the selection, in tokens: 29 with "python", rounded up for longer language ids. */
const TEMPLATE_TOKENS = 40;

/**
 * Characters per token of code, as low as real code goes (so that a cut selection fits, or the worker would cut the
 * prompt's start, 256 tokens at a time): phi's tokenizer reads typical code at 3.4–3.9 characters a token, tables of
 * numbers (Python's colorsys.py) at 2.2.
 */
const CHARS_PER_TOKEN = 2.2;

/** Room the selection always keeps: an explain.maxTokens that would leave less is lowered, with a warning. */
const MIN_SELECTION_TOKENS = 256;

/** The longest explanation that leaves the selection its room. */
export const MAX_USEFUL_EXPLAIN_TOKENS = EXPLAIN_CONTEXT_TOKENS - TEMPLATE_TOKENS - MIN_SELECTION_TOKENS;

/** The prompt for `code`, cut to its first `maxChars` characters (at a line end) when longer. */
export function buildExplainPrompt(code: string, languageId: string, maxChars = MAX_EXPLAIN_CHARS): { prompt: string; truncated: boolean } {
  const normalised = code.replace(/\r\n/g, '\n').trimEnd();
  const truncated = normalised.length > maxChars;
  const shown = truncated ? normalised.slice(0, normalised.lastIndexOf('\n', maxChars) + 1 || maxChars) : normalised;
  const fence = '```';
  return {
    prompt: `${fence}${languageId}\n${shown}\n${fence}\n\nQuestion: What does the code above do? Explain it clearly, step by step.\nAnswer:`,
    truncated,
  };
}

/** An explanation's first request, fitted into the model's context. */
export interface ExplainPlan {
  readonly prompt: string;
  /** The selection was cut to its first part. */
  readonly truncated: boolean;
  /** Tokens the explanation may take: explain.maxTokens, less where the selection needs the room. */
  readonly maxNewTokens: number;
  /** The tokens the prompt is expected to take (an estimate on the cautious side). */
  readonly promptTokens: number;
}

/**
 * Fits selection and explanation into the model's context together: the selection is cut to the room
 * explain.maxTokens leaves it (never below MIN_SELECTION_TOKENS), and the explanation gets at most the room the
 * selection leaves. Without this the worker would cut the prompt's start (the code) to make room for the answer.
 */
export function planExplanation(code: string, languageId: string, maxTokens: number): ExplainPlan {
  const selectionRoom = Math.max(MIN_SELECTION_TOKENS, EXPLAIN_CONTEXT_TOKENS - TEMPLATE_TOKENS - maxTokens);
  const { prompt, truncated } = buildExplainPrompt(code, languageId, Math.min(MAX_EXPLAIN_CHARS, Math.floor(selectionRoom * CHARS_PER_TOKEN)));
  const selectionChars = prompt.length - buildExplainPrompt('', languageId).prompt.length;
  const promptTokens = TEMPLATE_TOKENS + Math.ceil(selectionChars / CHARS_PER_TOKEN);
  const maxNewTokens = Math.max(1, Math.min(maxTokens, EXPLAIN_CONTEXT_TOKENS - promptTokens));
  return { prompt, truncated, maxNewTokens, promptTokens };
}
