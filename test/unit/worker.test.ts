/**
 * The inference worker as a real child process (the bundled dist/worker.js) on the tiny model, through the
 * client the extension uses: streaming, cancellation, crash recovery, liveness (a long native call is no hang; a
 * frozen worker is), device fallback, bad input, parent death.
 */
import assert from 'node:assert/strict';
import { fork, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { PhiDecoder } from '../../src/inference/decoder';
import { Generator } from '../../src/inference/generator';
import { RESTART_LIMIT, WorkerClient, WorkerError, type WorkerClientOptions } from '../../src/client/workerClient';
import type { GenerationParams, WorkerMessage } from '../../src/protocol';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { scratchDir, tinyModelDir } from '../support/tinyModels';

const WORKER = path.resolve(__dirname, '../../../dist/worker.js');
const GREEDY: GenerationParams = { maxNewTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], speculative: false };
const PROMPT = 'def fibonacci(n):\n    ';
/** A second file, for the tests of sequences (a KV cache per document). */
const PROMPT_B = 'import os\n\n\nclass Stack:\n    def __init__(self):\n        ';

let modelDir: string;
let expectedText: string;
let expectedTextB: string;
let promptTokens: number;
let promptTokensB: number;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A client for one test, shut down after it (passed or failed: a live worker would keep the test file running). */
function clientFor(t: TestContext, options: Omit<WorkerClientOptions, 'workerPath'>): WorkerClient {
  const client = new WorkerClient({ workerPath: WORKER, ...options });
  t.after(async () => {
    await client.shutdown();
    client.dispose();
  });
  return client;
}

/**
 * Runs `start` (which must start a worker) with a script preloaded into that worker that blocks its main thread
 * when the first message of type `type` arrives, for `blockMs` (forever when undefined) — before the worker handles
 * it, as a long synchronous native call (ONNX Runtime creating a session, running a pass) does.
 */
