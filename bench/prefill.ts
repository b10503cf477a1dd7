/**
 * Prefill, as the bench times it and as a tool to see where its time goes.
 *
 * timedPrefill: a prompt fed into an empty cache through the Generator (chunks of DEFAULT_PREFILL_CHUNK, as the
 * extension does), timed to its first token. prefillByChunk: the same prompt at several chunk sizes, alternating.
 *
 * Run directly, on the bench's full-size model (built if missing) or --model DIR:
 *   node out/bench/prefill.js [--threads 2] [--tokens 256] [--chunks 32,64,128,256] [--repeats 3]
 *                              [--profile [--growing-cache]] [--chunk 32] [--capacity] [--decode-profile STEPS] [--model DIR]
 * prints JSON: the prefill speed at each chunk size (alternating, median of --repeats); with --profile one
 * prefill of --tokens tokens in chunks of --chunk under ONNX Runtime's profiler, its kernel time by kind of node
 * (int4 matrix products, attention's int8 products, the int8 cache's quantisation, the rest) and what is not
 * kernel time (ONNX Runtime's scheduling, the host's work between passes) — with --growing-cache into a cache that
 * grows with the prompt instead of one sized for it first (see below); with --capacity, at each chunk size,
 * a prefill into a cache sized for the whole prompt first (as Generator.prepare sizes it: every pass attends over
 * all its slots, the unused ones masked) against one that grows with the prompt (decoder.forward's own reserve,
 * 128 slots at a time), alternating; with --decode-profile, STEPS decode steps after a context of --tokens tokens
 * under the profiler, broken down the same way (per step: the kernels, ONNX Runtime between them, the host).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { PhiDecoder } from '../src/inference/decoder';
import { DEFAULT_PREFILL_CHUNK, Generator } from '../src/inference/generator';
import { readManifest, TOKENIZER_FILE } from '../src/model/manifest';
import { PhiTokenizer } from '../src/tokenizer/tokenizer';
import { prefillOpsPerToken } from './compute';
import { benchCacheDir, ensureModel } from './support/benchModel';
import { prefillRun, type PrefillRun } from './support/child';
import { median } from './support/median';
import { codePrompt } from './support/prompts';

/**
 * `prompt` fed into an empty cache, in chunks of `prefillChunk`, timed from the call to the first token (as
 * GenerationStats.firstTokenMs, and PromptRunResult, time it). A generator of its own: nothing is reused, not even
 * a prefix copied from another sequence's cache.
 */
export async function timedPrefill(decoder: PhiDecoder, tokenizer: PhiTokenizer, prompt: readonly number[], prefillChunk = DEFAULT_PREFILL_CHUNK): Promise<PrefillRun> {
  const generator = new Generator(decoder, tokenizer, { prefillChunk });
  try {
    const result = await generator.generate({ prompt, maxNewTokens: 1 });
    if (result.stats.reusedTokens !== 0 || result.stats.truncatedTokens !== 0) throw new Error(`timedPrefill: ${result.stats.reusedTokens} tokens reused, ${result.stats.truncatedTokens} cut`);
    return prefillRun(prompt.length, result.stats.firstTokenMs);
  } finally {
    await generator.dispose();
  }
}

export interface PrefillByChunk {
  readonly promptTokens: number;
  readonly repeats: number;
  /** Per chunk size, the speed of each repeat (tokens/s). */
  readonly tokensPerSecond: Record<string, number[]>;
  /** Per chunk size, the median speed over that of the first chunk size. */
  readonly medianSpeedup: Record<string, number>;
}

