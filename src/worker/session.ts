/**
 * Loads a model folder on the best device that works: the candidates of the requested device in order,
 * falling back (with the reason recorded) when ONNX Runtime cannot load a provider or create the session.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PhiDecoder } from '../inference/decoder';
import { DEFAULT_PREFILL_CHUNK } from '../inference/generator';
import { deviceCandidates, layoutAdvice, platformObstacle, providerOf } from '../inference/devices';
import { kvOutputsOf, MANIFEST_FILE, MODEL_FILE, readManifest, TOKENIZER_FILE, type KvOutputs } from '../model/manifest';
import type { Device } from '../protocol';
import { PhiTokenizer } from '../tokenizer/tokenizer';
import { stripTerminalCodes } from '../util/terminalText';

/**
 * Threads for one operator when the setting is 0 (automatic): one per physical core. ONNX Runtime's own choice
 * ran the full-size model several times slower on a 2-core VM (docs/benchmarks.md, Editor), and hyperthreads add
 * little to decoding, which waits on memory.
 */
export function automaticThreads(): number {
  const logical = os.availableParallelism();
  let hyperthreaded = false;
  try {
    hyperthreaded = fs.readFileSync('/sys/devices/system/cpu/smt/active', 'utf8').trim() === '1';
  } catch {
    // Not Linux, or no SMT control: count every logical processor.
  }
  return Math.max(1, hyperthreaded ? Math.floor(logical / 2) : logical);
}

export interface LoadedModel {
  readonly decoder: PhiDecoder;
  readonly tokenizer: PhiTokenizer;
  readonly device: Exclude<Device, 'auto'>;
  /** One line per device passed over: "cuda: <why>". */
  readonly fallbacks: readonly string[];
  /** What would suit the device better, when the model's cache layout does not (see layoutAdvice). */
  readonly advice?: string;
}

/** A model folder that cannot work whatever the device: names what is wrong and what to do. */
export class ModelInvalidError extends Error {}

function firstLine(error: unknown): string {
  return stripTerminalCodes(error instanceof Error ? error.message : String(error)).split('\n')[0];
}

/**
 * A GPU provider can create a session it then cannot run (a WebGPU adapter without float16 shaders fails an fp16
 * model at its first pass), which must fall back now rather than fail every completion; the warm-up's passes
 * find that out, and compile the GPU's kernels before the first completion rather than during it.
 */
async function runsOn(decoder: PhiDecoder, tokenizer: PhiTokenizer): Promise<void> {
  try {
    await decoder.warmUp(tokenizer.eosTokenId, DEFAULT_PREFILL_CHUNK);
  } catch (error) {
    await decoder.dispose();
    throw error;
  }
}

export async function loadModel(modelDir: string, requested: Device, threads: number): Promise<LoadedModel> {
  if (!fs.existsSync(modelDir)) throw new ModelInvalidError(`model folder ${modelDir} does not exist`);
  for (const file of [MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE]) {
    if (!fs.existsSync(path.join(modelDir, file))) {
      throw new ModelInvalidError(`model folder ${modelDir} has no ${file}: rebuild or re-download the model`);
    }
  }
  let tokenizer: PhiTokenizer;
  try {
    tokenizer = PhiTokenizer.fromFile(path.join(modelDir, TOKENIZER_FILE));
  } catch (error) {
    throw new ModelInvalidError(firstLine(error));
  }
  const fallbacks: string[] = [];
  let kvOutputs: KvOutputs;
  try {
    kvOutputs = kvOutputsOf(readManifest(modelDir));
  } catch (error) {
    throw new ModelInvalidError(firstLine(error));
  }
  for (const device of deviceCandidates(requested, process.platform, kvOutputs)) {
    const obstacle = platformObstacle(device);
    if (obstacle) {
      fallbacks.push(`${device}: ${obstacle}`);
      continue;
    }
    try {
      const decoder = await PhiDecoder.load(modelDir, { executionProviders: [providerOf(device)], threads: threads || automaticThreads() });
      if (device !== 'cpu') await runsOn(decoder, tokenizer);
      return { decoder, tokenizer, device, fallbacks, advice: layoutAdvice(device, kvOutputs) };
    } catch (error) {
      if (device === 'cpu') throw new ModelInvalidError(`cannot load ${modelDir}: ${firstLine(error)}`);
      fallbacks.push(`${device}: ${firstLine(error)}`);
    }
  }
  throw new ModelInvalidError('no device could load the model');
}
