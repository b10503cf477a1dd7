/** The pure logic behind inline completions: the prompt, shaping the model's output, and the typing cache. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CompletionCache } from '../../src/completion/cache';
import { buildCompletionPrompt, type PromptInput } from '../../src/completion/context';
import { opensBlock, postprocessCompletion, type PostprocessInput } from '../../src/completion/postprocess';
import { CHARS_PER_TOKEN, estimateTokens } from '../../src/completion/tokenEstimate';
import { cpuTimeRatio } from '../support/cpuTime';

/** One token per character: budgets in tests are then exact character counts. */
const perChar = (text: string): number => text.length;

function prompt(prefix: string, tokenBudget: number, overrides: Partial<PromptInput> = {}): ReturnType<typeof buildCompletionPrompt> {
  return buildCompletionPrompt({ prefix, suffix: '', languageId: 'python', fileName: 'main.py', tokenBudget, countTokens: perChar, ...overrides });
}

const HEADER = [
  '#!/usr/bin/env python3',
  '# -*- coding: utf-8 -*-',
  '"""Inventory reports."""',
  '',
  'import os',
  'from dataclasses import (',
  '    dataclass,',
  '    field,',
  ')',
  'from typing import List, \\',
  '    Optional',
].join('\n');

/** No quantisation of the window's start: the most whole lines that fit (the tests of the fit search use it). */
const unquantised: Partial<PromptInput> = { windowStep: 1 };

/** `count` small functions, each 3 lines plus a blank line. */
function functions(count: number, firstIndex = 0): string {
  let text = '';
  for (let i = firstIndex; i < firstIndex + count; i++) text += `def item_${i}(stock):\n    total = stock * ${i}\n    return total\n\n`;
  return text;
}

