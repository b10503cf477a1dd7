/**
 * npm run bench:host: the extension host's work per keystroke on large files (issue #28), with the real completion
 * pipeline and warmer, on a document that keeps its text as VS Code's extension host does (test/support/textDocument.ts:
 * lines in an array, line offsets recomputed lazily after an edit). Each keystroke types one character into a
 * generated Python module (a function typed in the middle of the file), then runs what VS Code triggers: the
 * warmer following the edit (its prompts, the window read ahead) and a completion request without the debounce
 * (prompts, request, first line, post-processing, cache), against a backend and a worker that answer at once, so
 * that only the host's own work is timed. Applying the edit to the document (VS Code's work) is not timed.
 * Prints one JSON summary on stdout: per file size, the milliseconds per keystroke (p50, p95, max), in wall time
 * and in this process's CPU time (which other processes on a loaded machine do not inflate), and the load average.
 *
 *   npm run bench:host -- [--sizes 20000000,900000] [--keystrokes 400]
 */
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import type * as vscode from 'vscode';
import type { BackendAnswer, CompletionBackend } from '../src/completion/backend';
import { CompletionPipeline, MAX_DOCUMENT_CHARS, documentLength, type CancellationSignal } from '../src/completion/pipeline';
import { PrefillRate } from '../src/completion/prefillRate';
import { CompletionPrompts } from '../src/completion/requestPrompts';
import { CompletionWarmer, type WarmerWindow, type WarmerWorkspace, type WarmTarget } from '../src/completion/warmer';
import type { GenerationStats, PrefilledEvent } from '../src/protocol';
import { DEFAULT_SETTINGS } from '../src/settings/settings';
import { generatedPython } from '../test/support/pythonSource';
import { TextDocumentModel } from '../test/support/textDocument';

/** What is typed, one character a keystroke: a function, again and again. */
const TYPED = 'def typed_here(values, scale=2):\n    """Scaled total."""\n    total = 0\n    for value in values:\n        total += value * scale\n    return total\n\n';
const STATS: GenerationStats = {
  promptTokens: 1, truncatedTokens: 0, reusedTokens: 0, copiedTokens: 0, prefillMs: 0, firstTokenMs: 0, generatedTokens: 1, decodeMs: 0,
  decodeSteps: 1, draftedTokens: 0, longestDraft: 0, acceptedDraftTokens: 0, recomputedRows: 0, pausedDraftSteps: 0, quick: false,
};
const NEVER: CancellationSignal = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose: () => undefined }) };
const NO_EVENT = (): { dispose(): void } => ({ dispose: () => undefined });

function log(message: string): void {
  process.stderr.write(`[bench:host] ${message}\n`);
}

function percentile(sorted: readonly number[], share: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))];
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

function summary(values: readonly number[]): { p50: number; p95: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: round(percentile(sorted, 0.5)), p95: round(percentile(sorted, 0.95)), max: round(sorted[sorted.length - 1]) };
}

/** Milliseconds of host work for each of `keystrokes` keystrokes typed into a generated module of `chars` characters. */
async function keystrokeCosts(chars: number, keystrokes: number): Promise<{ lines: number; chars: number; ms: number[]; cpuMs: number[] }> {
  const document = new TextDocumentModel(generatedPython(chars, 28));
  const settings = DEFAULT_SETTINGS;
  const backend: CompletionBackend = {
    generate(_prompt, _params, onDelta): Promise<BackendAnswer> {
      onDelta('    pass\n');
      return Promise.resolve({ text: '    pass\n', finishReason: 'stop', stats: STATS });
    },
  };
  let prefillId = 0;
  const worker: WarmTarget = {
    state: 'ready',
    onStateChange: NO_EVENT,
    prefill: (): Promise<PrefilledEvent> => Promise.resolve({ type: 'prefilled', id: ++prefillId, outcome: 'done', stats: { quick: false, promptTokens: 1, truncatedTokens: 0, reusedTokens: 0, prefilledTokens: 1, prefillMs: 1 } }),
  };
  const prefillRate = new PrefillRate();
  const prompts = new CompletionPrompts(prefillRate);
  const workspace: WarmerWorkspace = { getConfiguration: () => ({ get: <T>(_key: string, fallback: T): T => fallback }) } as unknown as WarmerWorkspace;
  const pipeline = new CompletionPipeline({ backend, settings: () => settings, configuration: workspace, prompts, prefillRate, ensureModel: () => Promise.resolve(true), log: { debug: () => undefined, warn: () => undefined } });

  // In the middle of the file, at the start of a line.
  let position = { line: Math.floor(document.lineCount / 2), character: 0 } as vscode.Position;
  const editor = { document, selection: { isEmpty: true, active: position } };
  const selectionListeners: ((event: { textEditor: unknown }) => void)[] = [];
  const window = {
    activeTextEditor: editor,
    state: { focused: true },
    onDidChangeActiveTextEditor: NO_EVENT,
    onDidChangeTextEditorSelection: (listener: (event: { textEditor: unknown }) => void) => {
      selectionListeners.push(listener);
      return { dispose: () => undefined };
    },
  } as unknown as WarmerWindow;
  // Rests (400 ms) never come: every keystroke's own work is what is timed.
  const warmer = new CompletionWarmer(window, workspace, worker, () => settings, prompts, undefined, prefillRate, 3_600_000);

  const ms: number[] = [];
  const cpuMs: number[] = [];
  for (let index = 0; index < keystrokes; index++) {
    position = document.insert(position, TYPED[index % TYPED.length]);
    editor.selection = { isEmpty: true, active: position };
    const started = performance.now();
    const cpu = process.cpuUsage();
    for (const listener of selectionListeners) listener({ textEditor: editor });
    await pipeline.complete({ document, sequence: document.uri.toString(), position, length: documentLength(document), eol: '\n', automatic: false }, NEVER);
    await new Promise((resolve) => setImmediate(resolve)); // the warm-ups that the edit started, to their end
    ms.push(performance.now() - started);
    const used = process.cpuUsage(cpu);
    cpuMs.push((used.user + used.system) / 1000);
  }
  warmer.dispose();
  return { lines: document.lineCount, chars: documentLength(document), ms, cpuMs };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sizes: { type: 'string', default: '20000000,900000' }, keystrokes: { type: 'string', default: '400' } } });
  const keystrokes = Number(values.keystrokes);
  const results = [];
  for (const size of values.sizes.split(',').map(Number)) {
    log(`${size} characters: ${keystrokes} keystrokes`);
    const { lines, chars, ms, cpuMs } = await keystrokeCosts(size, keystrokes);
    results.push({ chars, lines, completions: chars <= MAX_DOCUMENT_CHARS, keystrokes, msPerKeystroke: summary(ms), cpuMsPerKeystroke: summary(cpuMs) });
  }
  process.stdout.write(JSON.stringify({ bench: 'host', limitChars: MAX_DOCUMENT_CHARS, node: process.version, loadAverage: os.loadavg().map(round), results }, null, 2) + '\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
