/**
 * Writes phi-1.5's tokenizer.json, generated from GPT-2's vocabulary and merges on disk.
 *
 *   node out/src/tokenizer/cli.js --out models/phi-1_5/tokenizer.json
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildPhiTokenizerJson } from './tokenizerJson';

const USAGE = 'usage: node out/src/tokenizer/cli.js --out <file>';
const EXIT_USAGE = 2;

/** Returns the process exit code: 0 on success, 1 if writing fails, 2 for bad arguments. */
export function main(args: readonly string[]): number {
  let out: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      return 0;
    }
    if (arg !== '--out') return usageError(`unknown argument '${arg}'`);
    const value = args[++i];
    if (value === undefined || value.startsWith('--')) return usageError('--out needs a file path');
    out = value;
  }
  if (out === undefined) return usageError('missing required argument --out <file>');

  try {
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    fs.writeFileSync(out, JSON.stringify(buildPhiTokenizerJson()));
  } catch (err) {
    console.error(`error: could not write ${out}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  console.log(`wrote ${out}`);
  return 0;
}

function usageError(message: string): number {
  console.error(`error: ${message}\n${USAGE}`);
  return EXIT_USAGE;
}

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
