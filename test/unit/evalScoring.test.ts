/** The eval's scoring pieces (bench/eval): exact match, edit similarity, the syntax check, cursors, the extension path. */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_SETTINGS } from '../../src/settings/settings';
import { scoreCompletions, summarizeCompletions } from '../../bench/eval/completion';
import { sampleCursors, type Cursor } from '../../bench/eval/cursors';
import { cutAtStops, promptFor } from '../../bench/eval/extensionPath';
import { editSimilarity, exactMatch, longestCommonSubsequence, normalizeWhitespace, pythonSyntaxChecker } from '../../bench/eval/score';

const python = pythonSyntaxChecker();

describe('eval scoring', () => {
  it('compares whitespace-normalised text for exact match, as CodeXGLUE does', () => {
    assert.equal(normalizeWhitespace('  return  a +\tb \n'), 'return a + b');
    assert.ok(exactMatch('return a + b', 'return  a + b  '));
    assert.ok(!exactMatch('return a + c', 'return a + b'));
    assert.ok(!exactMatch('', 'x'));
  });

  it('scores edit similarity as fuzz.ratio: 2·LCS / (|a| + |b|)', () => {
    assert.equal(longestCommonSubsequence('abcde', 'ace'), 3);
    assert.equal(longestCommonSubsequence('', 'abc'), 0);
    // fuzz.ratio("this is a test", "this is a test!") is 97.
    assert.equal(Math.round(100 * editSimilarity('this is a test', 'this is a test!')), 97);
    assert.equal(editSimilarity('same', 'same'), 1);
    assert.equal(editSimilarity('abc', 'xyz'), 0);
    assert.equal(editSimilarity('', ''), 1);
    assert.equal(editSimilarity('', 'x'), 0);
  });

  it('checks syntax with Python\'s own parser', { skip: python ? false : 'python3 is not installed' }, () => {
    assert.deepEqual(python!.parses(['x = 1\n', 'def f(:\n    pass\n', 'if x:\n    y = (1,\n', '']), [true, false, false, true]);
  });
});

describe('eval extension path', () => {
  it('cuts raw text before its first stop sequence', () => {
    assert.equal(cutAtStops('    return x\n\ndef g():\n'), '    return x\n');
    assert.equal(cutAtStops('a = 1<|endoftext|>b'), 'a = 1');
    assert.equal(cutAtStops('no stop here'), 'no stop here');
  });

  it('builds the provider\'s prompt: the text before the cursor, within the budget', () => {
    const cursor: Cursor = { file: 'm.py', kind: 'mid-line', line: 2, prefix: 'import os\n\nx = os.pa', target: 'th.join(a, b)', suffix: '\nprint(x)\n' };
    assert.equal(promptFor(cursor, { settings: DEFAULT_SETTINGS }), cursor.prefix);
    const long: Cursor = { ...cursor, prefix: `import os\n\n${'y = 1\n'.repeat(400)}x = os.pa` };
    const cut = promptFor(long, { settings: { ...DEFAULT_SETTINGS, contextTokens: 64 } });
    assert.ok(cut.endsWith('x = os.pa') && cut.length < long.prefix.length && cut.startsWith('import os'), 'a long prefix keeps its header and its end');
    assert.ok(!promptFor(long, { settings: { ...DEFAULT_SETTINGS, contextTokens: 64 }, keepHeader: false }).startsWith('import os'));
  });
});

describe('eval cursors', () => {
  const text = ['import os', '', 'def f(a, b):', '    total = a + b', '    return total', '', 'class C:', '    name = "c"', ''].join('\n');
  const files = [{ path: 'a.py', text }, { path: 'b.py', text: text.replace(/total/g, 'sum_') }];

  it('samples deterministic cursors at line starts and mid-line, the rest of the line as target', () => {
    const cursors = sampleCursors(files, 8, 7);
    assert.deepEqual(cursors, sampleCursors(files, 8, 7));
    assert.equal(cursors.length, 8);
    assert.deepEqual(new Set(cursors.map((c) => c.kind)), new Set(['line-start', 'mid-line']));
    for (const cursor of cursors) {
      const file = files.find((f) => f.path === cursor.file)!;
      const line = file.text.split('\n')[cursor.line];
      assert.equal(cursor.prefix + cursor.target + cursor.suffix, file.text, 'prefix, target and suffix make the file');
      assert.ok(cursor.line > 0 && line.trim().length >= 2);
      assert.ok(cursor.suffix.startsWith('\n') || cursor.suffix === '');
      if (cursor.kind === 'line-start') assert.equal(cursor.target, line.trim());
      else assert.ok(cursor.target.length > 0 && cursor.target.length < line.trim().length, 'mid-line: something typed, something left');
    }
  });

  it('stops when every usable line is used', () => {
    assert.equal(sampleCursors(files, 100, 1).length, 10, 'five usable lines a file (not the first, not blank)');
  });

  it('keeps to lines far enough into their file when asked', () => {
    const minPrefixChars = text.indexOf('class C:');
    const cursors = sampleCursors(files, 100, 1, minPrefixChars);
    assert.equal(cursors.length, 3, 'a.py: "class C:" and the line after it; b.py (2 characters shorter above it): the line after it');
    for (const cursor of cursors) assert.ok(cursor.prefix.length >= minPrefixChars);
  });

  it('scores suggestions after the provider\'s post-processing', () => {
    const cursors: Cursor[] = [
      { file: 'a.py', kind: 'line-start', line: 4, prefix: 'def f(a, b):\n    total = a + b\n    ', target: 'return total', suffix: '\n' },
      { file: 'a.py', kind: 'mid-line', line: 1, prefix: 'def f(a, b):\n    total = a', target: ' + b', suffix: '\n    return total\n' },
      { file: 'a.py', kind: 'mid-line', line: 1, prefix: 'def f(a, b):\n    total = a', target: ' + b', suffix: '\n    return total\n' },
    ];
    // Raw model text: the right line then more; a broken expression; nothing.
    const scored = scoreCompletions(cursors, ['return total\n\n\nprint(1)', ' + (b', '\n'], python);
    assert.equal(scored[0].suggestion, 'return total');
    assert.ok(scored[0].exact);
    assert.ok(!scored[1].exact && scored[1].editSimilarity > 0);
    assert.equal(scored[2].suggestion, '');
    const summary = summarizeCompletions(scored, python !== undefined);
    assert.equal(summary.exactMatch, 33.3);
    assert.equal(summary.empty, 33.3);
    if (python) {
      assert.equal(scored[0].broken, false);
      assert.equal(scored[1].broken, true);
      assert.equal(scored[2].broken, undefined, 'no suggestion, nothing to check');
      assert.equal(summary.syntaxBroken, 50);
    } else {
      assert.equal(summary.syntaxBroken, 'not measured');
    }
  });
});
