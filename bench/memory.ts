/**
 * npm run bench:memory: what one VS Code window's worker holds, on the full-size random int4 model (the CPU
 * catalogue build, the same as `npm run bench`): its resident memory once the model has loaded, then after reading
 * a 1,024-token window of each of 8 files (8 sequences, as 8 open editors), against the model plus the cache budget
 * (phiComplete.cacheMemoryMB, default 768 MiB) plus a stated margin. Prints one JSON summary on stdout.
 *
 *   npm run bench:memory -- [--files N] [--budget-mb MB] [--threads N]
 *
 * The margin is for what the cache budget does not count: ONNX Runtime's arenas for a pass's activations, and the
 * second copy a cache holds while it grows (GenerationRequest sizes a window before reading, so it rarely grows).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { PhiDecoder } from '../src/inference/decoder';
import { Generator } from '../src/inference/generator';
import { TOKENIZER_FILE } from '../src/model/manifest';
import { DEFAULT_CACHE_BYTES } from '../src/protocol';
import { PhiTokenizer } from '../src/tokenizer/tokenizer';
import { benchCacheDir, ensureModel } from './support/benchModel';

/** Tokens read for each file: the extension's default window. */
const WINDOW_TOKENS = 1024;
/** What the worker may hold beyond the model and the cache budget (see the module comment). */
const MARGIN_MIB = 256;
const MIB = 1024 * 1024;

/** This process's resident memory now and at its peak, in MiB (Linux /proc). */
function residentMiB(): { now: number; peak: number } {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const field = (name: string): number => Number(/(\d+) kB/.exec(status.split('\n').find((line) => line.startsWith(name)) ?? '')?.[1] ?? NaN) / 1024;
  return { now: Math.round(field('VmRSS:')), peak: Math.round(field('VmHWM:')) };
}

/** `count` different texts of at least WINDOW_TOKENS tokens: this repository's own sources, one file each. */
function fileTexts(tokenizer: PhiTokenizer, count: number): string[] {
  const root = path.join(__dirname, '../../src');
  const files = fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.ts')).sort();
  const texts: string[] = [];
  for (const name of files) {
    const text = fs.readFileSync(path.join(root, name), 'utf8');
    if (tokenizer.encode(text).length > WINDOW_TOKENS) texts.push(text);
    if (texts.length === count) return texts;
  }
  throw new Error(`only ${texts.length} source files of more than ${WINDOW_TOKENS} tokens under ${root}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { files: { type: 'string' }, 'budget-mb': { type: 'string' }, threads: { type: 'string' } } });
  const files = Number(values.files ?? 8);
  const budgetBytes = values['budget-mb'] === undefined ? DEFAULT_CACHE_BYTES : Number(values['budget-mb']) * MIB;
  const threads = Number(values.threads ?? 2);
  if (!(files >= 1) || !(budgetBytes > 0) || !(threads >= 1)) throw new Error('--files, --budget-mb and --threads must be positive numbers');

  const modelDir = ensureModel(benchCacheDir(), 'int4', undefined, 'present_rows');
  const before = residentMiB();
  const decoder = await PhiDecoder.load(modelDir, { executionProviders: ['cpu'], threads });
  const tokenizer = PhiTokenizer.fromFile(path.join(modelDir, TOKENIZER_FILE));
  const generator = new Generator(decoder, tokenizer, { cacheBudgetBytes: budgetBytes });
  try {
    // One short pass, as the worker's load does: ONNX Runtime allocates its arenas at the first run.
    await generator.generate({ prompt: 'import os\n', maxNewTokens: 1 });
    const loaded = residentMiB();
    const perFile: { file: number; windowTokens: number; cacheMiB: number; rssMiB: number }[] = [];
    for (const [i, text] of fileTexts(tokenizer, files).entries()) {
      const prompt = tokenizer.decode(tokenizer.encode(text).slice(0, WINDOW_TOKENS));
      const result = await generator.prefill({ sequence: `file:///bench/${i}.ts`, prompt, maxNewTokens: 64 });
      if (result.outcome !== 'done') throw new Error(`reading file ${i} ended ${result.outcome}`);
      perFile.push({ file: i, windowTokens: result.stats.promptTokens, cacheMiB: Math.round(generator.cacheBytes / MIB), rssMiB: residentMiB().now });
      process.stderr.write(`[bench:memory] file ${i}: caches ${Math.round(generator.cacheBytes / MIB)} MiB, resident ${residentMiB().now} MiB\n`);
    }
    const after = residentMiB();
    const limit = loaded.now + budgetBytes / MIB + MARGIN_MIB;
    process.stdout.write(`${JSON.stringify({
      modelDir,
      threads,
      files,
      cacheBudgetMiB: budgetBytes / MIB,
      rssMiB: { beforeLoad: before.now, modelLoaded: loaded.now, afterReading: after.now, peak: after.peak },
      cachesMiB: Math.round(generator.cacheBytes / MIB),
      windowsKept: generator.sequenceNames.length,
      perFile,
      check: { peakMiB: after.peak, limitMiB: Math.round(limit), rule: `model loaded + cache budget + ${MARGIN_MIB} MiB`, pass: after.peak <= limit },
    }, null, 2)}\n`);
  } finally {
    await generator.dispose();
    await decoder.dispose();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:memory: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
