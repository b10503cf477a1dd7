/**
 * npm run bench: phi-complete's engine on a random-weight model of the full phi-1.5 shape (int4), side by side
 * with llama.cpp (node-llama-cpp) on the same weights written as a Q4_0 GGUF, same prompts, same threads.
 * Models are built once and cached under ~/.cache/phi-complete/bench (keyed by the builder's code).
 * Prints one JSON summary on stdout; progress goes to stderr.
 *
 * Also side by side: transformers.js (@huggingface/transformers) running the same int4 weights in our graph
 * (Optimum layout, float cache) with its own generation loop.
 *
 * Decode and prefill speed against llama.cpp are also measured head to head: both engines loaded, alternating
 * rounds (--rounds), the memory bandwidth (decode's limit) and the int8 compute throughput (prefill's, bench/compute.ts)
 * measured before each round.
 *
 * Options: --threads N (default 2), --decode-tokens N (default 32), --no-peer (skip both peers), --rounds N
 * (head-to-head rounds, default 5; 0 skips them; each round prefills the 256-token prompt, the first
 * --long-prefill-rounds N (default 3) the 1,024-token one too), --chunk-repeats N (our prefill at 32, 64, 128
 * and 256 tokens a pass, N alternating runs each; default 3, 0 skips it),
 * --device cpu|cuda|webgpu|… (where our engine runs; default cpu), --format int4|fp16 and --kv-cache int8|float
 * (our model's weights and cache; default int4 with the builder's default cache), --kv-outputs present_settled|present
 * (graphs whose cache stays on a GPU, see KvOutputs; they need a float cache). The peers always run on the CPU.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { PHI_1_5 } from '../src/model/config';
import { INT4_LAYOUT } from '../src/model/manifest';
import { DATA_FILE, KV_CACHE_FORMATS, KV_OUTPUTS, kvCacheOf, kvOutputsNeedFloatCache, kvOutputsOf, readManifest, TOKENIZER_FILE, type KvCacheFormat, type KvOutputs, type WeightFormat } from '../src/model/manifest';
import { DEVICES, type Device } from '../src/protocol';
import { PhiTokenizer } from '../src/tokenizer/tokenizer';
import { measureReadBandwidth } from './bandwidth';
import { measureInt8Throughput, prefillOpsPerToken, startComputeProbe, theoreticalInt8Peak, type Int8Throughput } from './compute';
import type { EngineBenchRequest, EngineBenchResult, EngineRoundsRequest } from './engineRunner';
import { benchLlamaCpp, startLlamaCppRounds, type LlamaCppResult } from './peers/llamaCpp';
import { benchTransformersJs, ensureTransformersJsModel, type TransformersJsResult } from './peers/transformersJs';
import { benchCacheDir, ensureGguf, ensureModel } from './support/benchModel';
import { BENCH_INIT } from './support/benchWeights';
import { roundsRequest, runJsonChild, startRoundsChild, type DecodeRound, type PrefillRun, type PromptRunResult, type RoundsChild } from './support/child';
import { median } from './support/median';
import { codePrompt } from './support/prompts';
import { ggufBytesReadPerToken } from './peers/gguf';

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** Bytes of the embedding table in the model's data file: decoding reads one row of it, not all. */
function embeddingBytes(format: WeightFormat): number {
  const { hidden_size: d, vocab_size: vocab } = PHI_1_5;
  if (format === 'fp16') return vocab * d * 2;
  if (format === 'fp32') return vocab * d * 4;
  const blocks = d / INT4_LAYOUT.embeddingBlockSize;
  return vocab * (d / 2 + blocks * 4 + Math.ceil(blocks / 2)); // 4-bit codes, fp32 scales, 4-bit zero points
}

function option<T extends string>(value: string, allowed: readonly T[], name: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new Error(`${name} must be one of ${allowed.join(', ')} (got "${value}")`);
  return value as T;
}

const ENGINE_RUNNER = path.join(__dirname, 'engineRunner.js');

function runEngine(request: EngineBenchRequest): Promise<EngineBenchResult> {
  return runJsonChild<EngineBenchResult>(ENGINE_RUNNER, 'engine runner', request);
}

/** A prompt whose prefill both engines time, in the first `rounds` rounds. */
interface PrefillPlan {
  readonly prompt: readonly number[];
  readonly rounds: number;
}

