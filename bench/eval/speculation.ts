/**
 * Prompt-lookup speculation where it exists to help: code being edited next to its original. From held-out files,
 * functions are taken and the prompt is the file up to the end of one, then a changed copy of it cut a third of the
 * way in; the engine continues the copy with speculation on and off:
 *   edited copy    the function again, renamed (name → name_v2) and one number literal changed: "rewritten with small changes"
 *   renamed block  the function again with its most used local name replaced everywhere: "a block repeated with other names"
 * Reported: drafted and accepted tokens, tokens per forward pass, whether the output equals plain decoding, and the
 * speed-up those passes would give on the full-size model, from the bench's measured cost of a pass over n tokens.
 */
import type { PhiDecoder } from '../../src/inference/decoder';
import { COMPLETION_STOPS } from '../../src/completion/postprocess';
import { Generator } from '../../src/inference/generator';
import { GREEDY } from '../../src/inference/sampler';
import type { HeldOutFile } from './cursors';

export type EditKind = 'edited copy' | 'renamed block';

export interface EditCase {
  readonly file: string;
  readonly kind: EditKind;
  readonly prompt: string;
}

/**
 * Speed of a pass over n tokens when all n are right, relative to n one-token steps (docs/benchmarks.md,
 * `speedupWhenDraftsAreRight`, full-size phi-1.5 int4): a pass over n tokens costs n / speedup steps.
 */
export const FULL_SIZE_VERIFY_SPEEDUPS: Readonly<Record<number, number>> = { 1: 1, 2: 1.73, 3: 2.58, 5: 2.72 };

/** What a pass over `tokens` tokens costs in one-token steps, interpolated linearly between measured sizes. */
export function passCost(tokens: number, speedups: Readonly<Record<number, number>> = FULL_SIZE_VERIFY_SPEEDUPS): number {
  const sizes = Object.keys(speedups).map(Number).sort((a, b) => a - b);
  const cost = (n: number): number => n / speedups[n];
  if (speedups[tokens] !== undefined) return cost(tokens);
  const above = sizes.find((n) => n > tokens) ?? sizes[sizes.length - 1];
  const below = [...sizes].reverse().find((n) => n < tokens) ?? sizes[0];
  if (above === below) return (cost(above) * tokens) / above;
  return cost(below) + ((cost(above) - cost(below)) * (tokens - below)) / (above - below);
}

const KEYWORDS = new Set(['False', 'None', 'True', 'and', 'as', 'assert', 'async', 'await', 'break', 'class', 'continue', 'def', 'del', 'elif', 'else',
  'except', 'finally', 'for', 'from', 'global', 'if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or', 'pass', 'raise', 'return', 'try',
  'while', 'with', 'yield', 'self', 'cls', 'print', 'len', 'str', 'int', 'isinstance']);

