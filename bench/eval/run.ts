/**
 * npm run eval -- --model <built model folder | Hugging Face phi folder> [options]
 *
 * Scores a model through the extension's real path and prints one JSON summary on stdout (progress on stderr):
 * held-out perplexity through the engine, line completion as the provider asks for it, and optionally the build
 * variants of the same weights with llama.cpp's Q4_0 beside them, prompt-lookup speculation on edited code, and
 * context length (perplexity and line completion with the last N tokens as context; header kept or not). See
 * docs/eval.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { CHARS_PER_TOKEN } from '../../src/completion/tokenEstimate';
import { Generator } from '../../src/inference/generator';
import { cacheBudgetBytes, DEFAULT_SETTINGS, type Settings } from '../../src/settings/settings';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { loadModel, type LoadedModel } from '../../src/worker/session';
import { ensureNodeLlamaCpp } from '../peers/llamaCpp';
import { runJsonChild } from '../support/child';
import { engineCompletions, scoreCompletions, summarizeCompletions, type CompletionSummary, type ScoredCompletion } from './completion';
import { sampleCursors, type Cursor, type HeldOutFile } from './cursors';
import { contextNll, contextSamples, pairedDifference, SCORED_TOKENS, summarizeContextNll, type ContextPerplexityRow } from './contextLength';
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
  --contexts 128,256,512,1024        context lengths (empty: skip): perplexity with exactly the last N tokens read,
                                     line completion with contextTokens N (plus the header off at --context-tokens)
  --context-samples N (200)          perplexity points for the context lengths (${SCORED_TOKENS} tokens scored after each)
  --context-cursors N (--cursors)    cursors for the context lengths (each with more text before it than the largest budget)
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

interface ContextCompletionRow {
  readonly contextTokens: number;
  readonly header: boolean;
  /** Mean prompt length in the model's tokens (the budget is counted at CHARS_PER_TOKEN characters a token). */
  readonly meanPromptTokens: number;
  readonly completion: CompletionSummary;
  /** Against the largest budget with the header kept, on the same cursors: differences in points, with their 95% interval. */
  readonly vsLongest: { readonly exactMatch: readonly [number, number, number]; readonly editSimilarity: readonly [number, number, number] };
}

interface ContextLengthResult {
  readonly perplexity: { readonly samples: number; readonly scoredTokensPerSample: number; readonly rows: readonly ContextPerplexityRow[]; readonly seconds: number };
  readonly completion: { readonly cursors: number; readonly minPrefixChars: number; readonly rows: readonly ContextCompletionRow[]; readonly seconds: number };
}

const points = (d: { mean: number; low: number; high: number }): [number, number, number] => [d.mean, d.low, d.high].map((v) => Math.round(1000 * v) / 10) as [number, number, number];

/**
 * The context-length section (./contextLength.ts): perplexity of the same tokens after exactly N tokens, and line
 * completion at cursors with more text before them than the largest budget, with contextTokens N; plus the
 * header not kept, at the settings' budget.
 */