function withMainThreadBlocked<T>(type: string, blockMs: number | undefined, start: () => T): T {
  const script = path.join(scratchDir(), 'block.js');
  fs.writeFileSync(script, `
    let blocked = false;
    process.on('message', (message) => {
      if (blocked || message?.type !== ${JSON.stringify(type)}) return;
      blocked = true;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0${blockMs === undefined ? '' : `, ${blockMs}`});
    });
  `);
  const options = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = `${options ?? ''} --require ${JSON.stringify(script)}`;
  try {
    return start();
  } finally {
    if (options === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = options;
  }
}

before(async () => {
  modelDir = tinyModelDir('fp32', 'bigram');
  // What the engine produces in this process: the worker must stream exactly this.
  const decoder = await PhiDecoder.load(modelDir);
  const tokenizer = PhiTokenizer.fromFile(path.join(modelDir, 'tokenizer.json'));
  for (const prompt of [PROMPT, PROMPT_B]) {
    const generator = new Generator(decoder, tokenizer);
    const text = (await generator.generate({ prompt, maxNewTokens: GREEDY.maxNewTokens })).text;
    if (prompt === PROMPT) expectedText = text;
    else expectedTextB = text;
    await generator.dispose();
  }
  promptTokens = tokenizer.encode(PROMPT).length;
  promptTokensB = tokenizer.encode(PROMPT_B).length;
  await decoder.dispose();
});

describe('worker client', () => {
  let client: WorkerClient;
  before(() => {
    client = new WorkerClient({ workerPath: WORKER });
  });
  after(async () => {
    await client.shutdown();
    client.dispose();
  });

  test('a prefill before a model is loaded does nothing: it starts no worker', async () => {
    assert.equal(await client.prefill('file:///a.py', PROMPT, GREEDY.maxNewTokens), undefined);
    assert.equal(client.pid, undefined);
    assert.equal(client.state, 'stopped');
  });

  test('starts lazily, loads on the CPU and streams the completion the engine produces', async () => {
    assert.equal(client.pid, undefined, 'no process before the first request');
    const loaded = await client.load(modelDir, 'cpu', 1);
    assert.equal(loaded.device, 'cpu');
    assert.deepEqual(loaded.fallbacks, []);
    const deltas: string[] = [];
    const done = await client.generate(PROMPT, GREEDY, (text) => deltas.push(text));
    assert.equal(done.text, expectedText);
    assert.equal(deltas.join(''), expectedText);
    assert.ok(deltas.length > 1, 'the text arrives in pieces');
    assert.equal(client.state, 'ready');
  });

  test('prefill and generate on two sequences: each reuses its own prefilled cache and streams what the engine does', async () => {
    const a = 'file:///work/a.py';
    const b = 'file:///work/b.py';
    const warmA = await client.prefill(a, PROMPT, GREEDY.maxNewTokens);
    assert.equal(warmA?.outcome, 'done');
    // The test before generated from PROMPT on the default sequence: the new sequence copies that prefix.
    assert.deepEqual({ ...warmA.stats, prefillMs: 0 }, { quick: false, promptTokens, truncatedTokens: 0, reusedTokens: promptTokens - 1, prefilledTokens: 0, prefillMs: 0 });
    const warmB = await client.prefill(b, PROMPT_B, GREEDY.maxNewTokens);
    assert.equal(warmB?.outcome, 'done');
    assert.deepEqual({ ...warmB.stats, prefillMs: 0 }, { quick: false, promptTokens: promptTokensB, truncatedTokens: 0, reusedTokens: 0, prefilledTokens: promptTokensB - 1, prefillMs: 0 });

    const doneA = await client.generate(PROMPT, GREEDY, undefined, undefined, a);
    assert.equal(doneA.text, expectedText);
    assert.equal(doneA.stats.reusedTokens, promptTokens - 1, 'a was prefilled before b, and kept');
    const doneB = await client.generate(PROMPT_B, GREEDY, undefined, undefined, b);
    assert.equal(doneB.text, expectedTextB);
    assert.equal(doneB.stats.reusedTokens, promptTokensB - 1);
    const againA = await client.generate(PROMPT, GREEDY, undefined, undefined, a);
    assert.equal(againA.text, expectedText);
    assert.equal(againA.stats.reusedTokens, promptTokens - 1);

    // Typing in a file never read: the warm-up reads only the quick prompt's window (the request would answer
    // from it), and the request then reads its last token.
    const d = 'file:///work/d.py';
    const quick = { prompt: PROMPT, readLimit: 1 };
    const typing = await client.prefill(d, PROMPT_B + PROMPT, GREEDY.maxNewTokens, { quick, nextOnly: true });
    assert.equal(typing?.outcome, 'done');
    assert.deepEqual({ ...typing.stats, prefillMs: 0 }, { quick: true, promptTokens, truncatedTokens: 0, reusedTokens: promptTokens - 1, prefilledTokens: 0, prefillMs: 0 }, 'copied from a, which shares it');
    const doneD = await client.generate(PROMPT_B + PROMPT, { ...GREEDY, quick }, undefined, undefined, d);
    assert.equal(doneD.stats.quick, true);
    assert.equal(doneD.text, expectedText);
    assert.equal(doneD.stats.reusedTokens, promptTokens - 1);

    // A prefill sent while a generation runs is not run, and does not disturb it.
    let streaming: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (streaming = resolve));
    const running = client.generate(PROMPT_B, { ...GREEDY, maxNewTokens: 400 }, () => streaming(), undefined, 'file:///work/c.py');
    await started;
    const busy = await client.prefill(a, `${PROMPT}return`, GREEDY.maxNewTokens);
    assert.equal(busy?.outcome, 'busy');
    assert.notEqual((await running).finishReason, 'cancelled');
  });

  test('the cache budget applies without a reload: under room for one sequence, switching re-reads the file', async () => {
    const pid = client.pid;
    await client.generate(PROMPT, GREEDY, undefined, undefined, 'file:///work/a.py');
    // Lowered while idle: the most recently used sequence stays.
    client.setCacheBudget(1);
    const a = await client.generate(PROMPT, GREEDY, undefined, undefined, 'file:///work/a.py');
    assert.equal(a.stats.reusedTokens, promptTokens - 1);
    assert.equal((await client.generate(PROMPT_B, GREEDY, undefined, undefined, 'file:///work/b.py')).stats.reusedTokens, 0);
    const back = await client.generate(PROMPT, GREEDY, undefined, undefined, 'file:///work/a.py');
    assert.equal(back.stats.reusedTokens, 0);
    assert.equal(back.text, expectedText);
    client.setCacheBudget(512 * 2 ** 20);
    await client.generate(PROMPT_B, GREEDY, undefined, undefined, 'file:///work/b.py');
    assert.equal((await client.generate(PROMPT, GREEDY, undefined, undefined, 'file:///work/a.py')).stats.reusedTokens, promptTokens - 1);
    assert.equal(client.pid, pid, 'no new worker');
  });

  test('cancel stops the generation within a step of reaching the worker, which still reports done', async () => {
    // The worker is frozen while the cancel is sent and what it streamed so far is read: from then on, what it
    // generates is what it generated after the cancel reached it.
    const pid = client.pid!;
    const controller = new AbortController();
    let deltas = 0;
    let deltasBeforeCancel = -1;
    let resumed: Promise<void> | undefined;
    const done = await client.generate(PROMPT, { ...GREEDY, maxNewTokens: 400 }, () => {
      if (++deltas !== 3) return;
      process.kill(pid, 'SIGSTOP');
      controller.abort();
      resumed = new Promise<void>((resolve) => setImmediate(() => setImmediate(() => {
        deltasBeforeCancel = deltas;
        process.kill(pid, 'SIGCONT');
        resolve();
      })));
    }, controller.signal);
    await resumed;
    assert.equal(done.finishReason, 'cancelled');
    assert.ok(deltas - deltasBeforeCancel <= 2, `${deltas - deltasBeforeCancel} more pieces after the cancel reached the worker`);

    // A cancel that reaches the worker with its request (frozen while both are sent) stops it before any work.
    const early = new AbortController();
    early.abort();
    process.kill(pid, 'SIGSTOP');
    const cancelled = client.generate(PROMPT, GREEDY, undefined, early.signal);
    await new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
    process.kill(pid, 'SIGCONT');
    const none = await cancelled;
    assert.equal(none.finishReason, 'cancelled');
    assert.equal(none.stats.generatedTokens, 0);
    assert.equal(client.pid, pid);
  });

  test('kill -9 mid-stream: the request fails with a clear error, and the next one restarts the worker and works', async () => {
    const firstPid = client.pid!;
    const failed = client.generate(PROMPT, { ...GREEDY, maxNewTokens: 1500 }, () => process.kill(firstPid, 'SIGKILL'));
    await assert.rejects(failed, (error: WorkerError) => error.code === 'worker-crashed' && /was killed \(SIGKILL\); it restarts on the next request/.test(error.message));
    const done = await client.generate(PROMPT, GREEDY);
    assert.equal(done.text, expectedText);
    assert.notEqual(client.pid, firstPid);
  });

  test('asking for CUDA on a machine without it falls back to the CPU and says why', async () => {
    const loaded = await client.load(modelDir, 'cuda', 1);
    assert.equal(loaded.device, 'cpu');
    assert.equal(loaded.fallbacks.length, 1);
    assert.match(loaded.fallbacks[0], /^cuda: \S/);
    assert.equal((await client.generate(PROMPT, GREEDY)).text, expectedText);
  });

  test('a GPU-built model on the CPU streams the same completion and says which model suits the CPU', async () => {
    const loaded = await client.load(tinyModelDir('fp32', 'bigram', { kvOutputs: 'present_settled' }), 'cpu', 1);
    assert.equal(loaded.device, 'cpu');
    assert.match(loaded.advice ?? '', /for the CPU choose the model phi-1_5-int4$/);
    assert.equal((await client.generate(PROMPT, GREEDY)).text, expectedText);
    assert.equal((await client.load(modelDir, 'cpu', 1)).advice, undefined);
  });

  test('a broken model folder is a typed error naming what is missing, and the worker stays up', async () => {
    const broken = scratchDir();
    fs.copyFileSync(path.join(modelDir, 'manifest.json'), path.join(broken, 'manifest.json'));
    const pid = client.pid;
    await assert.rejects(client.load(broken, 'cpu', 1), (error: WorkerError) => error.code === 'model-invalid' && error.message.includes(`${broken} has no model.onnx`));
    assert.equal(client.pid, pid);
    await client.load(modelDir, 'cpu', 1);
    assert.equal((await client.generate(PROMPT, GREEDY)).text, expectedText);
  });

  test('shutdown ends the worker process', async () => {
    const pid = client.pid!;
    await client.shutdown();
    assert.equal(isAlive(pid), false);
    assert.equal(client.pid, undefined);
  });
});

