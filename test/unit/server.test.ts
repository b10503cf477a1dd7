/**
 * The server backend against small HTTP servers on 127.0.0.1 that answer as llama-server's /completion or an
 * OpenAI-compatible /v1/completions do, or fail as servers fail: what is sent (the prompt, greedy parameters,
 * the token only to the server's origin), what streams back, cancellation closing the request, and one clear
 * message per failure with the actions offered. The real llama-server is tested in the editor
 * (test/integration/suite/server.ts).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { GenerationParams } from '../../src/protocol';
import { BackendRouter, type LocalBackend } from '../../src/server/backendRouter';
import { EventStreamReader } from '../../src/server/serverApi';
import { describeServerAnswer, FAILURE_QUIET_MS, ServerBackend, type ServerEndpoint } from '../../src/server/serverBackend';
import { verifyServer } from '../../src/server/serverCheck';
import { ServerError } from '../../src/server/serverError';
import { ServerNotices, USE_LOCAL_MODEL } from '../../src/server/serverNotices';
import { OPEN_SETTINGS } from '../../src/settings/warnings';
import { DEFAULT_SETTINGS, readSettings, USER_ONLY_SETTINGS, SETTING_KEYS } from '../../src/settings/settings';
import { SettingsStore } from '../../src/settings/store';
import { VERIFY_PROMPT } from '../../src/shared/verifyPrompt';
import type { StatusKind } from '../../src/status/statusBar';

const PARAMS: GenerationParams = { maxNewTokens: 16, temperature: 0, topK: 0, topP: 0.95, seed: 0, stop: ['\ndef '], speculative: false };

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

type Handler = (request: http.IncomingMessage, response: http.ServerResponse, body: Record<string, unknown>) => void;

const servers: http.Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A server on 127.0.0.1 that records each request and answers with `handler`. */
async function serve(handler: Handler): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((request, response) => {
    let data = '';
    request.on('data', (chunk: Buffer) => (data += chunk.toString()));
    request.on('end', () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(data) as Record<string, unknown>;
      } catch {
        // not JSON
      }
      seen.push({ url: request.url ?? '', headers: request.headers, body });
      handler(request, response, body);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** A loopback URL whose port nothing listens on. */
async function closedPortUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

function sse(response: http.ServerResponse, events: unknown[], done = false): void {
  response.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const event of events) response.write(`data: ${JSON.stringify(event)}\n\n`);
  if (done) response.write('data: [DONE]\n\n');
  response.end();
}

function json(response: http.ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

function backend(endpoint: ServerEndpoint, options: { token?: string; timeoutMs?: number } = {}): { server: ServerBackend; failures: ServerError[] } {
  const failures: ServerError[] = [];
  const server = new ServerBackend({ endpoint: () => endpoint, token: () => Promise.resolve(options.token), timeoutMs: options.timeoutMs, onFailure: (error) => failures.push(error) });
  return { server, failures };
}

const llama = (url: string): ServerEndpoint => ({ url, api: 'llama.cpp', model: '' });

describe('llama-server /completion', () => {
  test('streams the text, sends the prompt greedy with the prompt cache, and reports the server\'s timings', async () => {
    const { url, seen } = await serve((_request, response) => sse(response, [
      { content: ' return', stop: false },
      { content: ' n', stop: false },
      { content: '', stop: true, stop_type: 'limit', timings: { prompt_n: 3, prompt_ms: 12.5, cache_n: 40, predicted_n: 2, predicted_ms: 8 } },
    ]));
    const reports: string[] = [];
    const server = new ServerBackend({ endpoint: () => llama(url), token: () => Promise.resolve(undefined), onAnswer: (report) => reports.push(`${report.host} ${describeServerAnswer(report).short}`) });
    const deltas: string[] = [];
    const answer = await server.generate('def f(n):\n   ', PARAMS, (text) => deltas.push(text), new AbortController().signal, 'file:///a.py');
    assert.equal(answer.text, ' return n');
    assert.deepEqual(deltas, [' return', ' n']);
    assert.equal(answer.finishReason, 'length');
    assert.equal(answer.stats.promptTokens, 43);
    assert.equal(answer.stats.reusedTokens, 40);
    assert.equal(answer.stats.generatedTokens, 2);
    assert.equal(answer.stats.decodeMs, 8);
    assert.equal(seen[0].url, '/completion');
    const body = seen[0].body;
    assert.equal(body.prompt, 'def f(n):\n   ');
    assert.equal(body.n_predict, 16);
    assert.equal(body.stream, true);
    assert.equal(body.cache_prompt, true);
    assert.equal(body.temperature, 0);
    assert.equal(body.repeat_penalty, 1);
    assert.deepEqual(body.stop, ['\ndef ']);
    assert.equal(seen[0].headers.authorization, undefined, 'no token set: no Authorization header');
    assert.deepEqual(reports, [`${new URL(url).host} 21 ms`]);
  });

  test('a warm-up reads the prompt with n_predict 0 and reports what the server read', async () => {
    const { url, seen } = await serve((_request, response) => json(response, 200, { content: '', stop: true, stop_type: 'limit', timings: { prompt_n: 30, prompt_ms: 90, cache_n: 10, predicted_n: 0, predicted_ms: 0 } }));
    const { server } = backend(llama(url));
    const warmed = await server.prefill('file:///a.py', 'import os\n', 64);
    assert.equal(seen[0].body.n_predict, 0);
    assert.equal(seen[0].body.stream, false);
    assert.equal(warmed?.outcome, 'done');
    assert.deepEqual({ read: warmed?.stats.prefilledTokens, cached: warmed?.stats.reusedTokens, ms: warmed?.stats.prefillMs }, { read: 30, cached: 10, ms: 90 });
  });

  test('aborting the signal (a keystroke) closes the request: the server sees the connection close, the answer is cancelled', async () => {
    let closed: Promise<void> | undefined;
    const { url } = await serve((request, response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(`data: ${JSON.stringify({ content: 'x', stop: false })}\n\n`);
      const timer = setInterval(() => response.write(`data: ${JSON.stringify({ content: 'y', stop: false })}\n\n`), 20);
      closed = new Promise((resolve) => response.on('close', () => {
        clearInterval(timer);
        resolve();
      }));
      void request;
    });
    const { server, failures } = backend(llama(url));
    const controller = new AbortController();
    let deltas = 0;
    const answer = await server.generate('p', { ...PARAMS, maxNewTokens: 1000 }, () => {
      if (++deltas === 3) controller.abort();
    }, controller.signal, 's');
    assert.equal(answer.finishReason, 'cancelled');
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the server never saw the request close')), 2000))]);
    assert.deepEqual(failures, []);
  });

  test('warm-ups run one at a time; a completion of the same document waits for its warm-up and names the slot that read it', async () => {
    const { url, seen } = await serve((_request, response, body) => {
      if (body.n_predict === 0) setTimeout(() => json(response, 200, { content: '', stop: true, stop_type: 'limit', id_slot: 1, timings: { prompt_n: 40, cache_n: 0, prompt_ms: 150, predicted_n: 0 } }), 150);
      else sse(response, [{ content: 'ok', stop: true, stop_type: 'eos', id_slot: 1 }]);
    });
    const { server } = backend(llama(url));
    const warming = server.prefill('file:///a.py', 'p', 8);
    assert.equal((await server.prefill('file:///a.py', 'p', 8))?.outcome, 'busy', 'a second warm-up was sent while one was in flight');
    const generating = server.generate('p', PARAMS, () => undefined, new AbortController().signal, 'file:///a.py');
    assert.equal((await warming)?.outcome, 'done', 'the completion aborted the warm-up of its own document');
    assert.equal((await generating).text, 'ok');
    assert.deepEqual(seen.map((r) => [r.body.n_predict, r.body.id_slot]), [[0, undefined], [16, 1]]);
  });

  test('the slot is remembered per window: the same window\'s next request names it, another window of the file does not', async () => {
    const { url, seen } = await serve((_request, response) => sse(response, [{ content: 'ok', stop: true, stop_type: 'eos', id_slot: 3 }]));
    const { server } = backend(llama(url));
    const signal = new AbortController().signal;
    await server.generate('import os\n\ndef a():\n    ', PARAMS, () => undefined, signal, 'file:///a.py');
    await server.generate('import os\n\ndef a():\n    return', PARAMS, () => undefined, signal, 'file:///a.py');
    await server.generate('class Far:\n    ', PARAMS, () => undefined, signal, 'file:///a.py');
    await server.generate('import os\n\ndef a():\n    ', PARAMS, () => undefined, signal, 'file:///b.py');
    // The server put each in slot 3, which now holds b.py's prompt: a.py's first window is gone from it.
    await server.generate('import os\n\ndef a():\n    return 1', PARAMS, () => undefined, signal, 'file:///a.py');
    assert.deepEqual(seen.map((r) => r.body.id_slot), [undefined, 3, undefined, undefined, undefined]);
  });

  test('a completion of another document aborts the warm-up in flight; busy while a completion runs', async () => {
    const { url } = await serve((_request, response, body) => {
      if (body.n_predict === 0) return; // never answers: only an abort ends it
      setTimeout(() => sse(response, [{ content: 'ok', stop: true, stop_type: 'eos' }]), 50);
    });
    const { server } = backend(llama(url));
    const warming = server.prefill('file:///b.py', 'p', 8);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const generating = server.generate('p', PARAMS, () => undefined, new AbortController().signal, 'file:///a.py');
    assert.equal((await warming)?.outcome, 'cancelled');
    assert.equal((await server.prefill('file:///a.py', 'p', 8))?.outcome, 'busy');
    assert.equal((await generating).text, 'ok');
  });

  test('a completion does not wait for a warm-up of another window of its document (the next one, read ahead): it aborts it', async () => {
    const { url } = await serve((_request, response, body) => {
      if (body.n_predict === 0) return; // never answers: only an abort ends it
      sse(response, [{ content: 'ok', stop: true, stop_type: 'eos' }]);
    });
    const { server } = backend(llama(url));
    const warming = server.prefill('file:///a.py', 'import sys\n\nclass Later:\n    pass\n', 8);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const answer = await server.generate('import os\n\ndef a():\n    ', PARAMS, () => undefined, new AbortController().signal, 'file:///a.py');
    assert.equal(answer.text, 'ok');
    assert.equal((await warming)?.outcome, 'cancelled');
  });

  test('a keystroke while the completion waits for its document\'s warm-up cancels the wait', async () => {
    const { url, seen } = await serve((_request, response, body) => {
      if (body.n_predict === 0) setTimeout(() => json(response, 200, { content: '', stop: true }), 300);
    });
    const { server } = backend(llama(url));
    const warming = server.prefill('file:///a.py', 'p', 8);
    const controller = new AbortController();
    const generating = server.generate('p', PARAMS, () => undefined, controller.signal, 'file:///a.py');
    setTimeout(() => controller.abort(), 50);
    assert.equal((await generating).finishReason, 'cancelled');
    assert.equal(seen.length, 1, 'the cancelled completion was sent');
    await warming;
  });
});

describe('the quick prompt, where the server has not read the window', () => {
  /** A window of ≈1,000 tokens (estimateTokens) and its last lines as the request's quick prompt. */
  const window = `${'import os\n'.repeat(300)}def f(n):\n    `;
  const quick = { prompt: 'def f(n):\n    ', readLimit: 48, maxNewTokens: 32 };
  const params: GenerationParams = { ...PARAMS, maxNewTokens: 64, quick };

  async function until(check: () => boolean, what: string): Promise<void> {
    for (let waited = 0; !check(); waited += 10) {
      if (waited > 2000) throw new Error(`never: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  test('answers from the quick prompt, ends with its first line, then reads the window, which the next request continues', async () => {
    const { url, seen } = await serve((_request, response, body) => {
      if (body.n_predict === 0) json(response, 200, { content: '', stop: true, id_slot: 2, timings: { prompt_n: 1000, cache_n: 0, prompt_ms: 900, predicted_n: 0 } });
      else sse(response, [{ content: ' a = 1', stop: false, id_slot: 2 }, { content: '\n    b', stop: false }, { content: ' = 2\n', stop: false }, { content: '', stop: true, stop_type: 'limit' }]);
    });
    const { server } = backend(llama(url));
    const signal = new AbortController().signal;
    const first = await server.generate(window, params, () => undefined, signal, 'file:///a.py');
    assert.deepEqual({ prompt: seen[0].body.prompt, n: seen[0].body.n_predict }, { prompt: quick.prompt, n: 32 }, 'the quick prompt, with its answer\'s length');
    assert.deepEqual({ text: first.text, finish: first.finishReason, quick: first.stats.quick }, { text: ' a = 1\n    b', finish: 'line', quick: true });
    await until(() => seen.length === 2, 'the window was read after the quick answer');
    assert.deepEqual({ prompt: seen[1].body.prompt, n: seen[1].body.n_predict }, { prompt: window, n: 0 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const next = await server.generate(`${window}return`, params, () => undefined, signal, 'file:///a.py');
    assert.deepEqual({ prompt: seen[2].body.prompt, slot: seen[2].body.id_slot, n: seen[2].body.n_predict }, { prompt: `${window}return`, slot: 2, n: 64 }, 'the window, in the slot that read it');
    assert.equal(next.stats.quick, false);
    assert.equal(next.finishReason, 'length');
  });

  test('a window read but for what the quick prompt\'s read limit covers is answered whole; without a quick prompt, always whole', async () => {
    const { url, seen } = await serve((_request, response, body) => {
      if (body.n_predict === 0) json(response, 200, { content: '', stop: true, id_slot: 0 });
      else sse(response, [{ content: 'x', stop: true, stop_type: 'eos', id_slot: 0 }]);
    });
    const { server } = backend(llama(url));
    await server.prefill('file:///a.py', window.slice(0, window.length - 100), 64);
    await server.generate(window, params, () => undefined, new AbortController().signal, 'file:///a.py');
    await server.generate(`class A:\n${window}`, PARAMS, () => undefined, new AbortController().signal, 'file:///a.py');
    assert.deepEqual(seen.slice(1).map((r) => r.body.prompt), [window, `class A:\n${window}`]);
  });

  test('stops its document\'s warm-up rather than wait behind the whole window, which is read again after the answer', async () => {
    let warmUps = 0;
    let firstWarmUpClosed = false;
    const { url, seen } = await serve((_request, response, body) => {
      if (body.n_predict === 0 && ++warmUps === 1) response.on('close', () => (firstWarmUpClosed = true)); // answers only when aborted
      else if (body.n_predict === 0) json(response, 200, { content: '', stop: true, id_slot: 0 });
      else sse(response, [{ content: ' x\n', stop: false }, { content: 'y', stop: true, stop_type: 'eos' }]);
    });
    const { server } = backend(llama(url));
    const warming = server.prefill('file:///a.py', window, 64);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const answer = await server.generate(window, params, () => undefined, new AbortController().signal, 'file:///a.py');
    assert.deepEqual({ text: answer.text, finish: answer.finishReason }, { text: ' x\ny', finish: 'line' });
    assert.equal((await warming)?.outcome, 'cancelled');
    await until(() => seen.length === 3, 'the window was read again after the quick answer');
    assert.equal(firstWarmUpClosed, true);
    assert.deepEqual(seen.map((r) => [r.body.prompt, r.body.n_predict]), [[window, 0], [quick.prompt, 32], [window, 0]]);
  });

  test('an OpenAI-compatible server (no slots) is taken to keep what it answered: the next request sends the window', async () => {
    const { url, seen } = await serve((_request, response, body) => {
      if (body.stream === false) json(response, 200, { choices: [{ text: '', finish_reason: 'length' }] });
      else sse(response, [{ choices: [{ text: ' y = 1\n', finish_reason: null }] }], true);
    });
    const { server } = backend({ url, api: 'openai', model: 'm' });
    const signal = new AbortController().signal;
    await server.generate(window, params, () => undefined, signal, 'file:///a.py');
    await until(() => seen.length === 2, 'the window was read after the quick answer');
    await new Promise((resolve) => setTimeout(resolve, 20));
    await server.generate(window, params, () => undefined, signal, 'file:///a.py');
    assert.deepEqual(seen.map((r) => [r.body.prompt, r.body.stream]), [[quick.prompt, true], [window, false], [window, true]]);
  });
});

describe('OpenAI-compatible /v1/completions', () => {
  test('sends the model name, streams choices to [DONE], and cuts at a stop sequence the server did not apply', async () => {
    const { url, seen } = await serve((_request, response) => sse(response, [
      { choices: [{ text: ' return 1', finish_reason: null }] },
      { choices: [{ text: '\nde', finish_reason: null }] },
      { choices: [{ text: 'f g():', finish_reason: null }] },
    ], true));
    const { server } = backend({ url, api: 'openai', model: 'microsoft/phi-1_5' });
    const answer = await server.generate('def f():\n   ', PARAMS, () => undefined, new AbortController().signal, 's');
    assert.equal(seen[0].url, '/v1/completions');
    assert.equal(seen[0].body.model, 'microsoft/phi-1_5');
    assert.equal(seen[0].body.max_tokens, 16);
    assert.equal(answer.text, ' return 1');
    assert.equal(answer.finishReason, 'stop');
  });
});

describe('the token', () => {
  test('is sent as a bearer token to the server, and a redirect elsewhere is not followed', async () => {
    const elsewhere = await serve((_request, response) => json(response, 200, { content: 'leaked', stop: true }));
    const { url, seen } = await serve((_request, response) => {
      response.writeHead(302, { location: `${elsewhere.url}/completion` });
      response.end();
    });
    const { server, failures } = backend(llama(url), { token: 'tok-123' });
    await assert.rejects(server.generate('p', PARAMS, () => undefined, new AbortController().signal, 's'), (error: ServerError) => error.failure === 'not-the-api' && /redirect/.test(error.message));
    assert.equal(seen[0].headers.authorization, 'Bearer tok-123');
    assert.equal(elsewhere.seen.length, 0, 'the redirect was followed');
    assert.equal(failures.length, 1);
  });
});

describe('failures: one clear message each', () => {
  const cases: { name: string; failure: ServerError['failure']; message: RegExp; handler?: Handler; url?: string; timeoutMs?: number; api?: 'openai' }[] = [
    { name: 'connection refused', failure: 'refused', message: /refused the connection: is it running\?/, url: 'closed' },
    { name: '401', failure: 'unauthorized', message: /asks for a token \(401\).*Invalid API Key.*Set Server Token/, handler: (_q, r) => json(r, 401, { error: { code: 401, message: 'Invalid API Key', type: 'authentication_error' } }) },
    { name: '403', failure: 'forbidden', message: /refused this token \(403\)/, handler: (_q, r) => json(r, 403, { error: 'forbidden' }) },
    { name: 'unknown model', failure: 'unknown-model', message: /does not serve the model named in phiComplete\.server\.model.*does not exist/, api: 'openai', handler: (_q, r) => json(r, 404, { error: { message: 'The model `phi-2` does not exist.', type: 'NotFoundError', code: 404 } }) },
    { name: 'timeout', failure: 'timeout', message: /did not answer in time/, timeoutMs: 300, handler: () => undefined },
    { name: '5xx', failure: 'server-error', message: /failed \(500: out of memory\)\. See its log\./, handler: (_q, r) => json(r, 500, { error: { message: 'out of memory' } }) },
    { name: 'not the API (an HTML page)', failure: 'not-the-api', message: /did not answer as phiComplete\.server\.api says.*text\/html/, handler: (_q, r) => { r.writeHead(200, { 'content-type': 'text/html' }); r.end('<html>router login</html>'); } },
    { name: 'not the API (JSON of another shape)', failure: 'not-the-api', message: /no "content"/, handler: (_q, r) => json(r, 200, { result: 'x' }) },
    { name: 'plain http to another machine', failure: 'insecure', message: /plain http.*must use https/, url: 'http://192.0.2.1:8080' },
  ];
  for (const c of cases) {
    test(`${c.name}: ${c.failure}`, async () => {
      const url = c.url === 'closed' ? await closedPortUrl() : c.url ?? (await serve(c.handler!)).url;
      const endpoint: ServerEndpoint = { url, api: c.api ?? 'llama.cpp', model: c.api ? 'phi-2' : '' };
      const { server, failures } = backend(endpoint, { timeoutMs: c.timeoutMs });
      await assert.rejects(server.generate('p', PARAMS, () => undefined, new AbortController().signal, 's'), (error: ServerError) => {
        assert.equal(error.failure, c.failure);
        assert.match(error.message, c.message);
        return true;
      });
      assert.equal(failures.length, 1);
    });
  }

  test('after a failure, requests to the same server fail at once without a request for a while (no retry loop)', async () => {
    const { url, seen } = await serve((_q, r) => json(r, 503, { error: { message: 'loading model' } }));
    const { server, failures } = backend(llama(url));
    for (let i = 0; i < 3; i++) await assert.rejects(server.generate('p', PARAMS, () => undefined, new AbortController().signal, 's'));
    assert.equal(seen.length, 1, 'each keystroke sent a request again');
    assert.equal(failures.length, 3, 'each failed request is reported (the notices tell a kind once)');
    assert.ok(FAILURE_QUIET_MS >= 5000);
    server.forgetFailure();
    await assert.rejects(server.generate('p', PARAMS, () => undefined, new AbortController().signal, 's'));
    assert.equal(seen.length, 2);
  });

  test('each kind is told once, with Open Settings, and Use the local model only where a local model exists', async () => {
    const shown: { message: string; actions: string[] }[] = [];
    let local = false;
    let usedLocal = 0;
    const notices = new ServerNotices({
      notify: (message, ...actions) => {
        shown.push({ message, actions });
        return Promise.resolve(actions.includes(USE_LOCAL_MODEL) ? USE_LOCAL_MODEL : undefined);
      },
      openSettings: () => Promise.resolve(),
      useLocalModel: () => Promise.resolve(usedLocal++),
      localModelExists: () => local,
    });
    notices.failed(new ServerError('refused', 'refused'));
    notices.failed(new ServerError('refused', 'refused'));
    local = true;
    notices.failed(new ServerError('timeout', 'timeout'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(shown, [
      { message: 'phi-complete: refused', actions: [OPEN_SETTINGS] },
      { message: 'phi-complete: timeout', actions: [OPEN_SETTINGS, USE_LOCAL_MODEL] },
    ]);
    assert.equal(usedLocal, 1);
    notices.reset();
    notices.failed(new ServerError('refused', 'refused'));
    assert.equal(shown.length, 3);
  });
});

describe('settings and routing', () => {
  test('the server settings read and validate; a server without a URL falls back to local with a problem', () => {
    const values: Record<string, unknown> = { backend: 'server', 'server.url': 'http://127.0.0.1:8080/', 'server.api': 'openai', 'server.model': ' phi ' };
    const read = readSettings((key) => values[key]);
    assert.deepEqual({ backend: read.settings.backend, url: read.settings.serverUrl, api: read.settings.serverApi, model: read.settings.serverModel }, { backend: 'server', url: 'http://127.0.0.1:8080', api: 'openai', model: 'phi' });
    const noUrl = readSettings((key) => ({ backend: 'server' } as Record<string, unknown>)[key]);
    assert.equal(noUrl.settings.backend, 'local');
    assert.match(noUrl.problems.join('\n'), /server\.url is not set/);
    const insecure = readSettings((key) => ({ 'server.url': 'http://10.0.0.5:8080' } as Record<string, unknown>)[key]);
    assert.equal(insecure.settings.serverUrl, '');
    assert.match(insecure.warnings.join('\n'), /server\.url.*https/);
    assert.equal(DEFAULT_SETTINGS.backend, 'local');
    assert.deepEqual(USER_ONLY_SETTINGS.map((name) => SETTING_KEYS[name]).sort(), ['backend', 'server.api', 'server.model', 'server.url']);
  });

  test('package.json declares the server settings application-scoped (a workspace cannot set them)', () => {
    const { contributes } = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')) as { contributes: { configuration: { properties: Record<string, { scope?: string }> } } };
    for (const name of USER_ONLY_SETTINGS) assert.equal(contributes.configuration.properties[`phiComplete.${SETTING_KEYS[name]}`]?.scope, 'application', name);
  });

  test('with the local backend nothing goes to the server; with the server, completions, warm-ups and explanations do', async () => {
    const values: Record<string, unknown> = { 'server.url': 'http://127.0.0.1:9' };
    let listener = (): void => undefined;
    const store = new SettingsStore({ readSetting: (key) => values[key], onDidChangeSettings: (l) => ((listener = l), { dispose: () => undefined }) });
    const calls: string[] = [];
    const answer = { text: 'x', finishReason: 'eos' as const, stats: {} as never };
    const local: LocalBackend = {
      state: 'stopped',
      onStateChange: () => ({ dispose: () => undefined }),
      generate: () => (calls.push('local generate'), Promise.resolve(answer)),
      prefill: () => (calls.push('local prefill'), Promise.resolve(undefined)),
    };
    const server = {
      generate: () => (calls.push('server generate'), Promise.resolve(answer)),
      prefill: () => (calls.push('server prefill'), Promise.resolve(undefined)),
    };
    const shown: string[] = [];
    const router = new BackendRouter({
      local, server, store, ensureLocalModel: () => (calls.push('load local'), Promise.resolve(true)), reportLocalActivity: () => undefined,
      status: { setServer: (host) => shown.push(`server ${host}`), show: (kind: StatusKind) => shown.push(kind) },
      verifyLocal: () => (calls.push('verify local'), Promise.resolve('local')),
      verifyServer: () => (calls.push('verify server'), Promise.resolve('server')),
    });
    const signal = new AbortController().signal;
    await router.ensureModel();
    await router.generate('p', PARAMS, () => undefined, signal, 's');
    await router.prefill('s', 'p', 8);
    await router.verify();
    assert.deepEqual(calls, ['load local', 'local generate', 'local prefill', 'verify local']);
    values.backend = 'server';
    listener();
    calls.length = 0;
    assert.equal(await router.ensureModel(), true);
    assert.equal(router.state, 'ready');
    await router.generate('p', PARAMS, () => undefined, signal, 's');
    await router.prefill('s', 'p', 8);
    await router.verify();
    assert.deepEqual(calls, ['server generate', 'server prefill', 'verify server']);
    assert.deepEqual(shown, ['server 127.0.0.1:9', 'ready']);
    router.dispose();
    store.dispose();
  });

  test('Verify Model with a server: the server completes the prompt now, and its answer, host and speed are told', async () => {
    const { url, seen } = await serve((_request, response) => sse(response, [
      { content: ' a', stop: false }, { content: ' + b', stop: false },
      { content: '', stop: true, stop_type: 'word', timings: { prompt_n: 9, prompt_ms: 30, cache_n: 0, predicted_n: 3, predicted_ms: 50 } },
    ]));
    const { server } = backend(llama(url));
    const told: string[] = [];
    const report = await verifyServer({ server, notices: { reset: () => told.push('reset') }, host: '127.0.0.1:1', log: () => undefined, tell: (severity, message) => told.push(`${severity} ${message}`) });
    assert.equal(seen[0].body.prompt, VERIFY_PROMPT);
    assert.match(report ?? '', /^the server at 127\.0\.0\.1:1 answers: "def add\(a, b\): return a \+ b" — 3 tokens, first after \d+ ms, 60\.0 tokens\/s$/);
    assert.deepEqual(told, ['reset', `info phi-complete: ${report}`]);
  });

  test('Verify Model with a server that fails: sent even just after a failure, and its message told again', async () => {
    const { url, seen } = await serve((_request, response) => json(response, 401, { error: { code: 401, message: 'Invalid API Key' } }));
    const shown: string[] = [];
    const notices = new ServerNotices({ notify: (message) => (shown.push(message), Promise.resolve(undefined)), openSettings: () => Promise.resolve(), useLocalModel: () => Promise.resolve(), localModelExists: () => false });
    const server = new ServerBackend({ endpoint: () => llama(url), token: () => Promise.resolve(undefined), onFailure: (error) => notices.failed(error) });
    await assert.rejects(server.generate('p', PARAMS, () => undefined, new AbortController().signal, 's'));
    const parts = { server, notices, host: 'h', log: () => undefined, tell: () => assert.fail('a failure was told as an answer') };
    assert.equal(await verifyServer(parts), undefined);
    assert.equal(await verifyServer(parts), undefined);
    assert.equal(seen.length, 3, 'Verify Model waited out the quiet time after a failure instead of asking the server');
    assert.equal(shown.length, 3);
    assert.match(shown[2], /asks for a token \(401\)/);
  });

  test('the event stream reader splits data lines across chunk boundaries', () => {
    const reader = new EventStreamReader();
    assert.deepEqual(reader.push('data: {"a"'), []);
    assert.deepEqual(reader.push(':1}\r\n\n: comment\ndata: [DONE]\n'), ['{"a":1}', '[DONE]']);
  });
});
