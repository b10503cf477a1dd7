/** The bench's prompts, the same token ids for every engine. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PhiTokenizer } from '../../src/tokenizer/tokenizer';

/** Code-like token ids: a Python file's tokens, repeated to the length wanted. */
export function codePrompt(tokenizer: PhiTokenizer, length: number): number[] {
  const source = fs.readFileSync(path.join(__dirname, '../../../src/model/quantize.ts'), 'utf8')
    .replace(/^\s*(import|export) .*$/gm, '')
    .replace(/const /g, '')
    .replace(/[{};]/g, '');
  const ids = tokenizer.encode(source);
  return Array.from({ length }, (_, i) => ids[i % ids.length]);
}
