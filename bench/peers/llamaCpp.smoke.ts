/**
 * Smoke run of the llama.cpp peer at full size, by hand:
 *
 *   npx tsc -p . && node out/bench/peers/llamaCpp.smoke.js [ggufPath] [threads]
 *
 * Writes random phi-1.5-shaped weights (seed 1, flat init) as a Q4_0 GGUF (≈765 MiB; default
 * /tmp/phi-1_5-random-q4_0.gguf, reused if present), then prints benchLlamaCpp's numbers as JSON.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PHI_1_5 } from '../../src/model/config';
import { RandomWeights } from '../../src/model/weights';
import { buildPhiTokenizerJson } from '../../src/tokenizer/tokenizerJson';
import { writePhiGguf } from './gguf';
import { benchLlamaCpp } from './llamaCpp';

/** Arbitrary but valid GPT-2 token ids, spread over the vocabulary. */
function promptIds(length: number): number[] {
  return Array.from({ length }, (_, i) => (i * 7919 + 13) % 50257);
}

async function main(): Promise<void> {
  const ggufPath = process.argv[2] ?? path.join(os.tmpdir(), 'phi-1_5-random-q4_0.gguf');
  const threads = Number(process.argv[3] ?? 2);
  if (!fs.existsSync(ggufPath)) {
    const tokenizerPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'phi-tokenizer-')), 'tokenizer.json');
    fs.writeFileSync(tokenizerPath, JSON.stringify(buildPhiTokenizerJson()));
    const started = performance.now();
    writePhiGguf(new RandomWeights(PHI_1_5, 1, 'phi-1_5', 'flat'), tokenizerPath, ggufPath, 'Q4_0');
    fs.rmSync(path.dirname(tokenizerPath), { recursive: true, force: true });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.error(`wrote ${ggufPath} (${(fs.statSync(ggufPath).size / 2 ** 20).toFixed(1)} MiB) in ${seconds} s`);
  }
  const result = await benchLlamaCpp({ ggufPath, threads, prompt128: promptIds(128), prompt1024: promptIds(1024), decodeTokens: 32 });
  console.log(JSON.stringify(result, null, 2));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