describe('buildCompletionPrompt', () => {
  test('a prefix within budget is the prompt as it is', () => {
    const prefix = 'import os\n\ndef main():\n    return os.getcwd('; // 44 characters
    assert.deepEqual(prompt(prefix, 44), { prompt: prefix, truncated: false, headerIncluded: false });
  });

  test('CRLF becomes LF', () => {
    assert.deepEqual(prompt('import os\r\n\r\ndef main():\r\n    ', 100), {
      prompt: 'import os\n\ndef main():\n    ',
      truncated: false,
      headerIncluded: false,
    });
  });

  // With windowStep 1 (no quantisation of the window's start) the window holds the most whole lines that fit.
  test('over budget, whole lines are dropped from the start; the cursor line is kept up to the cursor', () => {
    const prefix = 'x = 1\ny = 2\nz = 3\nprint(x';
    assert.deepEqual(prompt(prefix, 18, unquantised), { prompt: 'z = 3\nprint(x', truncated: true, headerIncluded: false });
    assert.deepEqual(prompt(prefix, 19, unquantised), { prompt: 'y = 2\nz = 3\nprint(x', truncated: true, headerIncluded: false });
    assert.deepEqual(prompt(prefix, 7, unquantised), { prompt: 'print(x', truncated: true, headerIncluded: false });
  });

  test('the Python header is kept in front, then a blank line, then the lines nearest the cursor', () => {
    const cursorLine = 'def report(stock):\n    return item_29(';
    // The header with its blank line is 178 characters, within a quarter of 740; 562 remain for the rest.
    const result = prompt(`${HEADER}\n\n\n${functions(30)}${cursorLine}`, 740, unquantised);
    const expected = `${HEADER}\n\n    return total\n\n${functions(8, 22)}${cursorLine}`;
    assert.deepEqual(result, { prompt: expected, truncated: true, headerIncluded: true });
    assert.equal(expected.length, 722); // the next line up, 23 characters, would pass 740
  });

  test('a header over a quarter of the budget is dropped', () => {
    const imports = Array.from({ length: 20 }, (_, i) => `import module_${i}`).join('\n'); // 309 characters
    const result = prompt(`${imports}\n\n${functions(10)}x = item_9(`, 300, unquantised);
    // 299 characters: the last four functions, the end of the fifth-last, the cursor line.
    const expected = `    total = stock * 5\n    return total\n\n${functions(4, 6)}x = item_9(`;
    assert.deepEqual(result, { prompt: expected, truncated: true, headerIncluded: false });
  });

  test('an import still open at the cursor is no header; other languages have none', () => {
    const open = `import os\nfrom typing import (\n    List,\n${functions(3)}`;
    assert.equal(prompt(open + 'x', 40).headerIncluded, false);
    const js = `import fs from 'fs';\n\n${functions(5)}x`;
    const result = prompt(js, 80, { languageId: 'javascript' });
    const expected = '    return total\n\ndef item_4(stock):\n    total = stock * 4\n    return total\n\nx'; // 77 characters
    assert.deepEqual(result, { prompt: expected, truncated: true, headerIncluded: false });
  });

  test('a cursor line longer than the budget keeps its end', () => {
    const line = 'data = [' + Array.from({ length: 100 }, (_, i) => i).join(', ');
    const result = prompt(`import os\n${line}`, 20);
    assert.deepEqual(result, { prompt: line.slice(-20), truncated: true, headerIncluded: false });
    assert.equal(prompt('x = 1', 0).prompt, '');
  });

  test('10,000 lines: budget respected, header kept, whole lines, few token counts', () => {
    const prefix = `${HEADER}\n\n${functions(2500)}def last(stock):\n    return item_2499(`;
    assert.equal(prefix.split('\n').length, 10_014);
    let calls = 0;
    const countTokens = (text: string): number => {
      calls++;
      return Math.ceil(text.length / 4);
    };
    const result = buildCompletionPrompt({
      prefix, suffix: '\n', languageId: 'python', fileName: 'inventory.py', tokenBudget: 2048, countTokens, ...unquantised,
    });
    assert.ok(calls <= 20, `${calls} token counts`);
    assert.equal(result.truncated, true);
    assert.equal(result.headerIncluded, true);
    // The most whole lines that fit: one more (`def item_2377(stock):`, 5 tokens) would pass 2048.
    const expected = `${HEADER}\n\n    total = stock * 2377\n    return total\n\n${functions(122, 2378)}def last(stock):\n    return item_2499(`;
    assert.equal(result.prompt, expected);
    assert.equal(countTokens(expected), 2048);
    // Speed is bounded by the number of token counts above (each over about the budget's text), not timed here.
  });

  test('uneven token density still ends within budget, with a bounded number of counts', () => {
    // Dense text (one token per character) far from the cursor, sparse text (ten characters per token) near it.
    const dense = Array.from({ length: 3000 }, (_, i) => `x${i}=(${i})`).join('\n');
    const sparse = Array.from({ length: 3000 }, (_, i) => `# ${'-'.repeat(60)} ${i}`).join('\n');
    const prefix = `${dense}\n${sparse}\nvalue = `;
    const sparseStart = dense.length + 1;
    let calls = 0;
    const countTokens = (text: string): number => {
      calls++;
      const denseChars = Math.max(0, text.length - (prefix.length - sparseStart));
      return denseChars + Math.ceil((text.length - denseChars) / 10);
    };
    const result = buildCompletionPrompt({ prefix, suffix: '', languageId: 'python', fileName: 'a.py', tokenBudget: 25_000, countTokens, ...unquantised });
    assert.ok(calls <= 10, `${calls} token counts`);
    // All the sparse lines and the last 362 dense ones: one more dense line would pass 25,000.
    const expected = `${dense.slice(dense.indexOf('x2638='))}\n${sparse}\nvalue = `;
    assert.deepEqual(result, { prompt: expected, truncated: true, headerIncluded: false }); // line 1 is code: no header
    assert.equal(countTokens(expected), 24_996);
  });

  test('quantised (the default): the window starts at an anchor line or a multiple of the step, stays put while typing, jumps forward', () => {
    const base = functions(30);
    const typed = functions(12, 30);
    for (const [windowStep, step] of [[100, 100], [undefined, 150]] as const) {
      // By default the step is a quarter of the budget at 3 characters a token (300), at most half the window: 150.
      const starts = new Set<number>();
      for (let n = 0; n <= typed.length; n++) {
        const prefix = base + typed.slice(0, n);
        const result = prompt(prefix, 400, { windowStep });
        assert.ok(prefix.endsWith(result.prompt) && result.prompt.length <= 400 && result.truncated);
        const start = prefix.length - result.prompt.length;
        assert.equal(start, expectedWindowStart(prefix, 0, step, (at) => prefix.length - at <= 400), `after ${n} characters typed`);
        assert.ok(result.prompt.length > 400 - step - 25, `${result.prompt.length} characters`); // the longest line is 24
        starts.add(start);
      }
      // The sliding start would have moved once per line typed (36 lines); anchor lines are one in 8 on average.
      const typedLines = typed.split('\n').length - 1;
      assert.ok(starts.size <= typedLines / 3, `${starts.size} starts for ${typedLines} lines typed`);
    }
  });

  test('quantised with the header: the header, then a window quantised the same way', () => {
    const base = `${HEADER}\n\n\n${functions(30)}`;
    const typed = functions(8, 30);
    const headerPart = `${HEADER}\n\n`;
    const starts = new Set<number>();
    for (let n = 0; n <= typed.length; n++) {
      const prefix = base + typed.slice(0, n);
      const result = prompt(prefix, 800, { windowStep: 60 }); // the header, 178 characters, is within a quarter
      assert.equal(result.headerIncluded, true);
      assert.ok(result.prompt.startsWith(headerPart) && result.prompt.length <= 800);
      const window = result.prompt.slice(headerPart.length);
      assert.ok(prefix.endsWith(window));
      const start = prefix.length - window.length;
      assert.equal(start, expectedWindowStart(prefix, HEADER.length + 1, 60, (at) => headerPart.length + prefix.length - at <= 800));
      starts.add(start);
    }
    assert.ok(starts.size <= Math.ceil(typed.length / 60) + 1, `${starts.size} starts for ${typed.length} characters typed`);

    // A long file with the default step and the provider's count: few token counts, the budget kept, header in front.
    const prefix = `${HEADER}\n\n${functions(2500)}def last(stock):\n    return item_2499(`;
    let calls = 0;
    const countTokens = (text: string): number => {
      calls++;
      return estimateTokens(text);
    };
    const result = buildCompletionPrompt({ prefix, suffix: '', languageId: 'python', fileName: 'inventory.py', tokenBudget: 1024, countTokens });
    assert.ok(calls <= 20, `${calls} token counts`);
    assert.ok(result.headerIncluded && result.prompt.startsWith(headerPart));
    const tokens = countTokens(result.prompt);
    const stepChars = (1024 * CHARS_PER_TOKEN) / 4; // a quarter of the budget's characters
    assert.ok(tokens <= 1024 && tokens > 1024 - stepChars / CHARS_PER_TOKEN - 10, `${tokens} tokens`);
  });
});

