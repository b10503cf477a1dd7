/**
 * npm run bench: phi-complete's engine on a random-weight model of the full phi-1.5 shape (int4), side by side
 * with llama.cpp (node-llama-cpp) on the same weights written as a Q4_0 GGUF, same prompts, same threads.
 * Models are built once and cached under ~/.cache/phi-complete/bench (keyed by the builder's code).
 * Prints one JSON summary on stdout; progress goes to stderr.
 *
 * Options: --threads N (default 2), --decode-tokens N (default 32), --no-peer (skip llama.cpp).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { PHI_1_5 } from '../src/model/config';
import { buildModel } from '../src/model/build';
import { INT4_LAYOUT } from '../src/model/phiGraph';
import { DATA_FILE, MANIFEST_FILE, TOKENIZER_FILE } from '../src/model/manifest';
import { RandomWeights } from '../src/model/weights';
import { PhiTokenizer } from '../src/tokenizer/tokenizer';
import { measureReadBandwidth } from './bandwidth';
import type { EngineBenchRequest, EngineBenchResult } from './engineRunner';
import { benchLlamaCpp, defaultCacheDir, type LlamaCppResult } from './peers/llamaCpp';
import { writePhiGguf } from './peers/gguf';

const SEED = 1;
const INIT = 'bigram';

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** A key that changes whenever the code that writes the models changes, so a stale cached model is never used. */
function codeKey(files: readonly string[]): string {
  const hash = createHash('sha256');
  for (const file of files) hash.update(fs.readFileSync(file));
  hash.update(`${SEED}/${INIT}`);
  return hash.digest('hex').slice(0, 16);
}

function randomWeights(): RandomWeights {
  return new RandomWeights(PHI_1_5, SEED, 'phi-1_5', INIT);
}

function ensureModel(cacheDir: string): string {
  const modelCode = ['phiGraph', 'quantize', 'weights', 'rng', 'float16', 'config', 'onnx/graphBuilder'].map((name) => path.join(__dirname, `../src/model/${name}.js`));
  const dir = path.join(cacheDir, `phi-1_5-random-int4-${codeKey(modelCode)}`);
  if (!fs.existsSync(path.join(dir, MANIFEST_FILE))) {
    log(`building the full-size random int4 model into ${dir} (a few minutes, once)`);
    buildModel(randomWeights(), dir, { format: 'int4', overwrite: true });
  }
  return dir;
}

function ensureGguf(cacheDir: string, tokenizerPath: string): string {
  const key = codeKey([path.join(__dirname, 'peers/gguf.js'), path.join(__dirname, '../src/model/weights.js'), path.join(__dirname, '../src/model/rng.js')]);
  const file = path.join(cacheDir, `phi-1_5-random-q4_0-${key}.gguf`);
  if (!fs.existsSync(file)) {
    log(`writing the same weights as a Q4_0 GGUF for llama.cpp: ${file}`);
    const partial = `${file}.partial`;
    writePhiGguf(randomWeights(), tokenizerPath, partial, 'Q4_0');
    fs.renameSync(partial, file);
  }
  return file;
}

function runEngine(request: EngineBenchRequest): Promise<EngineBenchResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'engineRunner.js'), JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`engine runner exited with ${String(code)}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()!) as EngineBenchResult);
    });
  });
}

/** Code-like token ids: a Python file's tokens, repeated to the length wanted. */
function codePrompt(tokenizer: PhiTokenizer, length: number): number[] {
  const source = fs.readFileSync(path.join(__dirname, '../../src/model/quantize.ts'), 'utf8')
    .replace(/^\s*(import|export) .*$/gm, '')
    .replace(/const /g, '')
    .replace(/[{};]/g, '');
  const ids = tokenizer.encode(source);
  return Array.from({ length }, (_, i) => ids[i % ids.length]);
}

const EDITING_PROMPT = `import json
from dataclasses import dataclass


@dataclass
class Settings:
    name: str
    threads: int = 2
    temperature: float = 0.2

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "threads": self.threads, "temperature": self.temperature})

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        data = json.loads(text)
        return cls(name=data["name"], threads=data["threads"], temperature=data["temperature"])