async function contextLength(model: LoadedModel, inputs: Inputs, contexts: readonly number[], sampleCount: number, cursorCount: number, seed: number): Promise<ContextLengthResult> {
  const largest = contexts[contexts.length - 1];
  const fileTokens = inputs.files.map((file) => ({ path: file.path, tokens: inputs.tokenizer.encode(file.text) }));
  const samples = contextSamples(fileTokens, sampleCount, largest, SCORED_TOKENS);
  log(`context lengths ${contexts.join('/')}: perplexity at ${samples.length} points (${SCORED_TOKENS} tokens each)`);
  let started = Date.now();
  const nll = await contextNll(model.decoder, samples, contexts, SCORED_TOKENS, (done) => { if (done % 25 === 0) log(`context lengths: ${done}/${samples.length} points`); });
  const perplexityRows = summarizeContextNll(contexts, nll, SCORED_TOKENS);
  const perplexitySeconds = (Date.now() - started) / 1000;
  for (const row of perplexityRows) log(`context ${row.contextTokens}: perplexity ${row.perplexity} (×${row.vsLongest.ratio} [${row.vsLongest.low}, ${row.vsLongest.high}] vs ${largest})`);

  // More text before each cursor than the largest budget holds, so every budget cuts its prompt.
  const minPrefixChars = largest * CHARS_PER_TOKEN;
  const cursors = sampleCursors(inputs.files, cursorCount, seed, minPrefixChars);
  log(`context lengths: line completion at ${cursors.length} cursors with ${minPrefixChars}+ characters before them`);
  started = Date.now();
  const variants = [...contexts.map((budget) => ({ budget, header: true })), { budget: inputs.settings.contextTokens, header: false }];
  const scoredRuns: { budget: number; header: boolean; meanPromptTokens: number; scored: ScoredCompletion[] }[] = [];
  for (const { budget, header } of variants) {
    const settings = { ...inputs.settings, contextTokens: budget };
    const prompts = cursors.map((cursor) => promptFor(cursor, { settings, keepHeader: header }));
    const generator = newGenerator(model);
    const { raws } = await engineCompletions(generator, cursors, prompts, {
      maxTokens: inputs.maxTokens, speculative: settings.speculative,
      onDone: (done) => { if (done % 100 === 0) log(`context ${budget}${header ? '' : ' no header'}: ${done}/${cursors.length} completions`); },
    });
    await generator.dispose();
    const scored = scoreCompletions(cursors, raws, inputs.syntax);
    const meanPromptTokens = Math.round(prompts.reduce((sum, prompt) => sum + inputs.tokenizer.encode(prompt).length, 0) / Math.max(1, prompts.length));
    scoredRuns.push({ budget, header, meanPromptTokens, scored });
  }
  const longest = scoredRuns.find((run) => run.budget === largest && run.header)!.scored;
  const rows = scoredRuns.map(({ budget, header, meanPromptTokens, scored }): ContextCompletionRow => {
    const completion = writeDetails(inputs, `context ${budget}${header ? '' : ' no header'}`, scored);
    const exact = (entries: readonly ScoredCompletion[]) => entries.map((e) => (e.exact ? 1 : 0));
    const similarity = (entries: readonly ScoredCompletion[]) => entries.map((e) => e.editSimilarity);
    const vsLongest = { exactMatch: points(pairedDifference(exact(scored), exact(longest))), editSimilarity: points(pairedDifference(similarity(scored), similarity(longest))) };
    log(`context ${budget} tokens${header ? '' : ', no header'}: exact match ${completion.exactMatch}%, edit similarity ${completion.editSimilarity}% (${vsLongest.editSimilarity[0]} [${vsLongest.editSimilarity[1]}, ${vsLongest.editSimilarity[2]}] vs ${largest}; mean prompt ${meanPromptTokens} tokens)`);
    return { contextTokens: budget, header, meanPromptTokens, completion, vsLongest };
  });
  return {
    perplexity: { samples: samples.length, scoredTokensPerSample: SCORED_TOKENS, rows: perplexityRows, seconds: Math.round(perplexitySeconds) },
    completion: { cursors: cursors.length, minPrefixChars, rows, seconds: Math.round((Date.now() - started) / 1000) },
  };
}

/** The context-length section as a Markdown table (for docs/eval.md), on stderr. */
function contextTable(result: ContextLengthResult): string {
  const byBudget = new Map(result.perplexity.rows.map((row) => [row.contextTokens, row]));
  const lines = [
    `| context (tokens) | perplexity (${result.perplexity.samples} × ${result.perplexity.scoredTokensPerSample} tokens) | vs longest [95%] | mean prompt tokens | exact match % | vs longest, points [95%] | edit similarity % | vs longest, points [95%] | empty % | syntax broken % |`,
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const row of result.completion.rows) {
    const ppl = row.header ? byBudget.get(row.contextTokens) : undefined;
    const interval = ([mean, low, high]: readonly [number, number, number]) => `${mean} [${low}, ${high}]`;
    lines.push(`| ${row.contextTokens}${row.header ? '' : ', header not kept'} | ${ppl ? ppl.perplexity : '–'} | ${ppl ? `×${ppl.vsLongest.ratio} [${ppl.vsLongest.low}, ${ppl.vsLongest.high}]` : '–'} | ${row.meanPromptTokens} | ${row.completion.exactMatch} | ${interval(row.vsLongest.exactMatch)} | ${row.completion.editSimilarity} | ${interval(row.vsLongest.editSimilarity)} | ${row.completion.empty} | ${row.completion.syntaxBroken} |`);
  }
  return lines.join('\n');
}

