/**
 * The inference worker as a real child process (the bundled dist/worker.js) on the tiny model, through the
 * client the extension uses: streaming, cancellation, crash recovery, device fallback, bad input, parent death.
 */
import assert from 'node:assert/strict';
import { fork, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PhiDecoder } from '../../src/inference/decoder';
import { Generator } from '../../src/inference/generator';
import { RESTART_LIMIT, WorkerClient, WorkerError } from '../../src/client/workerClient';
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
    assert.deepEqual({ ...warmA.stats, prefillMs: 0 }, { promptTokens, truncatedTokens: 0, reusedTokens: promptTokens - 1, prefilledTokens: 0, prefillMs: 0 });
    const warmB = await client.prefill(b, PROMPT_B, GREEDY.maxNewTokens);
    assert.equal(warmB?.outcome, 'done');
    assert.deepEqual({ ...warmB.stats, prefillMs: 0 }, { promptTokens: promptTokensB, truncatedTokens: 0, reusedTokens: 0, prefilledTokens: promptTokensB - 1, prefillMs: 0 });

    const doneA = await client.generate(PROMPT, GREEDY, undefined, undefined, a);
    assert.equal(doneA.text, expectedText);
    assert.equal(doneA.stats.reusedTokens, promptTokens - 1, 'a was prefilled before b, and kept');
    const doneB = await client.generate(PROMPT_B, GREEDY, undefined, undefined, b);
    assert.equal(doneB.text, expectedTextB);
    assert.equal(doneB.stats.reusedTokens, promptTokensB - 1);
    const againA = await client.generate(PROMPT, GREEDY, undefined, undefined, a);
    assert.equal(againA.text, expectedText);
    assert.equal(againA.stats.reusedTokens, promptTokens - 1);

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

  test('cancel stops the generation, which still reports done', async () => {
    const controller = new AbortController();
    const done = await client.generate(PROMPT, { ...GREEDY, maxNewTokens: 1500 }, () => controller.abort(), controller.signal);
    assert.equal(done.finishReason, 'cancelled');
    assert.ok(done.stats.generatedTokens < 1500);
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