/** The same prefill at each chunk size, `repeats` times, the order reversed every other repeat (this machine drifts). */
export async function prefillByChunk(decoder: PhiDecoder, tokenizer: PhiTokenizer, prompt: readonly number[], chunks: readonly number[], repeats: number): Promise<PrefillByChunk> {
  const rates = new Map<number, number[]>(chunks.map((chunk) => [chunk, []]));
  for (let repeat = 0; repeat < repeats; repeat++) {
    for (const chunk of repeat % 2 === 0 ? chunks : [...chunks].reverse()) {
      rates.get(chunk)!.push((await timedPrefill(decoder, tokenizer, prompt, chunk)).tokensPerSecond);
    }
  }
  const base = median(rates.get(chunks[0])!);
  return {
    promptTokens: prompt.length,
    repeats,
    tokensPerSecond: Object.fromEntries(chunks.map((chunk) => [String(chunk), rates.get(chunk)!])),
    medianSpeedup: Object.fromEntries(chunks.map((chunk) => [String(chunk), median(rates.get(chunk)!) / base])),
  };
}

/**
 * Milliseconds of a prefill of `prompt` in chunks of `chunk` straight through the decoder, into a cache sized for the
 * whole prompt first (`reserved`: every pass attends over all of its slots) or one that grows as the prompt goes in.
 */
async function decoderPrefillMs(decoder: PhiDecoder, prompt: readonly number[], chunk: number, reserved: boolean): Promise<number> {
  const cache = decoder.createCache();
  try {
    const started = performance.now();
    if (reserved) cache.reserve(prompt.length + 1);
    for (let start = 0; start < prompt.length; start += chunk) await decoder.forward(prompt.slice(start, start + chunk), cache, 1);
    return performance.now() - started;
  } finally {
    cache.dispose();
  }
}

/** decoderPrefillMs reserved and growing at each chunk size, `repeats` times, alternating; tokens/s. */
export async function capacityComparison(decoder: PhiDecoder, prompt: readonly number[], chunks: readonly number[], repeats: number): Promise<Record<string, { reserved: number[]; growing: number[]; medianSpeedup: number }>> {
  const runs = chunks.flatMap((chunk) => [{ chunk, reserved: true }, { chunk, reserved: false }]);
  const rates = new Map(runs.map((run) => [run, [] as number[]]));
  for (let repeat = 0; repeat < repeats; repeat++) {
    for (const run of repeat % 2 === 0 ? runs : [...runs].reverse()) rates.get(run)!.push((prompt.length * 1000) / await decoderPrefillMs(decoder, prompt, run.chunk, run.reserved));
  }
  return Object.fromEntries(chunks.map((chunk) => {
    const [reserved, growing] = runs.filter((run) => run.chunk === chunk).map((run) => rates.get(run)!);
    return [String(chunk), { reserved, growing, medianSpeedup: median(growing) / median(reserved) }];
  }));
}

// ---------------------------------------------------------------------------------------------------------------
// The profile.

/** An event of ONNX Runtime's profile (Chrome trace format; times in µs from the start of profiling). */
interface ProfileEvent {
  readonly cat: string;
  readonly name: string;
  readonly ts: number;
  readonly dur: number;
  readonly args?: { readonly op_name?: string };
}

/**
 * What kind of work a node of the optimized phi graph does, from its op type and its name ("OpType:output", the
 * graph's own output names, see src/model/phiGraph.ts, which ONNX Runtime keeps for the nodes it does not fuse).
 */
export function nodeKind(opType: string, nodeName: string): string {
  const name = nodeName.slice(nodeName.indexOf(':') + 1);
  if (opType === 'MatMulNBits') return name === 'logits' || name.includes('lm_head') ? 'lm_head (MatMulNBits, 8-bit)' : 'int4 matrix products (MatMulNBits)';
  if (opType === 'MatMulInteger') return "attention's int8 products (MatMulInteger)";
  // quantizeRows (Abs, ReduceMax, Div, Max, Div, Round, Add, Cast) and the new rows' layout in the cache.
  if (/\/value_weights\/[a-z_]+$/.test(name)) return 'int8 quantisation of the attention weights (before ·V)';
  if (/\/(query|new_key|new_value)\/[a-z_]+$/.test(name) && !name.endsWith('/bshd')) return 'int8 quantisation of the query and new keys/values';
  if (/^present_rows\.\d+\./.test(name)) return 'int8 quantisation of the query and new keys/values';
  if (opType === 'Softmax' || /\/(past_score_codes|new_score_codes|score_codes|score_sums|scores_q|scores|key_scales|masked_scores|probs|value_scales|value_weights|past_weight_codes|new_weight_codes|context_sums|context_unscaled|context)$/.test(name)) {
    return 'attention: scores, mask, softmax, scales';
  }
  if (opType === 'SkipLayerNormalization' || opType === 'LayerNormalization') return 'layer norms';
  if (opType === 'RotaryEmbedding' || opType === 'FastGelu') return 'rotary, gelu';
  return 'other (head reshapes and transposes, adds, mask, embedding)';
}