/**
 * The rule written out. Anchor lines: non-blank lines whose text's 32-bit FNV-1a hash, mixed by MurmurHash3's
 * finaliser, is a multiple of 8. The
 * window starts at the first anchor line from which the prompt `fits`, if that line starts within one step of
 * the first line (after `notBefore`) from which it fits; otherwise, for k = 1, 2, …, at the first non-blank line
 * starting at or after character k × step (and at or after `notBefore`), the first of them from which it fits.
 */
function expectedWindowStart(prefix: string, notBefore: number, step: number, fits: (start: number) => boolean): number {
  const cursorLineStart = prefix.lastIndexOf('\n') + 1;
  const lineStarts = [0];
  for (let at = prefix.indexOf('\n'); at >= 0; at = prefix.indexOf('\n', at + 1)) lineStarts.push(at + 1);
  const lineAt = (start: number): string => prefix.slice(start, start === cursorLineStart ? prefix.length : prefix.indexOf('\n', start));
  const isAnchor = (text: string): boolean => {
    let hash = 0x811c9dc5;
    for (const char of text) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193);
    hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b); // MurmurHash3's finaliser
    hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
    return text.trim() !== '' && ((hash ^ (hash >>> 16)) >>> 0) % 8 === 0;
  };
  const allowed = lineStarts.filter((start) => start >= notBefore);
  const firstFit = allowed.find((start) => fits(start)) ?? cursorLineStart;
  const anchor = allowed.find((start) => start >= firstFit && start <= firstFit + step && isAnchor(lineAt(start)));
  if (anchor !== undefined) return anchor;
  for (let k = 1; ; k++) {
    const offset = Math.max(notBefore, k * step);
    let at = offset > cursorLineStart ? cursorLineStart : prefix.indexOf('\n', offset - 1) + 1;
    while (at < cursorLineStart && prefix.slice(at, prefix.indexOf('\n', at)).trim() === '') at = prefix.indexOf('\n', at) + 1;
    if (fits(at)) return at;
  }
}

