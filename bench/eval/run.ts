/**
 * npm run eval -- --model <built model folder | Hugging Face phi folder> [options]
 *
 * Scores a model through the extension's real path and prints one JSON summary on stdout (progress on stderr):
 * held-out perplexity through the engine, line completion as the provider asks for it, and optionally the build
 * variants of the same weights with llama.cpp's Q4_0 beside them, prompt-lookup speculation on edited code, and
 * prompt variants (context budget, header kept or not). See docs/eval.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { cacheBudgetBytes, DEFAULT_SETTINGS, type Settings } from '../../src/config';
import { Generator } from '../../src/inference/generator';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { loadModel, type LoadedModel } from '../../src/worker/session';
import { ensureNodeLlamaCpp } from '../peers/llamaCpp';
import { runJsonChild } from '../support/child';
import { engineCompletions, scoreCompletions, summarizeCompletions, type CompletionSummary, type ScoredCompletion } from './completion';
import { sampleCursors, type Cursor, type HeldOutFile } from './cursors';
import { cutAtStops, promptFor } from './extensionPath';
import { defaultDataFor, readHeldOutFiles } from './heldOut';
import type { EvalRequest, EvalResult } from './llamaCppEvalRunner';
import { ensureBuild, ensureGguf, evalCacheDir, isBuiltModel, tokenizerOf, VARIANTS, type BuildVariant, type Variant } from './models';
import { enginePerplexity, evenlySpacedWindows, summarizeNll, type PerplexityResult } from './perplexity';
import { pythonSyntaxChecker, type SyntaxChecker } from './score';
import { editCases, measureSpeculation, type SpeculationSummary } from './speculation';

const USAGE = `usage: npm run eval -- --model <model folder or Hugging Face phi folder> [options]
  --data <folder of .py | list.txt>  held-out files (default: <model>/data/eval_files.txt, as the fixture has)
  --data-root <dir>                  what a list's paths are relative to (default: python3's standard library)
  --format int4|fp16|fp32            the build of a Hugging Face folder scored without --variants (default int4)
  --windows N (24) --window-tokens N (512)      perplexity windows
  --cursors N (200) --max-tokens N (${DEFAULT_SETTINGS.completionMaxTokens}) --context-tokens N (${DEFAULT_SETTINGS.contextTokens})   line completion
  --variants                         build and score the variant set (a Hugging Face folder only) and llama.cpp's Q4_0
  --speculation-cases N (12)         functions for the speculation cases (0: skip)
  --budgets 128,256,512,1024         context budgets for the prompt variants (empty: skip), plus header off
  --threads N (2) --seed N (1)
  --details <file.jsonl>             also write every scored suggestion (variant, cursor, target, suggestion, scores)`;

function fail(message: string): never {
  process.stderr.write(`eval: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function positive(value: string, option: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) fail(`${option} must be an integer ≥ ${min} (got "${value}")`);
  return n;
}

const log = (message: string): void => {
  process.stderr.write(`[eval] ${message}\n`);
};

interface Inputs {
  readonly files: readonly HeldOutFile[];
  readonly tokenizer: PhiTokenizer;
  readonly windows: number[][];
  readonly cursors: readonly Cursor[];
  readonly settings: Settings;
  readonly maxTokens: number;
  readonly threads: number;
  readonly syntax: SyntaxChecker | undefined;
  /** Appends each variant's scored suggestions here, one JSON line each. */
  readonly details: string | undefined;
}

function writeDetails(inputs: Inputs, variant: string, scored: readonly ScoredCompletion[]): CompletionSummary {
  if (inputs.details) {
    const lines = scored.map(({ cursor, suggestion, exact, editSimilarity, broken }) => JSON.stringify({
      variant, file: cursor.file, line: cursor.line + 1, kind: cursor.kind, target: cursor.target, suggestion, exact, editSimilarity, broken,
    }));
    fs.appendFileSync(inputs.details, `${lines.join('\n')}\n`);
  }
  return summarizeCompletions(scored, inputs.syntax !== undefined);
}