/**
 * Decode and prefill speed, ours and a peer's, in alternating rounds with both engines loaded (which one goes first
 * alternates too). This machine's memory bandwidth drifts by up to ±15% over minutes, more than the difference
 * measured; the engines' separate runs are minutes apart, a round's two halves seconds. Before each round the memory
 * bandwidth (decode's limit) and the int8 throughput (prefill's, bench/compute.ts, in a process of its own) are measured.
 */
async function measureHeadToHead(
  ours: EngineRoundsRequest,
  startPeer: () => Promise<RoundsChild<DecodeRound>>,
  bytesPerToken: { readonly ours: number; readonly peer: number },
  prefills: readonly PrefillPlan[],
): Promise<{ readonly decode: object; readonly prefill: object }> {
  const { rounds, threads } = ours;
  const children: RoundsChild<unknown>[] = [];
  const bandwidths: number[] = [];
  const computes: Int8Throughput[] = [];
  const oursRounds: DecodeRound[] = [];
  const peerRounds: DecodeRound[] = [];
  const oursPrefills: PrefillRun[][] = prefills.map(() => []);
  const peerPrefills: PrefillRun[][] = prefills.map(() => []);
  try {
    const oursChild = await startRoundsChild<DecodeRound>(ENGINE_RUNNER, 'engine runner', ours);
    children.push(oursChild);
    const peerChild = await startPeer();
    children.push(peerChild);
    const compute = prefills.length > 0 ? await startComputeProbe(threads) : undefined;
    if (compute) children.push(compute);
    for (let round = 0; round < rounds; round++) {
      bandwidths.push(await measureReadBandwidth(threads));
      if (compute) computes.push(await compute.next());
      const order = [{ child: oursChild, decode: oursRounds, prefill: oursPrefills }, { child: peerChild, decode: peerRounds, prefill: peerPrefills }];
      if (round % 2 === 1) order.reverse();
      for (const engine of order) engine.decode.push(await engine.child.next());
      for (const [i, plan] of prefills.entries()) {
        if (round >= plan.rounds) continue;
        for (const engine of order) engine.prefill[i].push(await engine.child.prefill(i));
      }
    }
  } finally {
    await Promise.all(children.map((child) => child.close()));
  }
  const byContext = (runs: DecodeRound[], context: keyof DecodeRound): number[] => runs.map((run) => Math.round(run[context] * 10) / 10);
  const ratios = (context: keyof DecodeRound): number[] => oursRounds.map((run, i) => ratio(run[context], peerRounds[i][context]));
  // Each engine's decode speed as a fraction of what the round's bandwidth allows for the bytes it reads a token.
  const fractions = (runs: DecodeRound[], bytes: number, context: keyof DecodeRound): number =>
    median(runs.map((run, i) => (run[context] * bytes) / (bandwidths[i] * 1e9)));
  const decode = {
    rounds,
    decodeTokensPerRound: ours.decodeTokens,
    memoryReadBandwidthGBps: bandwidths.map((gbps) => Math.round(gbps * 10) / 10),
    phiCompleteTokensPerSecond: { context128: byContext(oursRounds, 'context128'), context1024: byContext(oursRounds, 'context1024') },
    peerTokensPerSecond: { context128: byContext(peerRounds, 'context128'), context1024: byContext(peerRounds, 'context1024') },
    ratioPerRound: { context128: ratios('context128'), context1024: ratios('context1024') },
    medianRatio: { decode128: median(ratios('context128')), decode1024: median(ratios('context1024')) },
    medianFractionOfLimit: {
      phiComplete: { context128: fractions(oursRounds, bytesPerToken.ours, 'context128'), context1024: fractions(oursRounds, bytesPerToken.ours, 'context1024') },
      peer: { context128: fractions(peerRounds, bytesPerToken.peer, 'context128'), context1024: fractions(peerRounds, bytesPerToken.peer, 'context1024') },
    },
  };
  return { decode, prefill: prefillHeadToHead(prefills, oursPrefills, peerPrefills, computes) };
}

/**
 * The head-to-head prefill figures: tokens/s per round and their ratio; each engine's operations a second (tokens/s
 * × operations a token) as a fraction of the round's measured int8 limit (MatMulInteger), and of our own kernel's at
 * a chunk's 32 rows. `oursPrefills[i]`, `peerPrefills[i]`: the runs of `prefills[i]`, one a round.
 */