function shape(completion: string, prefix: string, suffix = '', overrides: Partial<PostprocessInput> = {}): string {
  return postprocessCompletion({ completion, prefix, suffix, maxLines: 12, eol: '\n', languageId: 'python', ...overrides });
}

describe('opensBlock on long cursor lines (minified or generated code; it runs on every keystroke)', () => {
  const LINES: Record<string, (n: number) => readonly [string, boolean, boolean]> = {
    'colons, then a letter': (n) => [`${':'.repeat(n)}x`, true, false],
    'a colon, spaces, then a letter': (n) => [`x:${' '.repeat(n)}y`, true, false],
    'colons and spaces before a comment with a quote': (n) => [`${': '.repeat(n / 2)}# it's`, true, false],
    'colon-space-hash runs': (n) => [`${':  #'.repeat(n / 4)}'`, true, false],
    'braces and spaces': (n) => [`${'{ '.repeat(n / 2)}x`, false, false],
    'a colon after many spaces': (n) => [`if x${' '.repeat(n)}:  # ok`, true, true],
  };
  for (const [name, line] of Object.entries(LINES)) {
    test(name, () => {
      const [text, python, opens] = line(5000);
      assert.equal(opensBlock(text, python), opens);
      const ratio = cpuTimeRatio((t: string) => opensBlock(t, python), line(5000)[0], line(20_000)[0]);
      assert.ok(ratio < 8, `20,000 characters took ${ratio.toFixed(1)} times as long as 5,000`);
    });
  }
  test('the same answers as the trailing-colon rule it replaces', () => {
    for (const [line, python, opens] of [
      ['def f(x):', true, true], ['if x:  # why', true, true], ['x = "a:"', true, false], ["d = {'a': 1}  # x:", true, true],
      ['# a comment:', true, false], ["s = 'x' # note: y", true, false], ['else :  ', true, true], ['a #x: #y', true, true],
      ['function f() {', false, true], ['f() { }', false, false], ['x:', false, false],
    ] as const) assert.equal(opensBlock(line, python), opens, JSON.stringify(line));
  });
});

