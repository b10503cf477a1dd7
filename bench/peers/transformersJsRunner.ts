/**
 * Child process that runs a Hugging Face phi folder (see writeTransformersJsLayout) through transformers.js'
 * own generation loop on onnxruntime-node, CPU only, and prints one JSON object on stdout. It runs in its own
 * process so that its memory figures (VmHWM) are transformers.js' alone.
 *
 *   node out/bench/peers/transformersJsRunner.js '<TransformersJsRunnerRequest as JSON>'
 *
 * Token ids go in and come out directly: nothing is tokenised, so the timings are generate()'s alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkPeerRequest, childMain, procStatusBytes, promptRunResult, type PeerRequest, type PromptRunResult, type TimedGeneration } from '../support/child';

export interface TransformersJsRunnerCommon {
  /** transformers.js' Node ESM entry file (see ensureTransformersJs). */
  readonly modulePath: string;
  readonly version: string;
  readonly onnxruntimeNodeVersion: string;
  /** The Hugging Face layout folder. */
  readonly hfModelDir: string;
  readonly threads: number;
}

export type TransformersJsRunnerRequest = PeerRequest<TransformersJsRunnerCommon>;

export interface TransformersJsResult {
  readonly engine: 'transformers.js';
  readonly transformersJsVersion: string;
  readonly onnxruntimeNodeVersion: string;
  readonly threads: number;
  /** How the thread count reached onnxruntime. */
  readonly threadsSetting: string;
  /** The graph's KV cache as transformers.js handles it. */
  readonly kvCache: string;
  /** Positions the graph computes logits for in each pass (see LogitsToKeep in transformersJs.ts). */
  readonly logitsToKeep: string;
  /** AutoModelForCausalLM.from_pretrained (session creation included). */
  readonly loadSeconds: number;
  readonly rssAfterLoadBytes: number;
  /** VmHWM at the end: the process's peak resident set. */
  readonly peakRssBytes: number;
  readonly prompt128: PromptRunResult;
  readonly prompt1024: PromptRunResult;
}

export interface TransformersJsGreedyResult {
  readonly tokens: number[];
}

// ---------------------------------------------------------------------------------------------------------------
// The part of transformers.js 4.3's API used here (from its .d.ts files and dist/transformers.node.mjs); it is
// not a project dependency, so its own types are not available at compile time.

interface TjsTensor {
  readonly dims: number[];
  readonly data: BigInt64Array;
}

/** generate() calls put() with the prompt's ids first, then once per step with the token just chosen. */
interface Streamer {
  put(value: bigint[][]): void;
  end(): void;
}

interface GenerationConfigOverrides {
  max_new_tokens: number;
  do_sample: false;
  num_beams: 1;
  /** null: no end-of-text stopping criterion, so the token count is exact (random weights emit it too). */
  eos_token_id: null;
}

interface CausalLM {
  generate(options: { input_ids: TjsTensor; attention_mask: TjsTensor; generation_config: GenerationConfigOverrides; streamer?: Streamer }): Promise<TjsTensor>;
  dispose(): Promise<unknown>;
}

interface TransformersJs {
  readonly env: {
    allowRemoteModels: boolean;
    allowLocalModels: boolean;
    localModelPath: string;
    useFSCache: boolean;
  };
  readonly Tensor: new (type: 'int64', data: BigInt64Array, dims: number[]) => TjsTensor;
  readonly AutoModelForCausalLM: {
    from_pretrained(modelId: string, options: {
      dtype: 'fp32';
      device: 'cpu';
      local_files_only: true;
      session_options: { intraOpNumThreads: number };
    }): Promise<CausalLM>;
  };
}

// ---------------------------------------------------------------------------------------------------------------

