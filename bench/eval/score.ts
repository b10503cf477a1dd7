/**
 * How a suggestion is scored against the text the file really has there, as CodeXGLUE's line-level completion
 * and Tabby's evaluation score it: exact match after whitespace is normalised, and edit similarity (fuzzywuzzy's
 * `fuzz.ratio`, which both use: 2·LCS / (|a| + |b|), i.e. Levenshtein with a substitution costing two edits).
 * Plus the syntax check: does the file still parse with the suggestion accepted (Python's own parser, `ast`)?
 */
import { spawnSync } from 'node:child_process';

/** Whitespace-separated pieces joined by one space: CodeXGLUE compares `pred.split() == gt.split()`. */
export function normalizeWhitespace(text: string): string {
  return text.trim().split(/\s+/).filter((piece) => piece !== '').join(' ');
}

export function exactMatch(suggestion: string, target: string): boolean {
  return normalizeWhitespace(suggestion) === normalizeWhitespace(target);
}

/** Length of the longest common subsequence of two strings (by UTF-16 unit), in O(|a|·|b|) time and O(|b|) memory. */
export function longestCommonSubsequence(a: string, b: string): number {
  const row = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = 0;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? diagonal + 1 : Math.max(above, row[j - 1]);
      diagonal = above;
    }
  }
  return row[b.length];
}

/** fuzz.ratio / 100 on the stripped strings: 1 when equal, 0 when nothing is shared; two empty strings are equal. */
export function editSimilarity(suggestion: string, target: string): number {
  const a = suggestion.trim();
  const b = target.trim();
  if (a.length + b.length === 0) return 1;
  return (2 * longestCommonSubsequence(a, b)) / (a.length + b.length);
}

/** Python source parsed by Python's `ast`, many at a time in one child process. */
export interface SyntaxChecker {
  /** For each source: whether `ast.parse` accepts it. */
  parses(sources: readonly string[]): boolean[];
  /** What does the checking, for the summary. */
  readonly method: string;
}

const PARSE_ALL = [
  'import ast, json, sys',
  'out = []',
  'for source in json.load(sys.stdin):',
  '    try:',
  '        ast.parse(source)',
  '        out.append(True)',
  '    except (SyntaxError, ValueError, RecursionError, MemoryError):',
  '        out.append(False)',
  'json.dump(out, sys.stdout)',
].join('\n');

/** Python's parser through `python` (python3 by default), or undefined when it cannot run here. */
export function pythonSyntaxChecker(python = 'python3'): SyntaxChecker | undefined {
  const version = spawnSync(python, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], { encoding: 'utf8' });
  if (version.status !== 0) return undefined;
  return {
    method: `ast.parse of Python ${version.stdout.trim()} (${python})`,
    parses(sources) {
      if (sources.length === 0) return [];
      const run = spawnSync(python, ['-c', PARSE_ALL], { input: JSON.stringify(sources), encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
      if (run.status !== 0) throw new Error(`${python} could not check syntax: ${run.stderr.trim().split('\n').at(-1) ?? `exit ${String(run.status)}`}`);
      const parsed = JSON.parse(run.stdout) as unknown;
      if (!Array.isArray(parsed) || parsed.length !== sources.length) throw new Error(`${python} answered ${run.stdout.slice(0, 80)}`);
      return parsed.map((value) => value === true);
    },
  };
}