test(`after ${RESTART_LIMIT} crashes in a row the client pauses until resumed`, async () => {
  const client = new WorkerClient({ workerPath: WORKER });
  await client.load(modelDir, 'cpu', 1);
  for (let crash = 0; crash < RESTART_LIMIT; crash++) {
    if (!client.pid) await client.generate(PROMPT, { ...GREEDY, maxNewTokens: 1 });
    const pid = client.pid!;
    process.kill(pid, 'SIGKILL');
    await waitUntil(() => client.pid !== pid, 'the client to notice the crash');
  }
  assert.equal(client.state, 'paused');
  await assert.rejects(client.generate(PROMPT, GREEDY), (error: WorkerError) => error.code === 'paused');
  client.resume();
  assert.equal((await client.generate(PROMPT, GREEDY)).text, expectedText);
  await client.shutdown();
  client.dispose();
});

test('a hung worker (no heartbeat) is killed, its request fails, and the next request works', async () => {
  const client = new WorkerClient({ workerPath: WORKER, heartbeatTimeoutMs: 2000 });
  await client.load(modelDir, 'cpu', 1);
  const pid = client.pid!;
  const hung = client.generate(PROMPT, { ...GREEDY, maxNewTokens: 1500 }, () => process.kill(pid, 'SIGSTOP'));
  await assert.rejects(hung, (error: WorkerError) => error.code === 'worker-crashed' && /was killed \(SIGKILL\)/.test(error.message));
  assert.equal((await client.generate(PROMPT, GREEDY)).text, expectedText);
  await client.shutdown();
  client.dispose();
});