/** Greedy tokens after `prompt` through generate(), timed per token by a streamer; `count` ≥ 1. */
async function generate(tjs: TransformersJs, model: CausalLM, prompt: readonly number[], count: number): Promise<TimedGeneration> {
  const inputIds = new tjs.Tensor('int64', BigInt64Array.from(prompt, (id) => BigInt(id)), [1, prompt.length]);
  const attentionMask = new tjs.Tensor('int64', new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]);
  const tokenTimes: number[] = [];
  let sawPrompt = false;
  const streamer: Streamer = {
    put: () => {
      if (sawPrompt) tokenTimes.push(performance.now());
      sawPrompt = true;
    },
    end: () => undefined,
  };
  const started = performance.now();
  const sequences = await model.generate({
    input_ids: inputIds,
    attention_mask: attentionMask,
    generation_config: { max_new_tokens: count, do_sample: false, num_beams: 1, eos_token_id: null },
    streamer,
  });
  const tokens = Array.from(sequences.data.subarray(prompt.length), Number);
  if (tokens.length !== count || tokenTimes.length !== count) {
    throw new Error(`transformers.js returned ${tokens.length} tokens (${tokenTimes.length} streamed) instead of ${count}`);
  }
  return { tokens, timeToFirstTokenMs: tokenTimes[0] - started, decodeMs: tokenTimes[count - 1] - tokenTimes[0] };
}

async function timePrompt(tjs: TransformersJs, model: CausalLM, prompt: readonly number[], decodeTokens: number): Promise<PromptRunResult> {
  return promptRunResult(prompt.length, await generate(tjs, model, prompt, decodeTokens + 1));
}

function readLogitsToKeep(hfModelDir: string): string {
  try {
    return String((JSON.parse(fs.readFileSync(path.join(hfModelDir, 'source.json'), 'utf8')) as { logitsToKeep?: unknown }).logitsToKeep);
  } catch {
    return 'unknown';
  }
}

async function run(request: TransformersJsRunnerRequest): Promise<TransformersJsResult | TransformersJsGreedyResult> {
  checkPeerRequest(request);
  const loadStarted = performance.now();
  const tjs = (await import(pathToFileURL(request.modulePath).href)) as TransformersJs;
  // Local files only: the model id is the folder's name under localModelPath.
  tjs.env.allowRemoteModels = false;
  tjs.env.allowLocalModels = true;
  tjs.env.useFSCache = false;
  tjs.env.localModelPath = `${path.dirname(request.hfModelDir)}${path.sep}`;
  const model = await tjs.AutoModelForCausalLM.from_pretrained(path.basename(request.hfModelDir), {
    dtype: 'fp32', // onnx/model.onnx; the weights inside are our int4 MatMulNBits all the same
    device: 'cpu',
    local_files_only: true,
    // transformers.js passes session_options on to InferenceSession.create unchanged.
    session_options: { intraOpNumThreads: request.threads },
  });
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const rssAfterLoadBytes = procStatusBytes('VmRSS');

  try {
    if (request.mode === 'greedy') {
      return { tokens: (await generate(tjs, model, request.prompt, request.tokens)).tokens };
    }
    // Warm-up: the first runs pay for page faults and one-time allocations.
    await generate(tjs, model, request.prompt128.slice(0, 16), 4);
    const prompt128 = await timePrompt(tjs, model, request.prompt128, request.decodeTokens);
    const prompt1024 = await timePrompt(tjs, model, request.prompt1024, request.decodeTokens);
    return {
      engine: 'transformers.js',
      transformersJsVersion: request.version,
      onnxruntimeNodeVersion: request.onnxruntimeNodeVersion,
      threads: request.threads,
      threadsSetting: `session_options.intraOpNumThreads = ${request.threads}`,
      kvCache: 'float32; transformers.js feeds past_key_values.* and keeps present.* (past + new rows, copied out each step)',
      logitsToKeep: readLogitsToKeep(request.hfModelDir),
      loadSeconds,
      rssAfterLoadBytes,
      peakRssBytes: procStatusBytes('VmHWM'),
      prompt128,
      prompt1024,
    };
  } finally {
    await model.dispose();
  }
}

childMain('transformersJsRunner', run);