interface VariantResult {
  readonly variant: string;
  readonly engine: 'phi-complete' | 'llama.cpp';
  readonly build?: Omit<BuildVariant, 'engine' | 'name'>;
  readonly perplexity: PerplexityResult;
  readonly completion: CompletionSummary;
  /** Mean wall time of one completion on this machine (not comparable across engines' warm-up; shared CPU). */
  readonly completionMs: number;
}

function newGenerator(model: LoadedModel, adaptive = true): Generator {
  return new Generator(model.decoder, model.tokenizer, { cacheBudgetBytes: cacheBudgetBytes(DEFAULT_SETTINGS), adaptiveSpeculation: adaptive });
}

async function scoreBuilt(modelDir: string, name: string, inputs: Inputs, build?: BuildVariant): Promise<{ result: VariantResult; model: LoadedModel }> {
  const model = await loadModel(modelDir, 'cpu', inputs.threads);
  log(`${name}: perplexity on ${inputs.windows.length} windows of ${inputs.windows[0]?.length ?? 0} tokens`);
  const perplexity = await enginePerplexity(model.decoder, inputs.windows, (done) => { if (done % 8 === 0) log(`${name}: ${done}/${inputs.windows.length} windows`); });
  log(`${name}: perplexity ${perplexity.perplexity.toFixed(3)} (${perplexity.seconds.toFixed(0)} s); line completion at ${inputs.cursors.length} cursors`);
  const generator = newGenerator(model);
  const prompts = inputs.cursors.map((cursor) => promptFor(cursor, { settings: inputs.settings }));
  const { raws, meanMs } = await engineCompletions(generator, inputs.cursors, prompts, {
    maxTokens: inputs.maxTokens, speculative: inputs.settings.speculative,
    onDone: (done) => { if (done % 50 === 0) log(`${name}: ${done}/${inputs.cursors.length} completions`); },
  });
  await generator.dispose();
  const completion = writeDetails(inputs, name, scoreCompletions(inputs.cursors, raws, inputs.syntax));
  log(`${name}: exact match ${completion.exactMatch}%, edit similarity ${completion.editSimilarity}%`);
  const options = build ? { format: build.format, kvCache: build.kvCache, int4Layout: build.int4Layout } : undefined;
  return { result: { variant: name, engine: 'phi-complete', build: options, perplexity, completion, completionMs: Math.round(meanMs) }, model };
}

async function scoreLlamaCpp(ggufPath: string, name: string, inputs: Inputs): Promise<VariantResult> {
  const prompts = inputs.cursors.map((cursor) => inputs.tokenizer.encode(promptFor(cursor, { settings: inputs.settings })));
  const request: EvalRequest = {
    modulePath: ensureNodeLlamaCpp(), ggufPath, threads: inputs.threads, windows: inputs.windows, prompts, maxTokens: inputs.maxTokens, eosTokenId: inputs.tokenizer.eosTokenId,
  };
  const requestFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'phi-eval-')), 'request.json');
  fs.writeFileSync(requestFile, JSON.stringify(request));
  log(`${name}: perplexity and ${prompts.length} completions through node-llama-cpp`);
  let result: EvalResult;
  try {
    result = await runJsonChild<EvalResult>(path.join(__dirname, 'llamaCppEvalRunner.js'), 'llama.cpp eval runner', { requestFile });
  } finally {
    fs.rmSync(path.dirname(requestFile), { recursive: true, force: true });
  }
  // The runner's NLLs come window after window; split them like the engine's (first half prefill, second half decode) to report both.
  const perWindow = (inputs.windows[0]?.length ?? 1) - 1;
  const half = Math.floor((perWindow + 1) / 2);
  const prefill = result.nll.filter((_, i) => i % perWindow < half);
  const decode = result.nll.filter((_, i) => i % perWindow >= half);
  const perplexity = summarizeNll(prefill, decode, inputs.windows.length, perWindow + 1, result.perplexitySeconds);
  const raws = result.completions.map((tokens) => cutAtStops(inputs.tokenizer.decode(tokens)));
  const completion = writeDetails(inputs, name, scoreCompletions(inputs.cursors, raws, inputs.syntax));
  log(`${name}: perplexity ${perplexity.perplexity.toFixed(3)}, exact match ${completion.exactMatch}% (${result.llamaCppRelease})`);
  return { variant: `${name} (${result.llamaCppRelease})`, engine: 'llama.cpp', perplexity, completion, completionMs: Math.round((1000 * result.completionSeconds) / Math.max(1, prompts.length)) };
}

