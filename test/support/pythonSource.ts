/**
 * A generated Python module of a given size, the same for a seed: a header (module docstring, imports), then
 * classes and functions with comments, docstrings, blank lines and lines of varied length. For the tests of what
 * completions read in large files and the benchmark of the host's work per keystroke (bench/host.ts).
 */
import { mulberry32 } from '../../src/util/rng';

const NAMES = ['value', 'total', 'items', 'record', 'index', 'count', 'buffer', 'result', 'offset', 'config', 'parser', 'node'];
const CALLS = ['len', 'sum', 'sorted', 'max', 'min', 'list', 'dict', 'str', 'int', 'round'];

/** About `chars` characters of Python (a little more: whole functions), LF line ends. */
export function generatedPython(chars: number, seed = 1): string {
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const name = (): string => `${pick(NAMES)}_${Math.floor(random() * 1000)}`;
  const parts = ['"""Generated module: records and their totals."""\n', 'import os\nimport re\nfrom typing import Dict, List\n', '\n\n'];
  let length = parts.reduce((sum, part) => sum + part.length, 0);
  for (let index = 0; length < chars; index++) {
    const lines: string[] = [];
    const inClass = index % 5 === 0;
    const indent = inClass ? '    ' : '';
    if (inClass) lines.push(`class Model${index}:`, `    """A model of ${pick(NAMES)} ${index}."""`, '');
    lines.push(`${indent}def ${name()}(${inClass ? 'self, ' : ''}${name()}, ${name()}=None):`);
    if (random() < 0.5) lines.push(`${indent}    # ${'why '.repeat(1 + Math.floor(random() * 12)).trim()}`);
    const statements = 2 + Math.floor(random() * 8);
    for (let s = 0; s < statements; s++) {
      const roll = random();
      if (roll < 0.2) lines.push(`${indent}    if ${name()} > ${Math.floor(random() * 100)}:`, `${indent}        ${name()} = ${pick(CALLS)}(${name()})`);
      else if (roll < 0.3) lines.push('');
      else if (roll < 0.4) lines.push(`${indent}    ${name()} = [${Array.from({ length: 1 + Math.floor(random() * 20) }, () => Math.floor(random() * 1e4)).join(', ')}]`);
      else lines.push(`${indent}    ${name()} = ${pick(CALLS)}(${name()}) + ${pick(CALLS)}(${name()})`);
    }
    lines.push(`${indent}    return ${name()}`, '', '');
    const text = lines.join('\n');
    parts.push(text);
    length += text.length;
  }
  return parts.join('');
}
