/**
 * Issue #17: the prompt's start must stay put while the user types, so that the worker, which reuses its KV cache
 * for the longest common token prefix of this prompt and the previous one, re-reads only what was typed.
 *
 * Replays typing through buildCompletionPrompt on real Python modules (node-gyp's gyp, which npm bundles, so every
 * machine with npm has them) and counts, with the real phi-1.5 tokenizer, the tokens the worker would re-read for
 * each request: the prompt's tokens minus its common token prefix with the previous request's prompt.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { buildCompletionPrompt, type Prompt, type PromptInput } from '../../src/completion/context';
import { CHARS_PER_TOKEN, estimateTokens } from '../../src/completion/tokenEstimate';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { buildPhiTokenizerJson } from '../../src/tokenizer/tokenizerJson';

/** The provider's defaults: `phiComplete.contextTokens` and its estimate (src/completion/tokenEstimate.ts). */
const BUDGET = 1024;
const providerCount = estimateTokens;
/** The default step of the window's start, in characters: a quarter of the budget at CHARS_PER_TOKEN characters a token. */
const STEP_CHARS = (BUDGET * CHARS_PER_TOKEN) / 4;
/** Re-read tokens at the 90th percentile of requests must stay under this (a few words' worth). */
const P90_BOUND = 32;

const GYP_FILES = ['common.py', 'input.py', path.join('generator', 'make.py')];

/** node-gyp's pylib/gyp folder inside npm's own install, found from node's executable or npm's environment. */
function findGypPylib(): string | undefined {
  const bin = path.dirname(process.execPath);
  const npmDirs = [
    path.join(bin, '..', 'lib', 'node_modules', 'npm'), // Unix: <prefix>/bin/node, <prefix>/lib/node_modules/npm
    path.join(bin, 'node_modules', 'npm'), // Windows: <prefix>\node.exe, <prefix>\node_modules\npm
  ];
  // Fallbacks: npm names itself when it runs the tests; then the usual global prefixes.
  if (process.env.npm_execpath) npmDirs.push(path.join(path.dirname(process.env.npm_execpath), '..'));
  if (process.env.npm_config_prefix) npmDirs.push(path.join(process.env.npm_config_prefix, 'lib', 'node_modules', 'npm'));
  npmDirs.push('/usr/lib/node_modules/npm', '/usr/local/lib/node_modules/npm', '/opt/homebrew/lib/node_modules/npm');
  for (const npmDir of npmDirs) {
    const pylib = path.join(npmDir, 'node_modules', 'node-gyp', 'gyp', 'pylib', 'gyp');
    if (GYP_FILES.every((file) => fs.existsSync(path.join(pylib, file)))) return pylib;
  }
  return undefined;
}

const PYLIB = findGypPylib();
const SKIP = PYLIB === undefined
  ? `npm's bundled node-gyp (node_modules/node-gyp/gyp/pylib/gyp/{${GYP_FILES.join(',')}}) was not found next to ${process.execPath} nor in the usual global prefixes`
  : false;

function readModule(file: string): string {
  return fs.readFileSync(path.join(PYLIB as string, file), 'utf8').replace(/\r\n/g, '\n');
}

let tokenizerInstance: PhiTokenizer | undefined;
/** Built on first use (about a second), only when the files are there. */
function tokenizer(): PhiTokenizer {
  tokenizerInstance ??= PhiTokenizer.fromJson(buildPhiTokenizerJson());
  return tokenizerInstance;
}

interface Scenario {
  /** The module's text and the index of the line the user starts typing at. */
  readonly text: string;
  readonly firstTypedLine: number;
  readonly typedLines: number;
  readonly languageId: string;
}

/**
 * The prefixes of the requests as the user retypes `typedLines` lines from `firstTypedLine` on: one request after
 * each word (a run of non-blanks with the blanks before it), as a debounced completion fires on a pause.
 */