function prefillHeadToHead(prefills: readonly PrefillPlan[], oursPrefills: PrefillRun[][], peerPrefills: PrefillRun[][], computes: readonly Int8Throughput[]): object {
  const key = (plan: PrefillPlan): string => `prompt${plan.prompt.length}`;
  const perPrompt = <T>(value: (i: number, plan: PrefillPlan) => T): Record<string, T> => Object.fromEntries(prefills.map((plan, i) => [key(plan), value(i, plan)]));
  const speedsOf = (runs: PrefillRun[]): number[] => runs.map((run) => Math.round(run.tokensPerSecond * 10) / 10);
  const prefillRatios = (i: number): number[] => oursPrefills[i].map((run, r) => ratio(run.tokensPerSecond, peerPrefills[i][r].tokensPerSecond));
  const opsPerToken = (plan: PrefillPlan): number => prefillOpsPerToken(PHI_1_5, plan.prompt.length);
  const ofLimit = (runs: PrefillRun[], plan: PrefillPlan, limit: (c: Int8Throughput) => number): number =>
    median(runs.map((run, r) => (run.tokensPerSecond * opsPerToken(plan)) / (limit(computes[r]) * 1e9)));
  return {
    roundsPerPrompt: perPrompt((i) => oursPrefills[i].length),
    gigaOpsPerToken: perPrompt((_, plan) => opsPerToken(plan) / 1e9),
    int8GopsPerRound: {
      matMulInteger: computes.map((c) => Math.round(c.matMulInteger)),
      matMulNBits32Rows: computes.map((c) => Math.round(c.matMulNBits.rows32)),
      matMulNBits512Rows: computes.map((c) => Math.round(c.matMulNBits.rows512)),
    },
    phiCompleteTokensPerSecond: perPrompt((i) => speedsOf(oursPrefills[i])),
    peerTokensPerSecond: perPrompt((i) => speedsOf(peerPrefills[i])),
    ratioPerRound: perPrompt((i) => prefillRatios(i)),
    medianRatio: perPrompt((i) => median(prefillRatios(i))),
    medianFractionOfLimit: {
      phiComplete: perPrompt((i, plan) => ofLimit(oursPrefills[i], plan, (c) => c.matMulInteger)),
      peer: perPrompt((i, plan) => ofLimit(peerPrefills[i], plan, (c) => c.matMulInteger)),
    },
    phiCompleteMedianFractionOfMatMulNBits32Rows: perPrompt((i, plan) => ofLimit(oursPrefills[i], plan, (c) => c.matMulNBits.rows32)),
  };
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
const mib = (bytes: number): number => Math.round(bytes / 2 ** 20);

/** What every engine's run reports: timings after both prompts and its peak memory. */
interface EngineRun {
  readonly prompt128: PromptRunResult;
  readonly prompt1024: PromptRunResult;
  readonly peakRssBytes: number;
}

interface Skipped {
  readonly skipped: string;
}

/** A peer's run, or why it was skipped: a peer that cannot be installed or run must not sink our own figures. */
async function measurePeer<Run>(name: string, skip: string | undefined, run: () => Promise<Run>): Promise<Run | Skipped> {
  if (skip) return { skipped: skip };
  try {
    log(`measuring ${name}`);
    return await run();
  } catch (error) {
    return { skipped: (error as Error).message };
  }
}

function speeds(run: EngineRun): object {
  return {
    prefillTokensPerSecond: { prompt128: run.prompt128.promptTokensPerSecond, prompt1024: run.prompt1024.promptTokensPerSecond },
    decodeTokensPerSecond: { context128: run.prompt128.decodeTokensPerSecond, context1024: run.prompt1024.decodeTokensPerSecond },
    peakRssMiB: mib(run.peakRssBytes),
  };
}

/** Our speed (and memory) as a multiple of a peer's, measured in the same run. */
function ratiosTo(ours: EngineRun, peer: EngineRun | Skipped): object | null {
  if ('skipped' in peer) return null;
  return {
    decode128: ratio(ours.prompt128.decodeTokensPerSecond, peer.prompt128.decodeTokensPerSecond),
    decode1024: ratio(ours.prompt1024.decodeTokensPerSecond, peer.prompt1024.decodeTokensPerSecond),
    prefill128: ratio(ours.prompt128.promptTokensPerSecond, peer.prompt128.promptTokensPerSecond),
    prefill1024: ratio(ours.prompt1024.promptTokensPerSecond, peer.prompt1024.promptTokensPerSecond),
    peakRss: ratio(ours.peakRssBytes, peer.peakRssBytes),
  };
}

/** The command line, checked. */
interface BenchOptions {
  readonly threads: number;
  readonly decodeTokens: number;
  readonly rounds: number;
  readonly longPrefillRounds: number;
  readonly chunkRepeats: number;
  readonly noPeer: boolean;
  readonly device: Exclude<Device, 'auto'>;
  readonly format: WeightFormat;
  readonly kvCache: KvCacheFormat | undefined;
  readonly kvOutputs: KvOutputs;
}

function readOptions(): BenchOptions {
  const { values } = parseArgs({
    options: {
      threads: { type: 'string', default: '2' },
      'decode-tokens': { type: 'string', default: '32' },
      'no-peer': { type: 'boolean' },
      rounds: { type: 'string', default: '5' },
      'long-prefill-rounds': { type: 'string', default: '3' },
      'chunk-repeats': { type: 'string', default: '3' },
      device: { type: 'string', default: 'cpu' },
      format: { type: 'string', default: 'int4' },
      'kv-cache': { type: 'string' },
      'kv-outputs': { type: 'string', default: 'present_rows' },
    },
  });
  const threads = Number(values.threads);
  const decodeTokens = Number(values['decode-tokens']);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 0) throw new Error(`--rounds must be an integer ≥ 0 (got "${values.rounds}")`);
  // Each round adds decodeTokens + 1 positions after the 1,024-token prompt.
  const roundsRoom = Math.floor((PHI_1_5.max_position_embeddings - 1025) / (decodeTokens + 1));
  if (rounds > roundsRoom) throw new Error(`--rounds ${rounds} with --decode-tokens ${decodeTokens} goes past the model's ${PHI_1_5.max_position_embeddings} positions (at most ${roundsRoom} rounds)`);
  const longPrefillRounds = Number(values['long-prefill-rounds']);
  const chunkRepeats = Number(values['chunk-repeats']);
  if (!Number.isInteger(longPrefillRounds) || longPrefillRounds < 0) throw new Error(`--long-prefill-rounds must be an integer ≥ 0 (got "${values['long-prefill-rounds']}")`);
  if (!Number.isInteger(chunkRepeats) || chunkRepeats < 0) throw new Error(`--chunk-repeats must be an integer ≥ 0 (got "${values['chunk-repeats']}")`);
  const device = option<Exclude<Device, 'auto'>>(values.device, DEVICES.filter((d) => d !== 'auto'), '--device');
  const format = option<WeightFormat>(values.format, ['int4', 'fp16'], '--format');
  const kvCache = values['kv-cache'] === undefined ? undefined : option<KvCacheFormat>(values['kv-cache'], KV_CACHE_FORMATS, '--kv-cache');
  const kvOutputs = option<KvOutputs>(values['kv-outputs'], KV_OUTPUTS, '--kv-outputs');
  if (kvOutputsNeedFloatCache(format, kvCache, kvOutputs)) throw new Error(`--kv-outputs ${kvOutputs} needs a float KV cache (add --kv-cache float)`);
  return { threads, decodeTokens, rounds, longPrefillRounds, chunkRepeats, noPeer: values['no-peer'] === true, device, format, kvCache, kvOutputs };
}