/** Where a profiled stretch of passes spent its time. */
export interface ProfileBreakdown {
  /** The passes profiled: a prefill's chunks, or decode steps. */
  readonly passes: number;
  /** The stretch as the host timed it. */
  readonly wallMs: number;
  /** Inside ONNX Runtime's runs (model_run events). */
  readonly sessionRunMs: number;
  /** Kernel time summed over nodes (with 2 threads, a kernel's time is wall time, its threads working together). */
  readonly kernelMs: number;
  /** Nodes run a pass. */
  readonly nodesPerPass: number;
  /** Kernel time by kind of node (see nodeKind), ms and share of the wall time. */
  readonly byKind: Record<string, { readonly ms: number; readonly share: number }>;
  /** The op types taking the most kernel time. */
  readonly byOpType: Record<string, { readonly ms: number; readonly share: number; readonly nodes: number }>;
  /** sessionRunMs − kernelMs: ONNX Runtime between kernels (scheduling, allocations, input/output copies). */
  readonly runtimeOverheadMs: number;
  /** wallMs − sessionRunMs: the host's work between passes (building feeds, appending the new rows to the cache, sampling). */
  readonly hostMs: number;
}

export interface PrefillProfile extends ProfileBreakdown {
  readonly promptTokens: number;
  readonly chunk: number;
  /** GOPS of the int4 matrix products alone: their operations (2 × weights × tokens) over their kernel time. */
  readonly int4MatMulGops: number;
  /** The same for each of a layer's matrices (over all layers): qkv [d → 3d], attention_out [d → d], fc1 [d → 4d], mlp_out [4d → d]. */
  readonly int4MatMulGopsByMatrix: Record<string, number>;
}

