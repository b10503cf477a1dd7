/**
 * transformers.js (@huggingface/transformers) as a benchmark peer "on our ONNX model": the same random weights,
 * built by our own builder into an int4 graph with a float KV cache and Optimum's `present.*` outputs, run by
 * transformers.js' own generation loop and KV-cache handling on onnxruntime-node.
 *
 * transformers.js is not a project dependency: ensureTransformersJs installs a pinned version into a cache
 * folder on first use, and every run happens in a child process (transformersJsRunner) so that its memory is
 * measured on its own. writeTransformersJsLayout turns one of our model folders into the Hugging Face folder
 * layout transformers.js loads.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { buildModel } from '../../src/model/build';
import { DATA_FILE, kvCacheOf, MANIFEST_FILE, MODEL_FILE, readManifest, TOKENIZER_FILE } from '../../src/model/manifest';
import type { WeightSource } from '../../src/model/weights';
import { benchKey, benchWeights, MODEL_WRITER } from '../support/benchWeights';
import { codeKey, defaultCacheDir, ensurePinnedInstall } from '../support/cache';
import { benchRequest, greedyRequest, runJsonChild } from '../support/child';
import type {
  TransformersJsGreedyResult, TransformersJsResult, TransformersJsRunnerCommon,
} from './transformersJsRunner';

export type { TransformersJsResult } from './transformersJsRunner';

export const TRANSFORMERS_JS_VERSION = '4.3.1';
/**
 * transformers.js imports sharp (images) at load time, and sharp needs its prebuilt native package. They are
 * pinned to what transformers.js 4.3.1 resolves to, and installed explicitly because `--omit=optional` (which
 * skips every other platform's binaries) would leave them out.
 */
const SHARP_PACKAGES = ['sharp@0.35.5', '@img/sharp-linux-x64@0.35.5', '@img/sharp-libvips-linux-x64@1.3.4'] as const;
/** The onnxruntime-node transformers.js 4.3.1 pins: the same as the project's, so both run the same runtime. */
const EXPECTED_ONNXRUNTIME_NODE = /^1\.30\./;

/** The name transformers.js asks for the external data of `onnx/model.onnx` (`use_external_data_format`). */
export const TRANSFORMERS_JS_DATA_FILE = 'model.onnx_data';

export interface TransformersJsInstall {
  /** The package's Node ESM entry file, to be loaded with import(). */
  readonly modulePath: string;
  readonly version: string;
  /** The onnxruntime-node transformers.js runs on (its own copy). */
  readonly onnxruntimeNodeVersion: string;
}

/**
 * Installs @huggingface/transformers (pinned) into `<cacheDir>/transformers-js-<version>` unless it is already
 * there. `--omit=optional` skips other platforms' binaries; ONNXRUNTIME_NODE_INSTALL=skip stops
 * onnxruntime-node's install script from fetching the CUDA provider (it fails offline; the CPU provider ships
 * in the package). onnxruntime-web (≈140 MB) is a hard dependency of transformers.js and cannot be left out.
 */
export function ensureTransformersJs(cacheDir: string = defaultCacheDir()): TransformersJsInstall {
  if (`${process.platform}-${process.arch}` !== 'linux-x64') {
    throw new Error(`the transformers.js peer is set up for linux-x64 only (this is ${process.platform}-${process.arch})`);
  }
  const prefix = path.join(cacheDir, `transformers-js-${TRANSFORMERS_JS_VERSION}`);
  ensurePinnedInstall({
    prefix,
    packages: [`@huggingface/transformers@${TRANSFORMERS_JS_VERSION}`, ...SHARP_PACKAGES],
    env: { ONNXRUNTIME_NODE_INSTALL: 'skip' },
  });
  // The package's "node" → "import" export (its ESM build for Node), read from its package.json: require.resolve
  // would give the "require" one, and the package does not export its package.json.
  const packageDir = path.join(prefix, 'node_modules', '@huggingface', 'transformers');
  const exportsField = (JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as { exports?: { node?: { import?: { default?: string } } } }).exports;
  const entry = exportsField?.node?.import?.default;
  if (entry === undefined) throw new Error(`${packageDir}/package.json has no exports.node.import.default`);
  const modulePath = path.join(packageDir, entry);
  // onnxruntime-node as transformers.js resolves it (nested or hoisted).
  const ortManifest = createRequire(modulePath).resolve('onnxruntime-node/package.json');
  const onnxruntimeNodeVersion = (JSON.parse(fs.readFileSync(ortManifest, 'utf8')) as { version: string }).version;
  if (!EXPECTED_ONNXRUNTIME_NODE.test(onnxruntimeNodeVersion)) {
    throw new Error(`transformers.js ${TRANSFORMERS_JS_VERSION} came with onnxruntime-node ${onnxruntimeNodeVersion}, not 1.30.x like the project's`);
  }
  return { modulePath, version: TRANSFORMERS_JS_VERSION, onnxruntimeNodeVersion };
}

// ---------------------------------------------------------------------------------------------------------------
// The model