/** Our decode speed against what the CPU's memory bandwidth allows for the bytes a token reads, and llama.cpp's. */
function physicalLimit(device: string, bandwidthGBps: number, ours: EngineRun, weightBytesPerToken: number, llamaCpp: EngineRun | Skipped): object {
  // The CPU's memory bandwidth bounds decoding only when the weights are read by the CPU.
  if (device !== 'cpu') return { skipped: `the CPU's bandwidth does not bound decoding on ${device}` };
  const decodeLimit = (bandwidthGBps * 1e9) / weightBytesPerToken;
  const peerBytesPerToken = ggufBytesReadPerToken(PHI_1_5, 'Q4_0');
  const peerDecodeLimit = (bandwidthGBps * 1e9) / peerBytesPerToken;
  return {
    weightMiBReadPerToken: mib(weightBytesPerToken),
    decodeTokensPerSecondLimit: Math.round(decodeLimit * 10) / 10,
    fractionOfLimit: { context128: ratio(ours.prompt128.decodeTokensPerSecond, decodeLimit), context1024: ratio(ours.prompt1024.decodeTokensPerSecond, decodeLimit) },
    llamaCpp: 'skipped' in llamaCpp ? llamaCpp : {
      weightMiBReadPerToken: mib(peerBytesPerToken),
      decodeTokensPerSecondLimit: Math.round(peerDecodeLimit * 10) / 10,
      fractionOfLimit: { context128: ratio(llamaCpp.prompt128.decodeTokensPerSecond, peerDecodeLimit), context1024: ratio(llamaCpp.prompt1024.decodeTokensPerSecond, peerDecodeLimit) },
    },
  };
}