test('a load that blocks the worker\'s main thread longer than the heartbeat timeout is not taken for a hang', async (t) => {
  const logged: string[] = [];
  const client = clientFor(t, { heartbeatTimeoutMs: 2000, log: (line) => logged.push(line) });
  const started = Date.now();
  const loaded = await withMainThreadBlocked('load', 6000, () => client.load(modelDir, 'cpu', 1));
  assert.ok(Date.now() - started >= 6000, 'the main thread was blocked through the load');
  assert.equal(loaded.device, 'cpu');
  const pid = client.pid;
  assert.equal((await client.generate(PROMPT, GREEDY)).text, expectedText);
  assert.equal(client.pid, pid, 'the same worker');
  assert.deepEqual(logged, [], 'no kill, no crash');
});

// Without the stall limit the request would never end: the timeout turns that into a failure.
test('a call that blocks the worker\'s main thread past the stall limit is a hang: killed, and the next request works', { timeout: 60_000 }, async (t) => {
  const logged: string[] = [];
  const client = clientFor(t, { heartbeatTimeoutMs: 2000, stallLimitMs: 1500, log: (line) => logged.push(line) });
  await withMainThreadBlocked('generate', undefined, () => client.load(modelDir, 'cpu', 1));
  const pid = client.pid!;
  await assert.rejects(client.generate(PROMPT, GREEDY), (error: WorkerError) => error.code === 'worker-crashed' && /was killed \(SIGKILL\)/.test(error.message));
  await waitUntil(() => logged.some((line) => /^worker: the main thread has been blocked for \d+ ms: heartbeat stopped$/.test(line)), 'the worker to say why');
  assert.ok(logged.includes('worker sent nothing for 2000 ms: killing it'), logged.join('\n'));
  assert.equal((await client.generate(PROMPT, GREEDY)).text, expectedText);
  assert.notEqual(client.pid, pid);
});

/** A worker entry point that blocks for `delayMs` (forever when undefined) before it loads dist/worker.js: a slow start. */
function slowStartingWorker(delayMs: number | undefined): string {
  const script = path.join(scratchDir(), 'slow-start.js');
  fs.writeFileSync(script, `
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0${delayMs === undefined ? '' : `, ${delayMs}`});
    require(${JSON.stringify(WORKER)});
  `);
  return script;
}