/** The command line (exits with the usage error when it does not parse). */
function readArgs() {
  try {
    return parseArgs({
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
        contexts: { type: 'string', default: '128,256,512,1024' },
        'context-samples': { type: 'string', default: '200' },
        'context-cursors': { type: 'string' },
        threads: { type: 'string', default: '2' },
        seed: { type: 'string', default: '1' },
        details: { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (error) {
    fail((error as Error).message);
  }
}

/**
 * Scores the given build (no `selected` variants) or each variant, and keeps the default build (the extension's)
 * loaded for the measurements after: loaded here when no variant was it.
 */
async function scoreVariants(selected: readonly Variant[], modelDir: string, mainDir: string, mainName: string, inputs: Inputs): Promise<{ results: VariantResult[]; mainModel: LoadedModel }> {
  const results: VariantResult[] = [];
  let mainModel: LoadedModel | undefined;
  if (selected.length === 0) {
    const scored = await scoreBuilt(mainDir, mainName, inputs);
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
    // Speculation and context lengths run on the default build (the extension's): keep it, release the others.
    if (dir === mainDir) mainModel = scored.model;
    else await scored.model.decoder.dispose();
  }
  return { results, mainModel: mainModel ?? await loadModel(mainDir, 'cpu', inputs.threads) };
}

async function main(): Promise<void> {
  const values = readArgs();
  if (!values.model) fail('--model is required');
  const modelDir = path.resolve(values.model);
  if (!fs.existsSync(modelDir)) fail(`${modelDir} does not exist`);
  const builtGiven = isBuiltModel(modelDir);
  if (values.variants && builtGiven) fail('--variants builds the variants from weights: give a Hugging Face folder (config.json + *.safetensors)');
  const format = values.format;
  if (format !== 'int4' && format !== 'fp16' && format !== 'fp32') fail(`--format must be int4, fp16 or fp32 (got "${format}")`);
  const data = values.data ?? defaultDataFor(modelDir) ?? fail(`${modelDir} has no data/eval_files.txt: give the held-out files with --data`);
  const contexts = values.contexts.split(',').filter((b) => b !== '').map((b) => positive(b, '--contexts', 16)).sort((a, b) => a - b);

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

  const selected: readonly Variant[] = values.variants ? VARIANTS : [];
  const { results, mainModel } = await scoreVariants(selected, modelDir, mainDir, builtGiven ? path.basename(modelDir) : format, inputs);

  const speculationCases = positive(values['speculation-cases'], '--speculation-cases', 0);
  let speculation: SpeculationSummary | undefined;
  if (speculationCases > 0) {
    const cases = editCases(files, speculationCases);
    log(`speculation: ${cases.length} edit cases`);
    const model = mainModel;
    speculation = await measureSpeculation(model.decoder, (adaptive) => newGenerator(model, adaptive), cases, inputs.maxTokens);
  }
  const contextResult = contexts.length > 0
    ? await contextLength(mainModel, inputs, contexts, positive(values['context-samples'], '--context-samples'), positive(values['context-cursors'] ?? values.cursors, '--context-cursors'), positive(values.seed, '--seed', 0))
    : undefined;
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
    contextLength: contextResult,
  };
  if (contextResult) log(`context length:\n${contextTable(contextResult)}`);
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`eval: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