/** Prefill's limit: operations a token × tokens/s against the int8 throughput measured at the start, ours and llama.cpp's. */
function prefillComputeLimit(device: string, threads: number, int8: Int8Throughput, ours: EngineRun, llamaCpp: EngineRun | Skipped): object {
  if (device !== 'cpu') return { skipped: `the CPU's int8 throughput does not bound prefill on ${device}` };
  const fraction = (run: PromptRunResult): number => (run.promptTokensPerSecond * prefillOpsPerToken(PHI_1_5, run.promptTokens)) / (int8.matMulInteger * 1e9);
  return {
    int8GopsMeasured: Math.round(int8.matMulInteger),
    theoreticalPeak: theoreticalInt8Peak(threads),
    gigaOpsPerToken: { prompt128: prefillOpsPerToken(PHI_1_5, 128) / 1e9, prompt1024: prefillOpsPerToken(PHI_1_5, 1024) / 1e9 },
    fractionOfLimit: {
      phiComplete: { prompt128: fraction(ours.prompt128), prompt1024: fraction(ours.prompt1024) },
      llamaCpp: 'skipped' in llamaCpp ? llamaCpp : { prompt128: fraction(llamaCpp.prompt128), prompt1024: fraction(llamaCpp.prompt1024) },
    },
  };
}

/** Whether our figures meet the targets the project set itself. */
function targets(ours: EngineBenchResult): Record<string, boolean> {
  return {
    decode128AtLeast15: ours.prompt128.decodeTokensPerSecond >= 15,
    decode1024AtLeast12: ours.prompt1024.decodeTokensPerSecond >= 12,
    append8FirstTokenAtMost400ms: ours.append8ToCached1024.timeToFirstTokenMs <= 400,
    speculativeAtLeast1_8x: ours.speculative.speedup >= 1.8,
    peakRssAtMost1_5GB: ours.peakRssBytes <= 1.5e9,
  };
}

