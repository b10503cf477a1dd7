/**
 * Measured engines run in child processes of their own, so that each one's peak memory is its own: the parent
 * passes one JSON request as the argument, the child prints one JSON result as its last stdout line.
 *
 * A child asked for rounds (request mode "rounds") instead prepares once, prints {"ready":true}, and then answers
 * one line it reads on stdin at a time, until stdin ends: "round" times a decode round and prints {"round":…};
 * "prefill <i>" times a prefill of the request's prefillPrompts[i] into an empty cache and prints {"prefill":…}.
 * Two engines loaded side by side can then be timed in alternation.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as readline from 'node:readline';

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

/** A child's engine, prepared for rounds: each round is timed when the parent asks. */
export interface RoundsEngine<Round> {
  round(): Promise<Round>;
  /** Times a prefill of the request's prefillPrompts[index] (see PrefillRun); engines without prefills leave it out. */
  prefill?(index: number): Promise<PrefillRun>;
  dispose(): Promise<void>;
}

/**
 * One prefill timed in a round: the prompt fed into an empty cache (nothing reused), from the call to the first
 * token picked (the last position's logits and the greedy choice included), as PromptRunResult times it.
 */
export interface PrefillRun {
  readonly promptTokens: number;
  readonly ms: number;
  readonly tokensPerSecond: number;
}

export function prefillRun(promptTokens: number, ms: number): PrefillRun {
  return { promptTokens, ms, tokensPerSecond: (promptTokens * 1000) / ms };
}

/**
 * The child's side: runs `run` on the request in argv[2] and prints its result as the last stdout line, or, when
 * the request's mode is "rounds" and `prepareRounds` is given, answers rounds (see the top of this file).
 */
export function childMain<Request, Result, RoundsReq = never, Round = never>(
  label: string,
  run: (request: Request) => Promise<Result>,
  prepareRounds?: (request: RoundsReq) => Promise<RoundsEngine<Round>>,
): void {
  const argument = process.argv[2];
  const say = (message: unknown): Promise<void> => new Promise((resolve) => process.stdout.write(`${JSON.stringify(message)}\n`, () => resolve()));
  Promise.resolve().then(async () => {
    if (argument === undefined) throw new Error(`usage: ${label} <request JSON>`);
    const request = JSON.parse(argument) as { readonly mode?: unknown };
    if (!prepareRounds || request.mode !== 'rounds') {
      await say(await run(request as Request));
      return;
    }
    const engine = await prepareRounds(request as RoundsReq);
    try {
      await say({ ready: true });
      for await (const line of readline.createInterface({ input: process.stdin })) {
        const [command, argument] = line.trim().split(/\s+/);
        if (command === 'round') await say({ round: await engine.round() });
        else if (command === 'prefill') {
          if (!engine.prefill) throw new Error(`${label} times no prefills`);
          await say({ prefill: await engine.prefill(Number(argument)) });
        }
      }
    } finally {
      await engine.dispose();
    }
  }).then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${label}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}

/** The parent's handle on a child answering rounds. */
export interface RoundsChild<Round> {
  /** Times one round in the child. */
  next(): Promise<Round>;
  /** Times a prefill of the request's prefillPrompts[index] in the child. */
  prefill(index: number): Promise<PrefillRun>;
  /** Ends the child (it disposes its engine) and waits for it to exit. */
  close(): Promise<void>;
}