function typingPrefixes(scenario: Scenario): string[] {
  const lines = scenario.text.split('\n');
  const before = lines.slice(0, scenario.firstTypedLine).join('\n') + '\n';
  const typed = lines.slice(scenario.firstTypedLine, scenario.firstTypedLine + scenario.typedLines).join('\n') + '\n';
  const prefixes: string[] = [];
  for (const word of typed.matchAll(/\s*\S+/g)) prefixes.push(before + typed.slice(0, word.index + word[0].length));
  return prefixes;
}

function build(prefix: string, scenario: Scenario, overrides: Partial<PromptInput> = {}): Prompt {
  return buildCompletionPrompt({
    prefix, suffix: '', languageId: scenario.languageId, fileName: 'replay.py', tokenBudget: BUDGET, countTokens: providerCount, ...overrides,
  });
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

interface Replay {
  readonly prompts: Prompt[];
  readonly prefixes: string[];
  /** For each request after the first: tokens the worker re-reads. */
  readonly reread: number[];
}

function replay(scenario: Scenario, overrides: Partial<PromptInput> = {}): Replay {
  const prefixes = typingPrefixes(scenario);
  const prompts = prefixes.map((prefix) => build(prefix, scenario, overrides));
  const reread: number[] = [];
  let previous = tokenizer().encode(prompts[0].prompt);
  for (const { prompt } of prompts.slice(1)) {
    const ids = tokenizer().encode(prompt);
    reread.push(ids.length - commonPrefixLength(previous, ids));
    previous = ids;
  }
  return { prompts, prefixes, reread };
}

/** Nearest-rank percentile. */
function percentile(values: readonly number[], share: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(share * sorted.length) - 1)];
}

function summary(values: readonly number[]): string {
  return `p50 ${percentile(values, 0.5)}, p90 ${percentile(values, 0.9)}, max ${Math.max(...values)} re-read tokens over ${values.length} requests`;
}

/** The Python header as the issue means it: leading comments, docstring-free imports (parenthesised ones too), blank lines. */
function pythonHeader(text: string): string {
  const lines = text.split('\n');
  let end = 0;
  let inParens = false;
  for (let i = 0; i < lines.length; i++) {
    const code = lines[i].trim();
    if (inParens) inParens = !code.includes(')');
    else if (/^(import|from)\s/.test(code)) inParens = code.includes('(') && !code.includes(')');
    else if (code !== '' && !code.startsWith('#')) break;
    if (code !== '') end = i + 1;
  }
  return lines.slice(0, end).join('\n') + '\n\n';
}

/**
 * The prompt ends exactly at the cursor and starts at a line start (so the cursor line is whole), after the
 * header when it is kept; it fits the budget by `countTokens`, and it is not much shorter than the budget minus
 * the step (a line's worth of slack).
 */
function assertWellFormed(result: Prompt, prefix: string, scenario: Scenario, countTokens: (text: string) => number, minTokens: number): void {
  const { prompt } = result;
  let window = prompt;
  if (result.headerIncluded) {
    const header = pythonHeader(scenario.text);
    assert.ok(prompt.startsWith(header), 'with the header kept, the header is the prompt\'s start');
    window = prompt.slice(header.length);
  }
  assert.ok(prefix.endsWith(window), 'the prompt ends exactly at the cursor');
  const windowStart = prefix.length - window.length;
  assert.ok(windowStart === 0 || prefix[windowStart - 1] === '\n', `the window starts at a line start (offset ${windowStart})`);
  const tokens = countTokens(prompt);
  assert.ok(tokens <= BUDGET, `${tokens} tokens > budget ${BUDGET}`);
  assert.ok(tokens >= minTokens, `${tokens} tokens < ${minTokens}: the window is shorter than the budget minus the step`);
}

/** The fewest tokens a prompt may hold by the provider's count: budget − step − the longest line, in tokens. */
function minProviderTokens(text: string): number {
  const longestLine = Math.max(...text.split('\n').map((line) => line.length));
  return BUDGET - Math.ceil(STEP_CHARS / CHARS_PER_TOKEN) - Math.ceil((longestLine + 1) / CHARS_PER_TOKEN) - 1;
}