describe('postprocessCompletion: block ends', () => {
  test('after `def f():` and its indentation, the body, up to the dedent to column 0', () => {
    assert.equal(shape('return a + b\n\nprint(add(1, 2))\n', 'def add(a, b):\n    '), 'return a + b');
  });

  test('at column 0 under `def f():`, the model indents the body itself', () => {
    assert.equal(shape('    return 1\n\nx = f()\n', 'def f():\n'), '    return 1');
  });

  test('at the end of `def f(x):`, a completion starting with a newline', () => {
    assert.equal(shape('\n    return x * 2\n\ny = f(3)\n', 'def f(x):'), '\n    return x * 2');
  });

  test('at the end of a complete statement, the rest of its block', () => {
    const prefix = 'def total(xs):\n    s = 0';
    const completion = '\n    for x in xs:\n        s += x\n    return s\n\n\ndef mean(xs):\n    return total(xs) / len(xs)\n';
    assert.equal(shape(completion, prefix, '\n'), '\n    for x in xs:\n        s += x\n    return s');
  });

  test('a completion that starts with a newline below an indented blank cursor line moves up onto it', () => {
    assert.equal(shape('\n    return 1\nx = 2', 'def f():\n    '), 'return 1');
    // The model dedented instead: nothing fits the block.
    assert.equal(shape('\nprint(x)', 'def f():\n    x = 1\n    '), '');
  });

  test('at column 0 of an empty line, blank lines the model puts first are kept (no indentation is left behind)', () => {
    const completion = '\n\nasync def fetch(url):\n    return await get(url)\n\n\nasync def main():\n    pass\n';
    assert.equal(shape(completion, 'import asyncio\n'), '\n\nasync def fetch(url):\n    return await get(url)');
  });

  test('a comment ending with a colon opens no block', () => {
    assert.equal(shape('x = 1\ny = 2\n', 'def f():\n    pass\n\n# Example:\n'), 'x = 1\ny = 2');
  });

  test('decorators: the decorated function and its body, then stop', () => {
    const prefix = 'import functools\n\n@functools.lru_cache(maxsize=None)\n';
    const completion = 'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n\n@functools.lru_cache\ndef other():\n    pass\n';
    assert.equal(shape(completion, prefix), 'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)');
    // At the end of the decorator line itself.
    assert.equal(shape('\ndef index():\n    return "hi"\n\n@app.route("/about")\ndef about():\n    pass', '@app.route("/")'), '\ndef index():\n    return "hi"');
  });

  test('a decorated method: one method, not the next', () => {
    const prefix = 'class User:\n    def __init__(self, name):\n        self._name = name\n\n    @property\n    ';
    const completion = 'def name(self):\n        return self._name\n\n    @name.setter\n    def name(self, value):\n        self._name = value\n';
    assert.equal(shape(completion, prefix), 'def name(self):\n        return self._name');
  });

  test('a function written at column 0 ends at the next top-level statement', () => {
    const completion = 'def g():\n    return 2\n\n\nif __name__ == "__main__":\n    g()\n';
    assert.equal(shape(completion, 'def f():\n    return 1\n\n\n'), 'def g():\n    return 2');
  });

  test('nested blocks: an `if` inside a `for` in a method', () => {
    const prefix = 'class Stats:\n    def positives(self, xs):\n        out = []\n        for x in xs:\n            if x > 0:\n                ';
    assert.equal(shape('out.append(x)\n            else:\n                continue\n        return out\n', prefix), 'out.append(x)');
    const atColon = prefix.trimEnd();
    assert.equal(shape('\n                out.append(x)\n            else:\n                continue', atColon), '\n                out.append(x)');
    // Below the `if` block, at the `for` body's level: the rest of the loop, not the method's return.
    const inLoop = 'class Stats:\n    def positives(self, xs):\n        out = []\n        for x in xs:\n            if x > 0:\n                out.append(x)\n            ';
    assert.equal(shape('elif x == 0:\n                out.append(0)\n        return out\n', inLoop), 'elif x == 0:\n                out.append(0)');
  });

  test('tabs as indentation', () => {
    assert.equal(shape('print(x)\n\treturn len(xs)\n', 'def f(xs):\n\tfor x in xs:\n\t\t'), 'print(x)');
    assert.equal(shape('return 1\n\ndef g():\n\treturn 2', 'def f():\n\t'), 'return 1');
    assert.equal(shape('\n\t\tprint(x)\n\treturn xs', 'def f(xs):\n\tfor x in xs:'), '\n\t\tprint(x)');
  });

  test('statements inside brackets and strings are not block ends', () => {
    const signature = 'def f(\n    a,\n    b,\n):\n    return a + b\n\n\ndef g():\n    pass\n';
    assert.equal(shape(signature, 'import os\n\n'), 'def f(\n    a,\n    b,\n):\n    return a + b');
    const docstring = '"""Sum.\n\nDetails at column 0.\n"""\n    return 1\nx = 2';
    assert.equal(shape(docstring, 'def f():\n    '), '"""Sum.\n\nDetails at column 0.\n"""\n    return 1');
    const call = '\n    "a",\n"b")\nz = 1';
    assert.equal(shape(call, 'def f():\n    y = g('), '\n    "a",\n"b")');
  });

  test('other languages: the generic rules (a closing brace below the block ends it)', () => {
    const prefix = 'function f() {\n  ';
    assert.equal(shape('return 1;\n}\n\nfunction g() {}', prefix, '\n', { languageId: 'javascript' }), 'return 1;');
    assert.equal(shape('\n  return 1;\n}\n', 'function f() {', '', { languageId: 'javascript' }), '\n  return 1;');
  });
});

