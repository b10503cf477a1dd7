/**
 * The real llama-server the in-editor suite's server tests (test/integration/suite/server.ts) point the extension
 * at: built once from node-llama-cpp's bundled llama.cpp sources (llama-server.sh), serving a GGUF written by the
 * bench's GGUF writer (bench/peers/gguf.ts, from the compiled out/). Two servers on loopback: one open, one with
 * --api-key (for the 401 case). Their addresses go to `.phi-it/server.json` for the suite.
 *
 * The model is a random-weight phi (bigram chain, like the tiny test model) of 8 layers × 512: big enough that one
 * llama-server thread decodes it at a few hundred tokens a second, so a request is still decoding when the suite
 * types the keystroke that must cancel it; small enough to write in seconds.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, repo, stopProcessGroup } from './tools.mjs';

/** The suite reads this from the channel folder. */
export const SERVER_INFO = 'server.json';
/** The key the second server demands. */
const API_KEY = 'phi-it-key';
const SERVER_START_MS = 120_000;

/** Builds (once) or finds llama-server; returns its path. Throws with the build's tail when it fails. */
export function buildLlamaServer(log) {
  log('llama-server: building it once into the tools folder, or finding it there (scripts/integration/llama-server.sh)');
  const started = Date.now();
  const build = spawnSync('bash', [path.join(repo, 'scripts/integration/llama-server.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const bin = build.stdout.trim().split('\n').at(-1);
  if (build.status !== 0 || !bin || !fs.existsSync(bin)) throw new Error(`building llama-server failed (exit ${build.status})`);
  log(`llama-server: ${bin} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return bin;
}

/** Writes the served model as a Q4_0 GGUF into `dir`; returns its path. */
export function writeServerModel(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const gguf = path.join(dir, 'server-model.gguf');
  const tokenizer = path.join(dir, 'tokenizer.json');
  const out = (file) => JSON.stringify(path.join(repo, 'out', file));
  const write = spawnSync(process.execPath, ['-e', `
    const fs = require('node:fs');
    const { writePhiGguf } = require(${out('bench/peers/gguf')});
    const { RandomWeights } = require(${out('src/model/weights')});
    const { PHI_TINY } = require(${out('src/model/config')});
    const { buildPhiTokenizerJson } = require(${out('src/tokenizer/tokenizerJson')});
    fs.writeFileSync(${JSON.stringify(tokenizer)}, JSON.stringify(buildPhiTokenizerJson()));
    const config = { ...PHI_TINY, hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 8 };
    writePhiGguf(new RandomWeights(config, 1234, 'server-test', 'bigram'), ${JSON.stringify(tokenizer)}, ${JSON.stringify(gguf)}, 'Q4_0');
  `], { encoding: 'utf8' });
  if (write.status !== 0) throw new Error(`writing the server's GGUF failed:\n${write.stderr}`);
  return gguf;
}

async function waitForHealth(url, child, logFile) {
  const deadline = Date.now() + SERVER_START_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`llama-server exited with code ${child.exitCode} before serving (log: ${logFile}):\n${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
    try {
      if ((await fetch(`${url}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`llama-server did not answer ${url}/health within ${SERVER_START_MS / 1000} s (log: ${logFile})`);
}

/**
 * Starts one llama-server on a free loopback port (its own process group), logging to `<tmp>/<name>.log`;
 * resolves to { child, url, logFile } once healthy. `threads`: its CPU threads (the suite's: 1).
 */
export async function startLlamaServer(bin, gguf, tmp, name, extraArgs, threads = 1) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logFile = path.join(tmp, `${name}.log`);
  const out = fs.openSync(logFile, 'w');
  const child = spawn(bin, [
    '-m', gguf, '--host', '127.0.0.1', '--port', String(port),
    // Two slots (completions and Explain Selection each keep a cache), the prompt cache reused across requests,
    // /slots for the cancellation check. Prompts read in batches of 128 tokens, as docs/server.md advises: a
    // warm-up the extension stops (for a quick answer) frees the server after its current batch.
    '--parallel', '2', '--ctx-size', '4096', '--threads', String(threads), '--threads-batch', String(threads), '--cache-reuse', '64', '--slots', '--no-webui',
    '--batch-size', '128', '--ubatch-size', '128',
    ...extraArgs,
  ], {
    detached: true,
    stdio: ['ignore', out, out],
    // /slots then shows each slot's prompt and generated text: how the suite tells its requests apart.
    env: { ...process.env, LLAMA_SERVER_SLOTS_DEBUG: '1' },
  });
  try {
    await waitForHealth(url, child, logFile);
  } catch (error) {
    await stopProcessGroup(child);
    throw error;
  }
  return { child, url, logFile };
}

/**
 * Builds llama-server if needed, writes its model, starts the two servers and writes `<channel>/server.json`
 * ({ url, keyedUrl, log }: the open server's log, where it says which tasks it cancelled). Returns { stop } (ends both).
 */
export async function startTestServers(tmp, channel, log) {
  const bin = buildLlamaServer(log);
  const started = Date.now();
  const gguf = writeServerModel(path.join(tmp, 'server-model'));
  const children = [];
  const stop = async () => {
    for (const child of children.splice(0)) await stopProcessGroup(child);
  };
  try {
    const open = await startLlamaServer(bin, gguf, tmp, 'llama-server', []);
    children.push(open.child);
    const keyed = await startLlamaServer(bin, gguf, tmp, 'llama-server-keyed', ['--api-key', API_KEY]);
    children.push(keyed.child);
    fs.writeFileSync(path.join(channel, SERVER_INFO), JSON.stringify({ url: open.url, keyedUrl: keyed.url, log: open.logFile }));
    log(`llama-server: serving on ${open.url} and, with --api-key, ${keyed.url} (model written and servers up in ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}