`;

const ratio = (a: number, b: number): number => Math.round((a / b) * 100) / 100;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { threads: { type: 'string', default: '2' }, 'decode-tokens': { type: 'string', default: '32' }, 'no-peer': { type: 'boolean' } } });
  const threads = Number(values.threads);
  const decodeTokens = Number(values['decode-tokens']);
  const cacheDir = path.join(defaultCacheDir(), 'bench');
  fs.mkdirSync(cacheDir, { recursive: true });

  const modelDir = ensureModel(cacheDir);
  const tokenizerPath = path.join(modelDir, TOKENIZER_FILE);
  const tokenizer = PhiTokenizer.fromFile(tokenizerPath);
  const prompt128 = codePrompt(tokenizer, 128);
  const prompt1024 = codePrompt(tokenizer, 1024);

  log(`measuring memory bandwidth (${threads} threads)`);
  const bandwidthGBps = await measureReadBandwidth(threads);

  log('measuring phi-complete');
  const ours = await runEngine({ modelDir, threads, prompt128, prompt1024, decodeTokens, editingPrompt: EDITING_PROMPT });

  let peer: LlamaCppResult | { skipped: string };
  if (values['no-peer']) {
    peer = { skipped: '--no-peer' };
  } else {
    try {
      const ggufPath = ensureGguf(cacheDir, tokenizerPath);
      log('measuring llama.cpp');
      peer = await benchLlamaCpp({ ggufPath, threads, prompt128, prompt1024, decodeTokens });
    } catch (error) {
      peer = { skipped: (error as Error).message };
    }
  }

  // Bytes read per decoded token: every weight but the embedding table, of which one row is read.
  const { hidden_size: d, vocab_size: vocab } = PHI_1_5;
  const embeddingBlocks = d / INT4_LAYOUT.embeddingBlockSize;
  const embeddingBytes = vocab * (d / 2 + embeddingBlocks * 4 + Math.ceil(embeddingBlocks / 2)); // 4-bit codes, fp32 scales, 4-bit zero points
  const weightBytesPerToken = fs.statSync(path.join(modelDir, DATA_FILE)).size - embeddingBytes;
  const decodeLimit = (bandwidthGBps * 1e9) / weightBytesPerToken;
  const mib = (bytes: number): number => Math.round(bytes / 2 ** 20);

  const summary = {
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, threads, memoryReadBandwidthGBps: Math.round(bandwidthGBps * 10) / 10 },
    model: { shape: 'phi-1_5', weights: `int4 (MatMulNBits 4-bit blocks of ${INT4_LAYOUT.blockSize}; 4-bit embedding; ${INT4_LAYOUT.lmHeadBits}-bit lm_head); int8 KV cache`, init: INIT, dataMiB: mib(fs.statSync(path.join(modelDir, DATA_FILE)).size) },
    phiComplete: {
      prefillTokensPerSecond: { prompt128: ours.prompt128.promptTokensPerSecond, prompt1024: ours.prompt1024.promptTokensPerSecond },
      timeToFirstTokenMs: { prompt128: ours.prompt128.timeToFirstTokenMs, prompt1024: ours.prompt1024.timeToFirstTokenMs },
      decodeTokensPerSecond: { context128: ours.prompt128.decodeTokensPerSecond, context1024: ours.prompt1024.decodeTokensPerSecond },
      append8ToCached1024: ours.append8ToCached1024,
      speculative: ours.speculative,
      peakRssMiB: mib(ours.peakRssBytes),
      loadSeconds: ours.loadSeconds,
    },
    physicalLimit: {
      weightMiBReadPerToken: mib(weightBytesPerToken),
      decodeTokensPerSecondLimit: Math.round(decodeLimit * 10) / 10,
      fractionOfLimit: { context128: ratio(ours.prompt128.decodeTokensPerSecond, decodeLimit), context1024: ratio(ours.prompt1024.decodeTokensPerSecond, decodeLimit) },
    },
    llamaCpp: 'skipped' in peer ? peer : {
      release: peer.llamaCppRelease,
      prefillTokensPerSecond: { prompt128: peer.prompt128.promptTokensPerSecond, prompt1024: peer.prompt1024.promptTokensPerSecond },
      decodeTokensPerSecond: { context128: peer.prompt128.decodeTokensPerSecond, context1024: peer.prompt1024.decodeTokensPerSecond },
      peakRssMiB: mib(peer.peakRssBytes),
    },
    ratiosToLlamaCpp: 'skipped' in peer ? null : {
      decode128: ratio(ours.prompt128.decodeTokensPerSecond, peer.prompt128.decodeTokensPerSecond),
      decode1024: ratio(ours.prompt1024.decodeTokensPerSecond, peer.prompt1024.decodeTokensPerSecond),
      prefill128: ratio(ours.prompt128.promptTokensPerSecond, peer.prompt128.promptTokensPerSecond),
      prefill1024: ratio(ours.prompt1024.promptTokensPerSecond, peer.prompt1024.promptTokensPerSecond),
      peakRss: ratio(ours.peakRssBytes, peer.peakRssBytes),
    },
    targets: {
      decode128AtLeast15: ours.prompt128.decodeTokensPerSecond >= 15,
      decode1024AtLeast12: ours.prompt1024.decodeTokensPerSecond >= 12,
      append8FirstTokenAtMost400ms: ours.append8ToCached1024.timeToFirstTokenMs <= 400,
      speculativeAtLeast1_8x: ours.speculative.speedup >= 1.8,
      peakRssAtMost1_5GB: ours.peakRssBytes <= 1.5e9,
    },
  };
  process.stdout.write(`${JSON.stringify(summary, (_, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 100) / 100 : v), 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