describe('postprocessCompletion: the text around the cursor', () => {
  test('mid-line with text after the cursor: one line at most', () => {
    assert.equal(shape('compute()\ny = 2', 'x = ', ' + 1\n'), 'compute()');
    assert.equal(shape('\nvalue', 'x = ', ' + 1'), '');
  });

  test('a completion line equal to the next line below the cursor stops it', () => {
    const prefix = 'def f(xs):\n    total = 0\n    ';
    assert.equal(shape('for x in xs:\n        total += x\n    return total\n', prefix, '\n    return total\n'), 'for x in xs:\n        total += x');
    assert.equal(shape('return total', prefix, '\n\n    return total\n'), '');
  });

  test('the rest of the completion beginning the rest of the document stops it', () => {
    const prefix = 'def f(x, y):\n    x = x * 2';
    const suffix = '\n    return compute(x,\n                   y)\n';
    assert.equal(shape('\n    y = y * 2\n    return comp', prefix, suffix), '\n    y = y * 2');
    assert.equal(shape('\n    return compute(x,', prefix, suffix), '');
    // Mid-line: the suggestion stops where the suffix's text begins; the space before it stays.
    assert.equal(shape('x, a, b)', 'total = add(', 'a, b)\n'), 'x, ');
    assert.equal(shape('a, b)', 'total = add(', 'a, b)\n'), '');
  });

  test('closing brackets the suffix already supplies are dropped', () => {
    assert.equal(shape('bar))', 'print(foo(', ')'), 'bar)');
    assert.equal(shape('bar)', 'print(foo(', ')'), 'bar)');
    assert.equal(shape('data, 2)', 'result = compute(', ')\nprint(result)\n'), 'data, 2');
    assert.equal(shape('1, 2]]', 'rows = [[', ']]\n'), '1, 2');
    // Brackets inside string literals do not count.
    assert.equal(shape('name + ")")', 'print("(" + ', ')'), 'name + ")"');
    assert.equal(shape('bar))  ', 'print(foo(', ')'), 'bar)');
    // Balanced within the completion: nothing to drop.
    assert.equal(shape('len(xs))', 'print(', ')'), 'len(xs)');
    assert.equal(shape('f(x)', 'y = ', ')'), 'f(x)');
  });

  test('inside a string the editor already closed, the suggestion ends where it would close it', () => {
    assert.equal(shape('world")', 'print("hello (', '")'), 'world');
    assert.equal(shape("port']", "url = cfg['", "']"), 'port');
    assert.equal(shape('it\\"s")', 'say("', '")'), 'it\\"s');
  });

  test('empty and whitespace-only completions show nothing', () => {
    assert.equal(shape('', 'x = '), '');
    assert.equal(shape('   \n  \n', 'def f():\n    '), '');
    assert.equal(shape('\n\n', 'x = 1'), '');
    assert.equal(shape('\t', 'x = ', ')'), '');
  });

  test('trailing whitespace is trimmed on every line; blank lines only between kept lines', () => {
    assert.equal(shape('x = 1   \n\n    y = 2  \n\n\n', 'def f():\n    '), 'x = 1\n\n    y = 2');
  });

  test('at most maxLines lines; a leading newline does not count', () => {
    const body = 'a = 1\n    b = 2\n    c = 3\n    return a + b + c';
    assert.equal(shape(body, 'def f():\n    ', '', { maxLines: 2 }), 'a = 1\n    b = 2');
    assert.equal(shape('\n    b = 2\n    c = 3', 'def f():\n    a = 1', '', { maxLines: 1 }), '\n    b = 2');
    assert.equal(shape('a = 1\n\n    b = 2', 'def f():\n    ', '', { maxLines: 2 }), 'a = 1');
  });

  test('CRLF documents get CRLF suggestions', () => {
    const prefix = 'def f():\r\n    ';
    assert.equal(shape('x = 1\n    return x\n\nprint(f())', prefix, '\r\n', { eol: '\r\n' }), 'x = 1\r\n    return x');
    const suffix = '\r\n    return total\r\n';
    assert.equal(shape('for x in xs:\r\n        total += x\r\n    return total', 'def f(xs):\r\n    total = 0\r\n    ', suffix, { eol: '\r\n' }),
      'for x in xs:\r\n        total += x');
  });
});

