/**
 * Line completion as users meet it: for each cursor the provider's prompt, the engine's greedy continuation with the
 * provider's stop sequences and token limit, the provider's post-processing, and the suggestion's first line scored
 * against the rest of the real line (CodeXGLUE line-level; see ./score.ts). A suggestion is syntactically broken when
 * the file parses with the real line and no longer parses with the suggestion accepted in its place.
 */
import type { Generator } from '../../src/inference/generator';
import { GREEDY } from '../../src/inference/sampler';
import type { Cursor, CursorKind } from './cursors';
import { COMPLETION_STOPS } from '../../src/completion/postprocess';
import { suggestionFor } from './extensionPath';
import { editSimilarity, exactMatch, type SyntaxChecker } from './score';

export interface ScoredCompletion {
  readonly cursor: Cursor;
  readonly suggestion: string;
  readonly exact: boolean;
  readonly editSimilarity: number;
  /** undefined: not checked (no suggestion, no Python, or the real file does not parse). */
  readonly broken?: boolean;
}

export interface CompletionSummary {
  readonly cursors: number;
  /** Percent of cursors whose suggestion's first line equals the rest of the real line (whitespace normalised). */
  readonly exactMatch: number;
  /** Mean edit similarity (percent) of the suggestion's first line to the rest of the real line; '' scores 0 unless the line is empty. */
  readonly editSimilarity: number;
  /** Percent of cursors with no suggestion. */
  readonly empty: number;
  /** Percent of the checked suggestions that break the file's syntax; "not measured" without Python. */
  readonly syntaxBroken: number | 'not measured';
  readonly byKind: Record<CursorKind, { readonly cursors: number; readonly exactMatch: number; readonly editSimilarity: number }>;
}

const percent = (part: number, whole: number): number => (whole === 0 ? 0 : Math.round((1000 * part) / whole) / 10);

export function scoreCompletions(cursors: readonly Cursor[], raws: readonly string[], syntax: SyntaxChecker | undefined): ScoredCompletion[] {
  const scored = cursors.map((cursor, i) => {
    const suggestion = suggestionFor(cursor, raws[i]);
    const firstLine = suggestion.split('\n')[0];
    return { cursor, suggestion, exact: exactMatch(firstLine, cursor.target), editSimilarity: editSimilarity(firstLine, cursor.target) };
  });
  if (!syntax) return scored;
  const checked = scored.filter(({ suggestion }) => suggestion !== '');
  const sources = checked.flatMap(({ cursor, suggestion }) => [cursor.prefix + cursor.target + cursor.suffix, cursor.prefix + suggestion + cursor.suffix]);
  const parses = syntax.parses(sources);
  const broken = new Map(checked.map((entry, i) => [entry, parses[2 * i] ? !parses[2 * i + 1] : undefined]));
  return scored.map((entry) => ({ ...entry, broken: broken.get(entry) }));
}

export function summarizeCompletions(scored: readonly ScoredCompletion[], syntaxMeasured: boolean): CompletionSummary {
  const of = (entries: readonly ScoredCompletion[]) => ({
    cursors: entries.length,
    exactMatch: percent(entries.filter((e) => e.exact).length, entries.length),
    editSimilarity: percent(entries.reduce((sum, e) => sum + e.editSimilarity, 0), entries.length),
  });
  const checked = scored.filter((e) => e.broken !== undefined);
  return {
    ...of(scored),
    empty: percent(scored.filter((e) => e.suggestion === '').length, scored.length),
    syntaxBroken: syntaxMeasured ? percent(checked.filter((e) => e.broken).length, checked.length) : 'not measured',
    byKind: {
      'line-start': of(scored.filter((e) => e.cursor.kind === 'line-start')),
      'mid-line': of(scored.filter((e) => e.cursor.kind === 'mid-line')),
    },
  };
}

export interface EngineCompletionOptions {
  readonly maxTokens: number;
  readonly speculative: boolean;
  readonly onDone?: (done: number) => void;
}

/** The engine's raw continuations of the prompts (greedy, the provider's stops), each on its file's sequence. */
export async function engineCompletions(generator: Generator, cursors: readonly Cursor[], prompts: readonly string[], options: EngineCompletionOptions): Promise<{ raws: string[]; meanMs: number }> {
  const raws: string[] = [];
  const started = Date.now();
  for (const [i, cursor] of cursors.entries()) {
    const result = await generator.generate({
      prompt: prompts[i], maxNewTokens: options.maxTokens, sampling: GREEDY, stop: COMPLETION_STOPS, speculative: options.speculative, sequence: cursor.file,
    });
    raws.push(result.text);
    options.onDone?.(i + 1);
  }
  return { raws, meanMs: (Date.now() - started) / Math.max(1, cursors.length) };
}