/**
 * Logits for every position of a pass (0) or for the last one only (1). transformers.js asks graphs that have the
 * input for all of them (it feeds `num_logits_to_keep` = 0), and published exports always compute all of them,
 * so 'all' is what transformers.js would do; 'last' isolates its loop from the prefill's lm_head cost.
 */
export type LogitsToKeep = 'all' | 'last';

/** Our graph's input: how many of the last positions get logits (see src/model/phiGraph.ts). */
const LOGITS_TO_KEEP_INPUT = 'logits_to_keep';

/**
 * Rewrites one of our graphs for transformers.js: the weights' external data location becomes
 * TRANSFORMERS_JS_DATA_FILE, and the `logits_to_keep` input (ours is [1]; transformers.js would feed a scalar
 * named `num_logits_to_keep`) becomes a constant. The weights and every node stay as they are.
 */
function rewriteGraphForTransformersJs(modelBytes: Uint8Array, logitsToKeep: LogitsToKeep): Uint8Array {
  const model = onnx.ModelProto.decode(modelBytes);
  const graph = model.graph;
  if (!graph) throw new Error('the model has no graph');
  const initializers = (graph.initializer ??= []);
  const inputs = (graph.input ??= []);
  let external = 0;
  for (const tensor of initializers) {
    for (const entry of tensor.externalData ?? []) {
      if (entry.key === 'location') {
        if (entry.value !== DATA_FILE) throw new Error(`initializer ${tensor.name} has its data in ${entry.value}, not ${DATA_FILE}`);
        entry.value = TRANSFORMERS_JS_DATA_FILE;
        external++;
      }
    }
  }
  if (external === 0) throw new Error('the model has no external weights');
  const inputIndex = inputs.findIndex((input) => input.name === LOGITS_TO_KEEP_INPUT);
  if (inputIndex >= 0) {
    inputs.splice(inputIndex, 1);
    initializers.push(onnx.TensorProto.create({
      name: LOGITS_TO_KEEP_INPUT,
      dataType: onnx.TensorProto.DataType.INT64,
      dims: [1],
      rawData: new Uint8Array(BigInt64Array.of(logitsToKeep === 'all' ? 0n : 1n).buffer),
    }));
  }
  return onnx.ModelProto.encode(model).finish();
}

/** phi-1.5's tokenizer_config.json, reduced to what transformers.js reads. */
const TOKENIZER_CONFIG = {
  tokenizer_class: 'CodeGenTokenizer',
  add_prefix_space: false,
  bos_token: '<|endoftext|>',
  eos_token: '<|endoftext|>',
  unk_token: '<|endoftext|>',
  model_max_length: 2048,
  clean_up_tokenization_spaces: true,
};

/** Hard-links `from` to `to` (no second copy of a 1 GB file), copying where a link cannot be made. */
function linkOrCopy(from: string, to: string): void {
  try {
    fs.linkSync(from, to);
  } catch {
    fs.copyFileSync(from, to);
  }
}

/**
 * Writes the Hugging Face folder transformers.js loads from one of our model folders, built with float KV cache
 * and `kvOutputs: 'present'` (transformers.js feeds `past_key_values.*` and reads `present.*`):
 *   config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
 *   onnx/model.onnx (our graph, see rewriteGraphForTransformersJs) + onnx/model.onnx_data (our weights, linked).
 * Written under a temporary name and renamed into place.
 */