describe('CompletionCache', () => {
  const prefix = 'def area(r):\n    ';
  // All of the text before the cursor, as completions read it from a small file.
  const set = (cache: CompletionCache, before: string, completion: string): void => cache.set({ before, beforeStart: 0 }, completion);
  const lookup = (cache: CompletionCache, before: string): string | undefined => cache.lookup({ before, beforeStart: 0 });

  test('the exact prefix gets the whole suggestion; typing into it serves the rest', () => {
    const cache = new CompletionCache();
    set(cache, prefix, 'return 3.14 * r * r');
    assert.equal(lookup(cache, prefix), 'return 3.14 * r * r');
    assert.equal(lookup(cache, prefix + 'ret'), 'urn 3.14 * r * r');
    assert.equal(lookup(cache, prefix + 'return '), '3.14 * r * r'); // accept by word
    assert.equal(lookup(cache, prefix + 'return 3.14 * r * '), 'r');
  });

  test('no answer when the typing leaves the suggestion, completes it, or the prefix is different', () => {
    const cache = new CompletionCache();
    set(cache, prefix, 'return 3.14 * r * r');
    assert.equal(lookup(cache, prefix + 'x'), undefined);
    assert.equal(lookup(cache, prefix + 'return 3.14 * r * r'), undefined);
    assert.equal(lookup(cache, 'def area(d):\n    '), undefined);
    assert.equal(lookup(cache, prefix.slice(0, -1)), undefined);
  });

  test('an empty suggestion is remembered for its exact prefix', () => {
    const cache = new CompletionCache();
    set(cache, 'x = 1\n', '');
    assert.equal(lookup(cache, 'x = 1\n'), '');
    assert.equal(lookup(cache, 'x = 1\ny'), undefined);
  });

  test('accept by line: the multi-line suggestion goes on', () => {
    const cache = new CompletionCache();
    set(cache, 'def f(xs):\n    ', 'total = 0\n    for x in xs:\n        total += x\n    return total');
    assert.equal(lookup(cache, 'def f(xs):\n    total = 0\n'), '    for x in xs:\n        total += x\n    return total');
  });

  test('the longest cached prefix wins; among equal ones the most recent', () => {
    const cache = new CompletionCache();
    set(cache, 'print(', 'len(xs))');
    set(cache, 'print(len(', 'items))');
    assert.equal(lookup(cache, 'print(len('), 'items))');
    assert.equal(lookup(cache, 'print(len(x'), 's))');
    set(cache, 'print(len(', 'rows))');
    assert.equal(lookup(cache, 'print(len('), 'rows))');
  });

  test('least recently used entries are evicted first', () => {
    const cache = new CompletionCache(2);
    set(cache, 'a = ', '1');
    set(cache, 'b = ', '2');
    assert.equal(lookup(cache, 'a = '), '1'); // a is now the most recent
    set(cache, 'c = ', '3');
    assert.equal(lookup(cache, 'b = '), undefined);
    assert.equal(lookup(cache, 'a = '), '1');
    assert.equal(lookup(cache, 'c = '), '3');
  });

  test('whole-file prefixes: the same end of file with a different beginning (within the last 4 KB) never matches', () => {
    const ending = functions(50); // longer than the verbatim tail an entry keeps, shorter than what it hashes too
    const fileA = `import os\n${ending}def main():\n    `;
    const fileB = `import re\n${ending}def main():\n    `; // same length, same last characters
    assert.equal(fileA.length, fileB.length);
    const cache = new CompletionCache();
    set(cache, fileA, 'print(os.getcwd())');
    assert.equal(lookup(cache, fileB), undefined);
    assert.equal(lookup(cache, fileB + 'print('), undefined);
    assert.equal(lookup(cache, fileA + 'print('), 'os.getcwd())');
    cache.clear();
    assert.equal(lookup(cache, fileA), undefined);
  });

  test('in a large file, where only the end of the text before the cursor is read: typing into the suggestion is served, a different text is not', () => {
    const text = functions(2000); // ≈ 110 KB: read from its end on
    const readFrom = (start: number, typed = ''): { before: string; beforeStart: number } => ({ before: text.slice(start) + typed, beforeStart: start });
    const cache = new CompletionCache();
    cache.set(readFrom(70_000), 'def main():');
    // Typing moves the start of what is read on (a window of the same length).
    assert.equal(cache.lookup(readFrom(70_004, 'def ')), 'main():');
    assert.equal(cache.lookup(readFrom(70_000)), 'def main():');
    // Edited 3 KB before the cursor, same length: not served.
    const edited = text.slice(70_000, text.length - 3000) + 'X' + text.slice(text.length - 2999);
    assert.equal(cache.lookup({ before: edited, beforeStart: 70_000 }), undefined);
  });
});