/** Top-level and method definitions of 6–40 lines: [start, end) character offsets and the function's name. */
function functions(text: string): { start: number; end: number; name: string }[] {
  const lines = text.split('\n');
  const offsets: number[] = [];
  let offset = 0;
  for (const line of lines) {
    offsets.push(offset);
    offset += line.length + 1;
  }
  const found: { start: number; end: number; name: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const match = /^(\s*)def (\w+)\(/.exec(lines[i]);
    if (!match) continue;
    const indent = match[1].length;
    let end = i + 1;
    while (end < lines.length && (lines[end].trim() === '' || lines[end].length - lines[end].trimStart().length > indent)) end++;
    while (end > i + 1 && lines[end - 1].trim() === '') end--;
    if (end - i >= 6 && end - i <= 40) found.push({ start: offsets[i], end: offsets[end - 1] + lines[end - 1].length, name: match[2] });
  }
  return found;
}

function replaceWord(text: string, word: string, by: string): string {
  return text.replace(new RegExp(`\\b${word}\\b`, 'g'), by);
}

/** The cases from `files`: up to `count` functions, each giving both kinds, spread over the files. */
export function editCases(files: readonly HeldOutFile[], count: number): EditCase[] {
  const cases: EditCase[] = [];
  const perFile = files.map((file) => ({ file, found: functions(file.text) })).filter(({ found }) => found.length > 0);
  for (let round = 0; cases.length < 2 * count; round++) {
    const open = perFile.filter(({ found }) => found.length > round);
    if (open.length === 0) break;
    for (const { file, found } of open) {
      if (cases.length >= 2 * count) break;
      const fn = found[round];
      const original = file.text.slice(fn.start, fn.end);
      const edited = replaceWord(original, fn.name, `${fn.name}_v2`).replace(/\b(\d+)\b/, (n) => String(Number(n) + 1));
      // Names in the code, not words of its strings and docstrings.
      const code = original.replace(/("""|''')[\s\S]*?\1|"[^"\n]*"|'[^'\n]*'|#.*$/gm, '');
      const words = code.match(/\b[a-z_][a-z0-9_]*\b/g) ?? [];
      const counts = new Map<string, number>();
      for (const word of words) if (!KEYWORDS.has(word) && word !== fn.name) counts.set(word, (counts.get(word) ?? 0) + 1);
      const frequent = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
      const renamed = frequent ? replaceWord(original, frequent, `${frequent}_other`) : undefined;
      const before = file.text.slice(0, fn.end);
      for (const [kind, copy] of [['edited copy', edited], ['renamed block', renamed]] as const) {
        if (copy === undefined) continue;
        const cut = copy.split('\n');
        const head = cut.slice(0, Math.max(2, Math.ceil(cut.length / 3))).join('\n');
        cases.push({ file: file.path, kind, prompt: `${before}\n\n${head}\n` });
      }
    }
  }
  return cases;
}

export interface SpeculationSummary {
  readonly cases: number;
  readonly byKind: Record<EditKind, KindSummary>;
  readonly all: KindSummary;
  /** The full-size verify speed-ups the projection used (tokens in a pass → speed when all are right). */
  readonly verifySpeedups: Readonly<Record<number, number>>;
}

export interface KindSummary {
  readonly cases: number;
  readonly generatedTokens: number;
  readonly draftedTokens: number;
  /** Percent of drafted tokens the model accepted. */
  readonly acceptedPercent: number;
  /** Generated tokens per decode forward pass (plain decoding: 1). */
  readonly tokensPerPass: number;
  /** Cases whose speculative output equals plain decoding's. */
  readonly identical: number;
  /** Verify rows recomputed alone by the near-tie guard (each one more pass). */
  readonly recomputedRows: number;
  /** Plain decoding's steps over the cost of the speculative passes, each priced as on the full-size model. */
  readonly projectedSpeedup: number;
  /** The same without the recomputed rows' passes: what the drafts alone would give. */
  readonly projectedSpeedupWithoutRecomputes: number;
}

interface CaseRun {
  readonly kind: EditKind;
  readonly identical: boolean;
  readonly generated: number;
  readonly drafted: number;
  readonly accepted: number;
  /** Plain decoding's forward passes for the same output. */
  readonly plainSteps: number;
  /** Tokens in each decode pass of the speculative run (recomputed rows included, as 1). */
  readonly passes: readonly number[];
  readonly recomputed: number;
}

/**
 * Runs the cases on `decoder` with speculation on and off. Drafting is not paused by timing here (adaptive
 * speculation off), so acceptance is measured on every draft the context offers; the projection prices the passes.
 */
export async function measureSpeculation(decoder: PhiDecoder, generatorFor: (adaptive: boolean) => Generator, cases: readonly EditCase[], maxTokens: number,
  verifySpeedups: Readonly<Record<number, number>> = FULL_SIZE_VERIFY_SPEEDUPS, onDone?: (done: number) => void): Promise<SpeculationSummary> {
  // Every forward pass's token count, to price the decode passes (the last decodeSteps + recomputedRows of a request).
  const passSizes: number[] = [];
  const forward = decoder.forward.bind(decoder);
  decoder.forward = (tokenIds, cache, logitsFor) => {
    passSizes.push(tokenIds.length);
    return forward(tokenIds, cache, logitsFor);
  };
  const runs: CaseRun[] = [];
  try {
    for (const [i, edit] of cases.entries()) {
      const request = { prompt: edit.prompt, maxNewTokens: maxTokens, sampling: GREEDY, stop: COMPLETION_STOPS };
      const plainGenerator = generatorFor(false);
      const plain = await plainGenerator.generate({ ...request, speculative: false });
      await plainGenerator.dispose();
      const speculativeGenerator = generatorFor(false);
      passSizes.length = 0;
      const speculative = await speculativeGenerator.generate({ ...request, speculative: true });
      await speculativeGenerator.dispose();
      const { decodeSteps, recomputedRows, draftedTokens, acceptedDraftTokens, generatedTokens } = speculative.stats;
      runs.push({
        kind: edit.kind,
        identical: speculative.text === plain.text,
        generated: generatedTokens,
        drafted: draftedTokens,
        accepted: acceptedDraftTokens,
        plainSteps: plain.stats.decodeSteps,
        passes: passSizes.slice(passSizes.length - decodeSteps - recomputedRows),
        recomputed: recomputedRows,
      });
      onDone?.(i + 1);
    }
  } finally {
    decoder.forward = forward;
  }
  const summarize = (selected: readonly CaseRun[]): KindSummary => {
    const total = (pick: (run: CaseRun) => number): number => selected.reduce((sum, run) => sum + pick(run), 0);
    const passes = selected.flatMap((run) => run.passes);
    const plainSteps = total((run) => run.plainSteps);
    const cost = passes.reduce((sum, n) => sum + passCost(n, verifySpeedups), 0);
    const recomputed = total((run) => run.recomputed);
    return {
      cases: selected.length,
      generatedTokens: total((run) => run.generated),
      draftedTokens: total((run) => run.drafted),
      acceptedPercent: Math.round((1000 * total((run) => run.accepted)) / Math.max(1, total((run) => run.drafted))) / 10,
      tokensPerPass: Math.round((100 * plainSteps) / Math.max(1, passes.length)) / 100,
      identical: selected.filter((run) => run.identical).length,
      recomputedRows: recomputed,
      projectedSpeedup: Math.round((100 * plainSteps) / Math.max(1e-9, cost)) / 100,
      // A recomputed row is a one-token pass: cost 1 each.
      projectedSpeedupWithoutRecomputes: Math.round((100 * plainSteps) / Math.max(1e-9, cost - recomputed)) / 100,
    };
  };
  return {
    cases: runs.length,
    byKind: { 'edited copy': summarize(runs.filter((r) => r.kind === 'edited copy')), 'renamed block': summarize(runs.filter((r) => r.kind === 'renamed block')) },
    all: summarize(runs),
    verifySpeedups,
  };
}