/** Starts `script` in rounds mode and resolves once it is prepared (its model loaded, its prompts evaluated). */
export async function startRoundsChild<Round>(script: string, label: string, request: { readonly mode: 'rounds' }): Promise<RoundsChild<Round>> {
  const child = spawn(process.execPath, [script, JSON.stringify(request)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${label} failed (${signal ?? `exit code ${String(code)}`}); see its stderr above`))));
  });
  exited.catch(() => undefined); // reported by whichever call is waiting
  child.stdin.on('error', () => undefined); // a write to a child that died: its exit says why
  // Protocol lines are JSON objects with "ready", "round" or "prefill"; anything else an engine prints is passed over.
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const message = async (key: 'ready' | 'round' | 'prefill'): Promise<unknown> => {
    for (;;) {
      const line = await lines.next();
      if (line.done) {
        await exited;
        throw new Error(`${label} exited without answering`);
      }
      try {
        const parsed = JSON.parse(line.value) as Record<string, unknown>;
        if (key in parsed) return parsed[key];
      } catch {
        // not a protocol line
      }
    }
  };
  try {
    await message('ready');
  } catch (error) {
    child.kill();
    throw error;
  }
  return {
    next: async () => {
      child.stdin.write('round\n');
      return (await message('round')) as Round;
    },
    prefill: async (index) => {
      child.stdin.write(`prefill ${index}\n`);
      return (await message('prefill')) as PrefillRun;
    },
    close: async () => {
      child.stdin.end();
      await exited;
    },
  };
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

/** Decode speed in one round, tokens per second, continuing after each prompt (see RoundsRequest). */
export interface DecodeRound {
  readonly context128: number;
  readonly context1024: number;
}

/**
 * Rounds of decoding: the child evaluates both prompts once (each in a cache of its own), then every round
 * generates `decodeTokens` more greedy tokens after each, continuing where the last round stopped; `rounds`
 * bounds how far the contexts grow. Prefills of `prefillPrompts` are timed on request, each into an empty cache
 * of its own (a third one, never the decode prompts'), so a prefill neither reuses nor disturbs anything.
 */
export type RoundsRequest<Common> = Common & BenchPrompts & {
  readonly mode: 'rounds';
  readonly rounds: number;
  readonly prefillPrompts: readonly (readonly number[])[];
};

export function roundsRequest<Common>(common: Common, prompts: BenchPrompts, rounds: number, prefillPrompts: readonly (readonly number[])[] = []): RoundsRequest<Common> {
  checkPrompts(prompts);
  checkCount('decodeTokens', prompts.decodeTokens, 1);
  checkCount('rounds', rounds, 1);
  prefillPrompts.forEach((prompt, i) => checkTokenIds(`prefillPrompts[${i}]`, prompt));
  return { ...common, mode: 'rounds', prompt128: prompts.prompt128, prompt1024: prompts.prompt1024, decodeTokens: prompts.decodeTokens, rounds, prefillPrompts };
}

/** The prefill prompt a "prefill <index>" line names, checked. */
export function prefillPrompt(request: { readonly prefillPrompts: readonly (readonly number[])[] }, index: number): readonly number[] {
  const prompt = Number.isInteger(index) ? request.prefillPrompts[index] : undefined;
  if (!prompt) throw new Error(`no prefill prompt ${index} (the request has ${request.prefillPrompts.length})`);
  return prompt;
}

function checkPrompts(prompts: BenchPrompts): void {
  checkTokenIds('prompt128', prompts.prompt128);
  checkTokenIds('prompt1024', prompts.prompt1024);
  checkCount('decodeTokens', prompts.decodeTokens, 0);
}

export function benchRequest<Common>(common: Common, prompts: BenchPrompts): PeerRequest<Common> {
  checkPrompts(prompts);
  return { ...common, mode: 'bench', prompt128: prompts.prompt128, prompt1024: prompts.prompt1024, decodeTokens: prompts.decodeTokens };
}

export function greedyRequest<Common>(common: Common, prompt: readonly number[], tokens: number): PeerRequest<Common> {
  checkTokenIds('prompt', prompt);
  checkCount('tokens', tokens, 1);
  return { ...common, mode: 'greedy', prompt, tokens };
}

/** The runner's first check of a request it was handed. */
export function checkPeerRequest<Common extends { readonly threads: number }>(request: PeerRequest<Common> | RoundsRequest<Common>): void {
  if (!['bench', 'greedy', 'rounds'].includes(request.mode)) throw new Error(`unknown mode ${JSON.stringify((request as { mode: unknown }).mode)}`);
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