interface PromptVariantResult {
  readonly contextTokens: number;
  readonly header: boolean;
  readonly meanPromptTokens: number;
  readonly completion: CompletionSummary;
}

async function promptVariants(model: LoadedModel, inputs: Inputs, budgets: readonly number[]): Promise<PromptVariantResult[]> {
  const settingsList = [...budgets.map((budget) => ({ budget, header: true })), { budget: inputs.settings.contextTokens, header: false }];
  const results: PromptVariantResult[] = [];
  for (const { budget, header } of settingsList) {
    const settings = { ...inputs.settings, contextTokens: budget };
    const prompts = inputs.cursors.map((cursor) => promptFor(cursor, { settings, keepHeader: header }));
    const generator = newGenerator(model);
    const { raws } = await engineCompletions(generator, inputs.cursors, prompts, { maxTokens: inputs.maxTokens, speculative: settings.speculative });
    await generator.dispose();
    const completion = writeDetails(inputs, `prompt ${budget}${header ? '' : ' no header'}`, scoreCompletions(inputs.cursors, raws, inputs.syntax));
    const meanPromptTokens = Math.round(prompts.reduce((sum, prompt) => sum + inputs.tokenizer.encode(prompt).length, 0) / Math.max(1, prompts.length));
    log(`prompt ${budget} tokens${header ? '' : ', no header'}: exact match ${completion.exactMatch}%, edit similarity ${completion.editSimilarity}% (mean prompt ${meanPromptTokens} tokens)`);
    results.push({ contextTokens: budget, header, meanPromptTokens, completion });
  }
  return results;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        model: { type: 'string' },
        data: { type: 'string' },
        'data-root': { type: 'string' },
        format: { type: 'string', default: 'int4' },
        windows: { type: 'string', default: '24' },
        'window-tokens': { type: 'string', default: '512' },
        cursors: { type: 'string', default: '200' },
        'max-tokens': { type: 'string', default: String(DEFAULT_SETTINGS.completionMaxTokens) },
        'context-tokens': { type: 'string', default: String(DEFAULT_SETTINGS.contextTokens) },
        variants: { type: 'boolean', default: false },
        'speculation-cases': { type: 'string', default: '12' },
        budgets: { type: 'string', default: '128,256,512,1024' },
        threads: { type: 'string', default: '2' },
        seed: { type: 'string', default: '1' },
        details: { type: 'string' },
      },
      strict: true,
    }));
  } catch (error) {
    fail((error as Error).message);
  }
  if (!values.model) fail('--model is required');
  const modelDir = path.resolve(values.model);
  if (!fs.existsSync(modelDir)) fail(`${modelDir} does not exist`);
  const builtGiven = isBuiltModel(modelDir);
  if (values.variants && builtGiven) fail('--variants builds the variants from weights: give a Hugging Face folder (config.json + *.safetensors)');
  const format = values.format;
  if (format !== 'int4' && format !== 'fp16' && format !== 'fp32') fail(`--format must be int4, fp16 or fp32 (got "${format}")`);
  const data = values.data ?? defaultDataFor(modelDir) ?? fail(`${modelDir} has no data/eval_files.txt: give the held-out files with --data`);
  const budgets = values.budgets.split(',').filter((b) => b !== '').map((b) => positive(b, '--budgets', 16));

  const files = readHeldOutFiles(data, values['data-root']);
  // The main model: the given build, or the default build of these weights (the download's conversion path).
  const mainDir = builtGiven ? modelDir : ensureBuild(modelDir, { format, kvCache: format === 'int4' ? 'int8' : 'float' }, log);
  const tokenizer = PhiTokenizer.fromFile(tokenizerOf(mainDir));
  const stream = files.flatMap((file) => [...tokenizer.encode(file.text), tokenizer.eosTokenId]);
  const settings: Settings = { ...DEFAULT_SETTINGS, contextTokens: positive(values['context-tokens'], '--context-tokens', 16) };
  const syntax = pythonSyntaxChecker();
  const inputs: Inputs = {
    files,
    tokenizer,
    windows: evenlySpacedWindows(stream, positive(values.windows, '--windows'), positive(values['window-tokens'], '--window-tokens', 2)),
    cursors: sampleCursors(files, positive(values.cursors, '--cursors'), positive(values.seed, '--seed', 0)),
    settings,
    maxTokens: positive(values['max-tokens'], '--max-tokens'),
    threads: positive(values.threads, '--threads'),
    syntax,
    details: values.details ? path.resolve(values.details) : undefined,
  };
  if (inputs.details) fs.writeFileSync(inputs.details, '');
  log(`${files.length} held-out files, ${stream.length} tokens; ${inputs.windows.length} windows, ${inputs.cursors.length} cursors; syntax check: ${syntax?.method ?? 'not measured (no python3)'}`);

  const results: VariantResult[] = [];
  const selected: readonly Variant[] = values.variants ? VARIANTS : [];
  let mainModel: LoadedModel | undefined;
  if (selected.length === 0) {
    const scored = await scoreBuilt(mainDir, builtGiven ? path.basename(modelDir) : format, inputs);
    results.push(scored.result);
    mainModel = scored.model;
  }
  for (const variant of selected) {
    if (variant.engine === 'llama.cpp') {
      results.push(await scoreLlamaCpp(ensureGguf(modelDir, tokenizerOf(mainDir), log), variant.name, inputs));
      continue;
    }
    const dir = ensureBuild(modelDir, variant, log);
    const scored = await scoreBuilt(dir, variant.name, inputs, variant);
    results.push(scored.result);
    // Speculation and prompt variants run on the default build (the extension's): keep it, release the others.
    if (dir === mainDir) mainModel = scored.model;
    else await scored.model.decoder.dispose();
  }
  mainModel ??= await loadModel(mainDir, 'cpu', inputs.threads);

  const speculationCases = positive(values['speculation-cases'], '--speculation-cases', 0);
  let speculation: SpeculationSummary | undefined;
  if (speculationCases > 0) {
    const cases = editCases(files, speculationCases);
    log(`speculation: ${cases.length} edit cases`);
    const model = mainModel;
    speculation = await measureSpeculation(model.decoder, (adaptive) => newGenerator(model, adaptive), cases, inputs.maxTokens);
  }
  const prompts = budgets.length > 0 ? await promptVariants(mainModel, inputs, budgets) : undefined;
  await mainModel.decoder.dispose();

  const summary = {
    command: `npm run eval -- ${process.argv.slice(2).join(' ')}`,
    date: new Date().toISOString(),
    model: modelDir,
    scoredBuild: mainDir,
    cacheDir: evalCacheDir(),
    data: { source: path.resolve(data), files: files.length, tokens: stream.length },
    settings: { contextTokens: settings.contextTokens, maxTokens: inputs.maxTokens, speculative: settings.speculative, threads: inputs.threads, seed: Number(values.seed) },
    syntaxCheck: syntax?.method ?? 'not measured (python3 not found)',
    results,
    speculation,
    promptVariants: prompts,
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`eval: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