/** Runs `body` with every InferenceSession created meanwhile given `extra` options; returns the sessions made. */
async function withSessionOptions<T>(extra: ort.InferenceSession.SessionOptions, body: () => Promise<T>): Promise<{ result: T; sessions: ort.InferenceSession[] }> {
  type Create = (path: string, options?: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>;
  const target = ort.InferenceSession as unknown as { create: Create };
  const create = target.create;
  const sessions: ort.InferenceSession[] = [];
  target.create = async (file, options) => {
    const session = await create.call(ort.InferenceSession, file, { ...options, ...extra });
    sessions.push(session);
    return session;
  };
  try {
    return { result: await body(), sessions };
  } finally {
    target.create = create;
  }
}

/**
 * Loads the model under ONNX Runtime's profiler and runs `stretch`, which times its last `passes` passes (`wallMs`);
 * returns where those passes spent their time, and their kernels' events (by node name and duration).
 */
async function profileStretch(modelDir: string, threads: number, stretch: (decoder: PhiDecoder, tokenizer: PhiTokenizer) => Promise<{ wallMs: number; passes: number }>): Promise<{ breakdown: ProfileBreakdown; kernels: { node: string; kind: string; us: number }[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phi-profile-'));
  try {
    const { result: decoder, sessions } = await withSessionOptions({ enableProfiling: true, profileFilePrefix: path.join(dir, 'profile') }, () =>
      PhiDecoder.load(modelDir, { executionProviders: ['cpu'], threads }));
    let timed: { wallMs: number; passes: number };
    try {
      timed = await stretch(decoder, PhiTokenizer.fromFile(path.join(modelDir, TOKENIZER_FILE)));
      for (const session of sessions) session.endProfiling();
    } finally {
      await decoder.dispose();
    }
    const files = fs.readdirSync(dir).filter((name) => name.endsWith('.json'));
    if (files.length !== 1) throw new Error(`expected one profile in ${dir}, found ${files.length}`);
    const events = JSON.parse(fs.readFileSync(path.join(dir, files[0]), 'utf8')) as ProfileEvent[];
    const { passes, wallMs } = timed;
    const runs = events.filter((event) => event.cat === 'Session' && event.name === 'model_run').sort((a, b) => a.ts - b.ts).slice(-passes);
    if (runs.length !== passes) throw new Error(`the profile has ${runs.length} runs, not the ${passes} passes timed`);
    const inRuns = (event: ProfileEvent): boolean => runs.some((r) => event.ts >= r.ts && event.ts + event.dur <= r.ts + r.dur);
    const kernels = events.filter((event) => event.cat === 'Node' && event.name.endsWith('_kernel_time') && inRuns(event)).map((event) => {
      const node = event.name.slice(0, -'_kernel_time'.length);
      return { node, opType: event.args?.op_name ?? '?', kind: nodeKind(event.args?.op_name ?? '?', node), us: event.dur };
    });
    const byKind = new Map<string, number>();
    const byOp = new Map<string, { us: number; nodes: Set<string> }>();
    for (const { node, opType, kind, us } of kernels) {
      byKind.set(kind, (byKind.get(kind) ?? 0) + us);
      const op = byOp.get(opType) ?? { us: 0, nodes: new Set<string>() };
      op.us += us;
      op.nodes.add(node);
      byOp.set(opType, op);
    }
    const sessionRunMs = runs.reduce((sum, r) => sum + r.dur, 0) / 1000;
    const kernelMs = kernels.reduce((sum, kernel) => sum + kernel.us, 0) / 1000;
    const share = (ms: number): number => ms / wallMs;
    return {
      breakdown: {
        passes,
        wallMs,
        sessionRunMs,
        kernelMs,
        nodesPerPass: kernels.length / passes,
        byKind: Object.fromEntries([...byKind].sort((a, b) => b[1] - a[1]).map(([kind, us]) => [kind, { ms: us / 1000, share: share(us / 1000) }])),
        byOpType: Object.fromEntries([...byOp].sort((a, b) => b[1].us - a[1].us).slice(0, 16).map(([op, { us, nodes }]) => [op, { ms: us / 1000, share: share(us / 1000), nodes: nodes.size }])),
        runtimeOverheadMs: sessionRunMs - kernelMs,
        hostMs: wallMs - sessionRunMs,
      },
      kernels,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * One prefill of `prompt` in chunks of `chunk` under ONNX Runtime's profiler (after a warm-up prefill, left out of
 * the figures): through the Generator (timedPrefill), or with `growingCache` straight through the decoder into a
 * cache that grows with the prompt (see decoderPrefillMs).
 */
export async function profilePrefill(modelDir: string, threads: number, prompt: readonly number[], chunk: number, growingCache = false): Promise<PrefillProfile & { readonly growingCache: boolean }> {
  const { breakdown, kernels } = await profileStretch(modelDir, threads, async (decoder, tokenizer) => {
    await timedPrefill(decoder, tokenizer, prompt.slice(0, Math.min(prompt.length, 2 * chunk)), chunk); // warm-up
    const run = growingCache ? prefillRun(prompt.length, await decoderPrefillMs(decoder, prompt, chunk, false)) : await timedPrefill(decoder, tokenizer, prompt, chunk);
    return { wallMs: run.ms, passes: Math.ceil(prompt.length / chunk) };
  });
  let int4Us = 0;
  const byMatrix = new Map<string, number>();
  for (const { node, kind, us } of kernels) {
    if (!kind.startsWith('int4')) continue;
    int4Us += us;
    const matrix = node.slice(node.lastIndexOf('/') + 1);
    byMatrix.set(matrix, (byMatrix.get(matrix) ?? 0) + us);
  }
  const config = readManifest(modelDir).config;
  const { hidden_size: d, intermediate_size: ff, num_hidden_layers: layers } = config;
  const int4Ops = 2 * layers * (4 * d * d + 2 * d * ff) * prompt.length;
  const matrixWeights: Record<string, number> = { qkv: 3 * d * d, attention_out: d * d, fc1: d * ff, mlp_out: ff * d };
  return {
    promptTokens: prompt.length,
    chunk,
    growingCache,
    ...breakdown,
    int4MatMulGops: int4Ops / (int4Us / 1e6) / 1e9,
    int4MatMulGopsByMatrix: Object.fromEntries([...byMatrix].map(([matrix, us]) => [matrix, (2 * layers * (matrixWeights[matrix] ?? NaN) * prompt.length) / (us / 1e6) / 1e9])),
  };
}

/**
 * `steps` decode steps after `context` (read in the generator's chunks into a cache sized for both), under ONNX
 * Runtime's profiler: where a step's time goes (a decode step is one pass of ≈1,600 nodes, most of them small).
 */
export async function profileDecode(modelDir: string, threads: number, context: readonly number[], steps: number): Promise<ProfileBreakdown & { readonly contextTokens: number; readonly msPerStep: number }> {
  const { breakdown } = await profileStretch(modelDir, threads, async (decoder) => {
    const cache = decoder.createCache();
    try {
      cache.reserve(context.length + steps);
      for (let start = 0; start < context.length; start += DEFAULT_PREFILL_CHUNK) await decoder.forward(context.slice(start, start + DEFAULT_PREFILL_CHUNK), cache, 1);
      const started = performance.now();
      for (let step = 0; step < steps; step++) await decoder.forward([context[step % context.length]], cache, 1);
      return { wallMs: performance.now() - started, passes: steps };
    } finally {
      cache.dispose();
    }
  });
  return { contextTokens: context.length, msPerStep: breakdown.wallMs / steps, ...breakdown };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      threads: { type: 'string', default: '2' },
      tokens: { type: 'string', default: '256' },
      chunks: { type: 'string', default: '32,64,128,256' },
      repeats: { type: 'string', default: '3' },
      profile: { type: 'boolean' },
      chunk: { type: 'string', default: String(DEFAULT_PREFILL_CHUNK) },
      capacity: { type: 'boolean' },
      'growing-cache': { type: 'boolean' },
      'decode-profile': { type: 'string' },
      model: { type: 'string' },
    },
  });
  const threads = Number(values.threads);
  const tokens = Number(values.tokens);
  const chunks = values.chunks.split(',').filter(Boolean).map(Number);
  const repeats = Number(values.repeats);
  const modelDir = values.model ?? ensureModel(benchCacheDir(), 'int4', undefined, 'present_rows');
  const tokenizer = PhiTokenizer.fromFile(path.join(modelDir, TOKENIZER_FILE));
  const prompt = codePrompt(tokenizer, tokens);
  const config = readManifest(modelDir).config;
  const output: Record<string, unknown> = { modelDir, threads, promptTokens: tokens, gigaOpsPerToken: prefillOpsPerToken(config, tokens) / 1e9 };
  if (chunks.length > 0 && repeats > 0) {
    const decoder = await PhiDecoder.load(modelDir, { executionProviders: ['cpu'], threads });
    try {
      await timedPrefill(decoder, tokenizer, prompt.slice(0, 40)); // warm-up
      output.byChunk = await prefillByChunk(decoder, tokenizer, prompt, chunks, repeats);
      if (values.capacity) output.reservedOrGrowingCache = await capacityComparison(decoder, prompt, chunks, repeats);
    } finally {
      await decoder.dispose();
    }
  }
  if (values.profile) output.profile = await profilePrefill(modelDir, threads, prompt, Number(values.chunk), values['growing-cache'] ?? false);
  if (values['decode-profile']) output.decodeProfile = await profileDecode(modelDir, threads, prompt, Number(values['decode-profile']));
  process.stdout.write(`${JSON.stringify(output, (_, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v), 2)}\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`prefill: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