async function main(): Promise<void> {
  const { threads, decodeTokens, rounds, longPrefillRounds, chunkRepeats, noPeer, device, format, kvCache, kvOutputs } = readOptions();
  const cacheDir = benchCacheDir();
  fs.mkdirSync(cacheDir, { recursive: true });

  const modelDir = ensureModel(cacheDir, format, kvCache, kvOutputs);
  const manifest = readManifest(modelDir);
  const tokenizerPath = path.join(modelDir, TOKENIZER_FILE);
  const tokenizer = PhiTokenizer.fromFile(tokenizerPath);
  const prompt128 = codePrompt(tokenizer, 128);
  const prompt1024 = codePrompt(tokenizer, 1024);
  const prompt256 = codePrompt(tokenizer, 256);

  log(`measuring memory bandwidth (${threads} threads)`);
  const bandwidthGBps = await measureReadBandwidth(threads);
  log(`measuring int8 matrix-product throughput (${threads} threads)`);
  const int8 = await measureInt8Throughput(threads);

  log(`measuring phi-complete on ${device}`);
  const ours = await runEngine({
    modelDir, device, threads, prompt128, prompt1024, decodeTokens, editingPrompt: EDITING_PROMPT,
    ...(chunkRepeats > 0 ? { chunkComparison: { prompt: prompt256, chunks: [32, 64, 128, 256], repeats: chunkRepeats } } : {}),
  });

  const skipPeers = noPeer ? '--no-peer' : undefined;
  const llamaCpp = await measurePeer<LlamaCppResult>('llama.cpp', skipPeers, () =>
    benchLlamaCpp({ ggufPath: ensureGguf(cacheDir, tokenizerPath, log), threads, prompt128, prompt1024, decodeTokens }));
  const transformersJs = await measurePeer<TransformersJsResult>('transformers.js', skipPeers, () =>
    benchTransformersJs({ hfModelDir: ensureTransformersJsModel(cacheDir), threads, prompt128, prompt1024, decodeTokens }));

  // Bytes read per decoded token: every weight but the embedding table, of which one row is read.
  const weightBytesPerToken = fs.statSync(path.join(modelDir, DATA_FILE)).size - embeddingBytes(format);

  const prompts = { prompt128, prompt1024, decodeTokens };
  const skipHeadToHead = skipPeers ?? ('skipped' in llamaCpp ? 'llama.cpp did not run'
    : device !== 'cpu' ? `measured when both engines run on the CPU (ours ran on ${device})`
    : rounds === 0 ? '--rounds 0' : undefined);
  const prefills: PrefillPlan[] = [{ prompt: prompt256, rounds }, { prompt: prompt1024, rounds: Math.min(rounds, longPrefillRounds) }].filter((plan) => plan.rounds > 0);
  const prefillPrompts = prefills.map((plan) => plan.prompt);
  const headToHead = await measurePeer(`decode and prefill head to head with llama.cpp, ${rounds} rounds`, skipHeadToHead, () =>
    measureHeadToHead(
      roundsRequest({ modelDir, device, threads }, prompts, rounds, prefillPrompts),
      () => startLlamaCppRounds({ ggufPath: ensureGguf(cacheDir, tokenizerPath, log), threads, ...prompts, rounds, prefillPrompts }),
      { ours: weightBytesPerToken, peer: ggufBytesReadPerToken(PHI_1_5, 'Q4_0') },
      prefills,
    ));

  const weights = format === 'int4' ? `int4 (MatMulNBits 4-bit blocks of ${INT4_LAYOUT.blockSize}; 4-bit embedding; ${INT4_LAYOUT.lmHeadBits}-bit lm_head)` : format;
  const summary = {
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, threads, memoryReadBandwidthGBps: Math.round(bandwidthGBps * 10) / 10, int8Gops: int8 },
    model: { shape: 'phi-1_5', weights: `${weights}; ${kvCacheOf(manifest)} KV cache; ${kvOutputsOf(manifest)} outputs`, init: BENCH_INIT, dataMiB: mib(fs.statSync(path.join(modelDir, DATA_FILE)).size) },
    phiComplete: {
      device,
      prefillTokensPerSecond: { prompt128: ours.prompt128.promptTokensPerSecond, prompt1024: ours.prompt1024.promptTokensPerSecond },
      timeToFirstTokenMs: { prompt128: ours.prompt128.timeToFirstTokenMs, prompt1024: ours.prompt1024.timeToFirstTokenMs },
      decodeTokensPerSecond: { context128: ours.prompt128.decodeTokensPerSecond, context1024: ours.prompt1024.decodeTokensPerSecond },
      append8ToCached1024: ours.append8ToCached1024,
      speculative: ours.speculative,
      peakRssMiB: mib(ours.peakRssBytes),
      loadSeconds: ours.loadSeconds,
      prefillByChunk: ours.prefillByChunk ?? { skipped: '--chunk-repeats 0' },
    },
    physicalLimit: physicalLimit(device, bandwidthGBps, ours, weightBytesPerToken, llamaCpp),
    prefillComputeLimit: prefillComputeLimit(device, threads, int8, ours, llamaCpp),
    llamaCpp: 'skipped' in llamaCpp ? llamaCpp : { release: llamaCpp.llamaCppRelease, weights: 'Q4_0 GGUF of the same weights', ...speeds(llamaCpp) },
    ratiosToLlamaCpp: ratiosTo(ours, llamaCpp),
    decodeHeadToHeadWithLlamaCpp: 'skipped' in headToHead ? headToHead : headToHead.decode,
    prefillHeadToHeadWithLlamaCpp: 'skipped' in headToHead ? headToHead : headToHead.prefill,
    transformersJs: 'skipped' in transformersJs ? transformersJs : {
      version: transformersJs.transformersJsVersion,
      weights: 'the same int4 weights, our graph with a float cache and present.* outputs (Optimum layout)',
      logitsToKeep: transformersJs.logitsToKeep,
      ...speeds(transformersJs),
    },
    ratiosToTransformersJs: ratiosTo(ours, transformersJs),
    targets: targets(ours),
  };
  process.stdout.write(`${JSON.stringify(summary, (_, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 100) / 100 : v), 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