export function writeTransformersJsLayout(modelDir: string, outDir: string, logitsToKeep: LogitsToKeep = 'all'): void {
  const manifest = readManifest(modelDir);
  if (kvCacheOf(manifest) === 'int8') throw new Error(`${modelDir} has an int8 KV cache; transformers.js needs a float one (build with kvCache: 'float')`);
  const graphBytes = fs.readFileSync(path.join(modelDir, MODEL_FILE));
  const graph = onnx.ModelProto.decode(graphBytes).graph;
  if (!graph?.output?.some((output) => output.name === 'present.0.key')) {
    throw new Error(`${modelDir}: the graph lacks Optimum's present.* outputs (build with kvOutputs: 'present')`);
  }
  const destination = path.resolve(outDir);
  fs.mkdirSync(path.dirname(destination), { recursive: true });
  const staging = fs.mkdtempSync(`${destination}.partial-`);
  try {
    const config = {
      architectures: ['PhiForCausalLM'],
      model_type: 'phi',
      ...manifest.config,
      hidden_act: 'gelu_new',
      torch_dtype: 'float32',
      use_cache: true,
      // transformers.js then asks for onnx/model.onnx_data, as for published exports with external data.
      'transformers.js_config': { use_external_data_format: true },
    };
    fs.writeFileSync(path.join(staging, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    const generationConfig = { bos_token_id: manifest.config.bos_token_id, eos_token_id: manifest.config.eos_token_id };
    fs.writeFileSync(path.join(staging, 'generation_config.json'), `${JSON.stringify(generationConfig, null, 2)}\n`);
    fs.copyFileSync(path.join(modelDir, TOKENIZER_FILE), path.join(staging, 'tokenizer.json'));
    fs.writeFileSync(path.join(staging, 'tokenizer_config.json'), `${JSON.stringify(TOKENIZER_CONFIG, null, 2)}\n`);
    fs.mkdirSync(path.join(staging, 'onnx'));
    fs.writeFileSync(path.join(staging, 'onnx', 'model.onnx'), rewriteGraphForTransformersJs(graphBytes, logitsToKeep));
    linkOrCopy(path.join(modelDir, DATA_FILE), path.join(staging, 'onnx', TRANSFORMERS_JS_DATA_FILE));
    fs.writeFileSync(path.join(staging, 'source.json'), `${JSON.stringify({ modelDir: path.resolve(modelDir), logitsToKeep }, null, 2)}\n`);
    fs.rmSync(destination, { recursive: true, force: true });
    fs.renameSync(staging, destination);
  } catch (error) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw error;
  }
}

/** The options the peer's graph is built with: the bench model's int4 weights, a float cache, `present.*` outputs. */
export function buildTransformersJsModel(weights: WeightSource, modelDir: string): void {
  buildModel(weights, modelDir, { format: 'int4', kvCache: 'float', kvOutputs: 'present', overwrite: true });
}

const log = (message: string): void => void process.stderr.write(`[bench] ${message}\n`);

/**
 * The full-size random phi-1.5 (bench/run.ts's weights) built for transformers.js, cached under `benchCacheDir`
 * (bench/run.ts uses ~/.cache/phi-complete/bench): our model folder (built once, a few minutes) and its
 * Hugging Face layout beside it. Returns the Hugging Face folder, for benchTransformersJs.
 */
export function ensureTransformersJsModel(benchCacheDir: string, logitsToKeep: LogitsToKeep = 'all'): string {
  const writers = [...MODEL_WRITER, ...['build', 'manifest'].map((name) => path.join(__dirname, `../../src/model/${name}.js`))];
  const modelDir = path.join(benchCacheDir, `phi-1_5-random-int4-optimum-${benchKey(writers)}`);
  if (!fs.existsSync(path.join(modelDir, MANIFEST_FILE))) {
    log(`building the full-size random int4 model with a float cache and present.* outputs into ${modelDir} (a few minutes, once)`);
    buildTransformersJsModel(benchWeights(), modelDir);
  }
  const layoutKey = codeKey([path.join(modelDir, MANIFEST_FILE), __filename], logitsToKeep);
  const hfDir = path.join(benchCacheDir, `phi-1_5-random-int4-transformers-js-${logitsToKeep}-${layoutKey}`);
  if (!fs.existsSync(path.join(hfDir, 'config.json'))) {
    log(`writing the transformers.js layout of ${modelDir} into ${hfDir}`);
    writeTransformersJsLayout(modelDir, hfDir, logitsToKeep);
  }
  return hfDir;
}

// ---------------------------------------------------------------------------------------------------------------
// Runs

const RUNNER_SCRIPT = path.join(__dirname, 'transformersJsRunner.js');

function runnerCommon(options: { readonly hfModelDir: string; readonly threads: number; readonly cacheDir?: string }): TransformersJsRunnerCommon {
  const install = ensureTransformersJs(options.cacheDir);
  return {
    modulePath: install.modulePath,
    version: install.version,
    onnxruntimeNodeVersion: install.onnxruntimeNodeVersion,
    hfModelDir: path.resolve(options.hfModelDir),
    threads: options.threads,
  };
}

export interface BenchTransformersJsOptions {
  /** A folder written by writeTransformersJsLayout (ensureTransformersJsModel for the bench's model). */
  readonly hfModelDir: string;
  readonly threads: number;
  readonly prompt128: number[];
  readonly prompt1024: number[];
  /** Greedy tokens timed after each prompt's first token. */
  readonly decodeTokens: number;
  /** Where transformers.js is installed; default ~/.cache/phi-complete. */
  readonly cacheDir?: string;
}

/**
 * transformers.js' speed on our graph, CPU only: time to first token (prefill) and decode speed after a 128- and
 * a 1,024-token prompt, plus load time and memory. Token ids go in directly, so no tokenisation is timed.
 */
export async function benchTransformersJs(options: BenchTransformersJsOptions): Promise<TransformersJsResult> {
  return runJsonChild<TransformersJsResult>(RUNNER_SCRIPT, 'transformers.js runner', benchRequest(runnerCommon(options), options));
}

export interface TransformersJsGreedyOptions {
  readonly hfModelDir: string;
  readonly threads: number;
  readonly prompt: number[];
  /** How many greedy tokens to generate (end-of-text does not stop it). */
  readonly tokens: number;
  readonly cacheDir?: string;
}

/** transformers.js' greedy continuation of `prompt` (do_sample false, no end-of-text stop), as token ids. */
export async function transformersJsGreedy(options: TransformersJsGreedyOptions): Promise<number[]> {
  const request = greedyRequest(runnerCommon(options), options.prompt, options.tokens);
  return (await runJsonChild<TransformersJsGreedyResult>(RUNNER_SCRIPT, 'transformers.js runner', request)).tokens;
}
