/**
 * Measured engines run in child processes of their own, so that each one's peak memory is its own: the parent
 * passes one JSON request as the argument, the child prints one JSON result as its last stdout line.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';

/** Runs `script` with `request` in a fresh Node process and parses the JSON on its last stdout line. */
export function runJsonChild<Result>(script: string, label: string, request: unknown): Promise<Result> {
  return new Promise((resolve, reject) => {
    // stderr is passed through: it carries the engine's warnings and the child's errors.
    const child = spawn(process.execPath, [script, JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`${label} failed (${signal ?? `exit code ${String(code)}`}); see its stderr above`));
        return;
      }
      const lastLine = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(lastLine) as Result);
      } catch {
        reject(new Error(`${label} printed no JSON result; its stdout ended with: ${lastLine.slice(0, 500)}`));
      }
    });
  });
}

/** The child's side: runs `run` on the request in argv[2] and prints its result as the last stdout line. */
export function childMain<Request, Result>(label: string, run: (request: Request) => Promise<Result>): void {
  const argument = process.argv[2];
  Promise.resolve().then(() => {
    if (argument === undefined) throw new Error(`usage: ${label} <request JSON>`);
    return run(JSON.parse(argument) as Request);
  }).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0)),
    (error: unknown) => {
      process.stderr.write(`${label}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}

/** A /proc/self/status field in bytes (VmRSS: now, VmHWM: peak). */
export function procStatusBytes(field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  if (!match) throw new Error(`/proc/self/status has no ${field} line`);
  return Number(match[1]) * 1024;
}

/** A peer runner's timing request: after a 128- and a 1,024-token prompt, `decodeTokens` greedy tokens each. */
export interface BenchPrompts {
  readonly prompt128: readonly number[];
  readonly prompt1024: readonly number[];
  /** Greedy tokens timed after each prompt's first token. */
  readonly decodeTokens: number;
}

/** What a peer's runner is asked, on top of what its engine needs (`Common`): timings, or a greedy continuation for cross-checks. */
export type PeerRequest<Common> =
  | (Common & BenchPrompts & { readonly mode: 'bench' })
  | (Common & { readonly mode: 'greedy'; readonly prompt: readonly number[]; readonly tokens: number });

export function benchRequest<Common>(common: Common, prompts: BenchPrompts): PeerRequest<Common> {
  checkTokenIds('prompt128', prompts.prompt128);
  checkTokenIds('prompt1024', prompts.prompt1024);
  checkCount('decodeTokens', prompts.decodeTokens, 0);
  return { ...common, mode: 'bench', prompt128: prompts.prompt128, prompt1024: prompts.prompt1024, decodeTokens: prompts.decodeTokens };
}

export function greedyRequest<Common>(common: Common, prompt: readonly number[], tokens: number): PeerRequest<Common> {
  checkTokenIds('prompt', prompt);
  checkCount('tokens', tokens, 1);
  return { ...common, mode: 'greedy', prompt, tokens };
}

/** The runner's first check of a request it was handed. */
export function checkPeerRequest<Common extends { readonly threads: number }>(request: PeerRequest<Common>): void {
  if (request.mode !== 'bench' && request.mode !== 'greedy') throw new Error(`unknown mode ${JSON.stringify((request as { mode: unknown }).mode)}`);
  checkCount('threads', request.threads, 1);
}

function checkTokenIds(name: string, ids: readonly number[]): void {
  if (ids.length === 0 || ids.some((id) => !Number.isInteger(id) || id < 0)) throw new Error(`${name} must be a non-empty list of token ids`);
}

function checkCount(name: string, count: number, minimum: number): void {
  if (!Number.isInteger(count) || count < minimum) throw new Error(`${name} must be an integer ≥ ${minimum}, got ${count}`);
}

/** One engine's timings after one prompt. */
export interface PromptRunResult {
  readonly promptTokens: number;
  /** Prefill of the prompt plus picking the first token. */
  readonly timeToFirstTokenMs: number;
  /** promptTokens / time to first token. */
  readonly promptTokensPerSecond: number;
  /** Tokens generated after the first one, each a one-token evaluation. */
  readonly decodeTokens: number;
  readonly decodeMs: number;
  readonly decodeTokensPerSecond: number;
}

/** A peer's greedy run after one prompt, timed from the call to the first token and from there to the last. */
export interface TimedGeneration {
  readonly tokens: number[];
  readonly timeToFirstTokenMs: number;
  readonly decodeMs: number;
}

export function promptRunResult(promptTokens: number, run: TimedGeneration): PromptRunResult {
  const decodeTokens = run.tokens.length - 1;
  return {
    promptTokens,
    timeToFirstTokenMs: run.timeToFirstTokenMs,
    promptTokensPerSecond: (promptTokens * 1000) / run.timeToFirstTokenMs,
    decodeTokens,
    decodeMs: run.decodeMs,
    decodeTokensPerSecond: decodeTokens > 0 ? (decodeTokens * 1000) / run.decodeMs : 0,
  };
}