test('a worker that takes longer than the heartbeat timeout to start is not taken for a hang', async (t) => {
  const logged: string[] = [];
  const client = new WorkerClient({ workerPath: slowStartingWorker(4000), heartbeatTimeoutMs: 1000, log: (line) => logged.push(line) });
  t.after(async () => {
    await client.shutdown();
    client.dispose();
  });
  const started = Date.now();
  assert.equal((await client.load(modelDir, 'cpu', 1)).device, 'cpu');
  assert.ok(Date.now() - started >= 4000, 'the start was slow');
  assert.equal((await client.generate(PROMPT, GREEDY)).text, expectedText);
  assert.deepEqual(logged, [], 'no kill, no crash');
});

test('a worker that never starts is killed after the start timeout, with a message that says so', async (t) => {
  const logged: string[] = [];
  const client = new WorkerClient({ workerPath: slowStartingWorker(undefined), heartbeatTimeoutMs: 500, startTimeoutMs: 2000, log: (line) => logged.push(line) });
  t.after(async () => {
    await client.shutdown();
    client.dispose();
  });
  const started = Date.now();
  await assert.rejects(client.load(modelDir, 'cpu', 1), (error: WorkerError) => error.code === 'worker-crashed'
    && error.message === 'the inference worker did not start within 2 s (an antivirus scanning ONNX Runtime\'s files can slow its start) and was killed; it restarts on the next request');
  assert.ok(Date.now() - started >= 2000, 'held to the start timeout, not the heartbeat timeout');
  assert.ok(logged.includes('worker did not start within 2 s (an antivirus scanning ONNX Runtime\'s files can slow its start): killing it'), logged.join('\n'));
});

test('a host that was itself blocked longer than the heartbeat timeout does not kill a live worker for it', async (t) => {
  const logged: string[] = [];
  const client = clientFor(t, { heartbeatTimeoutMs: 2000, log: (line) => logged.push(line) });
  await client.load(modelDir, 'cpu', 1);
  const pid = client.pid;
  // The extension host busy elsewhere: the worker's beats queue up unread meanwhile.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 4000);
  assert.equal((await client.generate(PROMPT, GREEDY)).text, expectedText);
  assert.equal(client.pid, pid);
  assert.deepEqual(logged, []);
});

test('shutting down a worker blocked in a long call kills it after the grace period, and that is no crash', async (t) => {
  const logged: string[] = [];
  const client = clientFor(t, { log: (line) => logged.push(line) });
  await withMainThreadBlocked('generate', 30_000, () => client.load(modelDir, 'cpu', 1));
  const pending = client.generate(PROMPT, GREEDY);
  // Sent once the client has seen the model loaded (a turn later): before the shutdown.
  await new Promise((resolve) => setImmediate(resolve));
  await client.shutdown();
  await assert.rejects(pending, (error: WorkerError) => error.code === 'shut-down');
  assert.equal(client.state, 'stopped');
  assert.deepEqual(logged, [], 'no crash logged');
});