/** The first `def` at or after the middle of the module, its body's first line (inside the function). */
function lineInsideMiddleFunction(text: string): number {
  const lines = text.split('\n');
  for (let i = Math.floor(lines.length / 2); i < lines.length; i++) if (/^\s*def\s/.test(lines[i])) return i + 1;
  throw new Error('no function after the middle of the module');
}

describe('prompt stability while typing (issue #17)', { skip: SKIP }, () => {
  // Built lazily: `describe` runs its body even when skipped.
  const scenarios = (): Record<string, Scenario> => {
    const common = readModule('common.py');
    const input = readModule('input.py');
    const make = readModule(GYP_FILES[2]);
    return {
      'common.py: typing the next 20 lines after a 400-line prefix, header kept':
        { text: common, firstTypedLine: 400, typedLines: 20, languageId: 'python' },
      'input.py: typing 16 lines inside a function in the middle, header kept':
        { text: input, firstTypedLine: lineInsideMiddleFunction(input), typedLines: 16, languageId: 'python' },
      'make.py: typing the next 20 lines (small functions) after a 699-line prefix, no header (another language id)':
        { text: make, firstTypedLine: 699, typedLines: 20, languageId: 'plaintext' },
    };
  };

  test('each request re-reads only what was typed (p90 ≤ 32 tokens); prompts end at the cursor and fit the budget', (t: TestContext) => {
    for (const [name, scenario] of Object.entries(scenarios())) {
      assert.ok(scenario.firstTypedLine >= 300, `${name}: a 300+ line prefix`);
      const { prompts, prefixes, reread } = replay(scenario);
      t.diagnostic(`${name}: quantised start: ${summary(reread)}`);
      prompts.forEach((result, i) => {
        assert.equal(result.truncated, true, `${name}: the prefix outgrows the budget`);
        assert.equal(result.headerIncluded, scenario.languageId === 'python', `${name}: header kept for Python`);
        assertWellFormed(result, prefixes[i], scenario, providerCount, minProviderTokens(scenario.text));
      });
      assert.ok(percentile(reread, 0.9) <= P90_BOUND, `${name}: ${summary(reread)}`);
    }
  });

  test('without quantisation (windowStep 1, the first line that fits) the same replay fails the bound', (t: TestContext) => {
    const all = scenarios();
    for (const name of Object.keys(all)) {
      const { reread } = replay(all[name], { windowStep: 1 });
      t.diagnostic(`${name}: sliding start: ${summary(reread)}`);
      assert.ok(percentile(reread, 0.9) > P90_BOUND, `${name}: the sliding start should re-read the window often: ${summary(reread)}`);
    }
  });

  test('the same holds when the budget is counted by the real tokenizer', (t: TestContext) => {
    const text = readModule('input.py');
    const scenario: Scenario = { text, firstTypedLine: lineInsideMiddleFunction(text) + 14, typedLines: 6, languageId: 'python' };
    const realCount = (prompt: string): number => tokenizer().encode(prompt).length;
    const { prompts, prefixes, reread } = replay(scenario, { countTokens: realCount });
    t.diagnostic(`input.py, real token counts: ${summary(reread)}`);
    // The window may be up to a step (at about 3 characters a token) and a line short of the budget.
    const minTokens = BUDGET - Math.ceil(STEP_CHARS / 2.5) - 64;
    prompts.forEach((result, i) => assertWellFormed(result, prefixes[i], scenario, realCount, minTokens));
    assert.ok(percentile(reread, 0.9) <= P90_BOUND, summary(reread));
  });

  test('an edit above the cursor re-reads from the edit on; the start moves only when it must', (t: TestContext) => {
    for (const [name, scenario] of Object.entries(scenarios())) {
      const prefix = typingPrefixes(scenario).at(-1) as string;
      const lines = prefix.split('\n');
      let editLine = lines.length - 12; // inside the window, about a dozen lines above the cursor, on a word
      while (!/[A-Za-z_]\w{3,}/.test(lines[editLine])) editLine--;
      const editOffset = lines.slice(0, editLine).join('\n').length + 1; // in the prefix, unchanged by the edit
      const before = build(prefix, scenario);
      const beforeIds = tokenizer().encode(before.prompt);
      const header = before.headerIncluded ? pythonHeader(scenario.text) : '';
      const start = prefix.length - (before.prompt.length - header.length);
      assert.ok(start < editOffset, `${name}: the edited line is in the window`);

      const check = (edited: string[], what: string): void => {
        const editedPrefix = edited.join('\n');
        const after = build(editedPrefix, scenario).prompt;
        const sameStart = header + editedPrefix.slice(start);
        if (providerCount(sameStart) > BUDGET) {
          // The window no longer fits from its start: it must move, and it moves forward.
          t.diagnostic(`${name}, ${what}: the window no longer fits from its start, which moves`);
          assert.ok(after.length < sameStart.length, `${name}, ${what}: the start moves forward`);
          return;
        }
        assert.equal(after, sameStart, `${name}, ${what}: the start stays put`);
        const common = commonPrefixLength(beforeIds, tokenizer().encode(after));
        const tokensBeforeEdit = tokenizer().encode(header + prefix.slice(start, editOffset)).length;
        assert.ok(common >= tokensBeforeEdit - 2, `${name}, ${what}: ${common} tokens in common, ${tokensBeforeEdit} before the edit`);
      };

      // A typo fixed (same length): by the provider's count the window cannot have to move.
      const typo = [...lines];
      const word = /[A-Za-z_]\w{3,}/.exec(typo[editLine]);
      assert.ok(word !== null, `${name}: line ${editLine} has a word to edit`);
      typo[editLine] = typo[editLine].slice(0, word.index) + word[0].slice(0, -1) + 'Q' + typo[editLine].slice(word.index + word[0].length);
      check(typo, 'a typo fixed');
      assert.ok(providerCount(header + typo.join('\n').slice(start)) <= BUDGET);

      // A line inserted: the start stays put unless the window no longer fits from it.
      check([...lines.slice(0, editLine), '    assert value is not None, "checked above"', ...lines.slice(editLine)], 'a line inserted');
    }
  });
  test('lines inserted in a function above the window leave the window as it was (going back to it re-reads nothing)', (t: TestContext) => {
    for (const [name, scenario] of Object.entries(scenarios())) {
      const prefixes = typingPrefixes(scenario).filter((_, i) => i % 7 === 0);
      let unchanged = 0;
      for (const prefix of prefixes) {
        const before = build(prefix, scenario);
        const header = before.headerIncluded ? pythonHeader(scenario.text) : '';
        const start = prefix.length - (before.prompt.length - header.length);
        // Three lines typed into a function well above the window (as the user did before coming back here).
        const lines = prefix.split('\n');
        let at = prefix.slice(0, start).split('\n').length - 40;
        while (at > 0 && !/^\s+\S/.test(lines[at])) at--;
        assert.ok(at > header.split('\n').length, `${name}: a line to type after, above the window and below the header`);
        const indent = /^\s*/.exec(lines[at])![0];
        const inserted = [`${indent}# checked by the caller`, `${indent}if value is None:`, `${indent}    return None`];
        const edited = [...lines.slice(0, at + 1), ...inserted, ...lines.slice(at + 1)].join('\n');
        if (build(edited, scenario).prompt === before.prompt) unchanged++;
      }
      t.diagnostic(`${name}: ${unchanged} of ${prefixes.length} windows unchanged by lines typed above them`);
      // A start on an anchor line stays; one on the character grid (no anchor line within two steps) moves.
      assert.ok(unchanged >= 0.8 * prefixes.length, `${name}: ${unchanged} of ${prefixes.length} windows unchanged`);
    }
  });
});