test('malformed messages get typed errors; the worker keeps serving', async () => {
  const worker = fork(WORKER, [], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const messages: WorkerMessage[] = [];
  worker.on('message', (message: WorkerMessage) => messages.push(message));
  const next = async (type: WorkerMessage['type']): Promise<WorkerMessage> => {
    await waitUntil(() => messages.some((m) => m.type === type), type);
    const index = messages.findIndex((m) => m.type === type);
    return messages.splice(index, 1)[0];
  };
  await next('ready');
  worker.send({ type: 'bogus' });
  assert.deepEqual(await next('error'), { type: 'error', code: 'bad-message', message: 'unknown message type "bogus"' });
  worker.send({ type: 'generate', id: 7, prompt: 'x', params: { maxNewTokens: -1 } });
  assert.deepEqual(await next('error'), { type: 'error', id: 7, code: 'bad-message', message: 'generate: params need maxNewTokens, temperature, topK, topP and seed as numbers' });
  worker.send({ type: 'generate', id: 8, prompt: 'x', params: GREEDY });
  assert.deepEqual(await next('error'), { type: 'error', id: 8, code: 'no-model', message: 'no model is loaded' });
  worker.send({ type: 'prefill', id: 11, sequence: '', prompt: 'x', maxNewTokens: 4 });
  assert.deepEqual(await next('error'), { type: 'error', id: 11, code: 'bad-message', message: 'prefill: sequence must be a non-empty string' });
  worker.send({ type: 'prefill', id: 12, sequence: 'file:///a.py', prompt: 'x', maxNewTokens: 4 });
  assert.deepEqual(await next('error'), { type: 'error', id: 12, code: 'no-model', message: 'no model is loaded' });
  worker.send({ type: 'configure', cacheBytes: -1 });
  assert.deepEqual(await next('error'), { type: 'error', code: 'bad-message', message: 'configure: cacheBytes must be a non-negative integer' });
  worker.send({ type: 'load', id: 9, modelDir: '/nonexistent/model', device: 'cpu', threads: 1 });
  assert.deepEqual(await next('error'), { type: 'error', id: 9, code: 'model-invalid', message: 'model folder /nonexistent/model does not exist' });
  worker.send({ type: 'load', id: 10, modelDir, device: 'cpu', threads: 1 });
  assert.equal((await next('loaded')).type, 'loaded');
  worker.send({ type: 'configure', cacheBytes: 1 });
  worker.send({ type: 'prefill', id: 13, sequence: 'file:///a.py', prompt: PROMPT, maxNewTokens: 4 });
  const prefilled = await next('prefilled');
  assert.deepEqual(prefilled.type === 'prefilled' && [prefilled.id, prefilled.outcome, prefilled.stats.prefilledTokens], [13, 'done', promptTokens - 1]);
  worker.kill();
});

test('the worker exits when the process that started it dies', async () => {
  // A stand-in extension host: starts a worker through the client, prints its pid, then waits.
  const hostScript = path.join(scratchDir(), 'host.js');
  fs.writeFileSync(hostScript, `
    const { WorkerClient } = require(${JSON.stringify(path.resolve(__dirname, '../../src/client/workerClient.js'))});
    const client = new WorkerClient({ workerPath: ${JSON.stringify(WORKER)} });
    client.load(${JSON.stringify(modelDir)}, 'cpu', 1).then(() => console.log(client.pid));
  `);
  const host = spawn(process.execPath, [hostScript], { stdio: ['ignore', 'pipe', 'inherit'] });
  const workerPid = await new Promise<number>((resolve) => host.stdout.setEncoding('utf8').once('data', (text: string) => resolve(Number(text.trim()))));
  assert.ok(isAlive(workerPid));
  host.kill('SIGKILL');
  await waitUntil(() => !isAlive(workerPid), 'the orphaned worker to exit');
});

test('a worker whose main thread is blocked forever exits when the process that started it dies', { timeout: 60_000 }, async (t) => {
  // The parent checks on the worker's main thread cannot run: its heartbeat thread must end it.
  const hostScript = path.join(scratchDir(), 'host.js');
  fs.writeFileSync(hostScript, `
    const { WorkerClient } = require(${JSON.stringify(path.resolve(__dirname, '../../src/client/workerClient.js'))});
    const client = new WorkerClient({ workerPath: ${JSON.stringify(WORKER)} });
    client.load(${JSON.stringify(modelDir)}, 'cpu', 1).catch(() => undefined);
    console.log(client.pid);
  `);
  // The stand-in host preloads the blocking script too; it has no IPC channel, so it never blocks.
  const host = withMainThreadBlocked('load', undefined, () => spawn(process.execPath, [hostScript], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const workerPid = await new Promise<number>((resolve) => host.stdout.setEncoding('utf8').once('data', (text: string) => resolve(Number(text.trim()))));
  t.after(() => {
    if (isAlive(workerPid)) process.kill(workerPid, 'SIGKILL');
  });
  // Long enough for the worker to start and block on the load.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  assert.ok(isAlive(workerPid));
  host.kill('SIGKILL');
  await waitUntil(() => !isAlive(workerPid), 'the orphaned, blocked worker to exit', 8000);
});
