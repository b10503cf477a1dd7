/**
 * Installing a catalogue-style model end to end on loopback: download the Hugging Face files from a local
 * hub-like server, convert them in a child process, load the result and generate; two installs at once from
 * two processes, stale locks, damaged installs and their repair, disk space, and a conversion whose editor dies.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PhiDecoder } from '../../src/inference/decoder';
import { KvCache } from '../../src/inference/kvCache';
import { ResidentKvCache } from '../../src/inference/residentKvCache';
import { CATALOGUE, type CatalogueEntry } from '../../src/install/catalogue';
import { DownloadError } from '../../src/install/download';
import { hasCurrentLayout, importLocalFolder, installCatalogueModel, installedModelDir, isBuiltAs, isInstalled, type InstallProgress } from '../../src/install/install';
import { defaultKvCache, INT4_LAYOUT, modelFileHashProblems, readManifest, returnsCache } from '../../src/model/manifest';
import { locateModel } from '../../src/modelLocation';
import { PHI_1_5, PHI_TINY } from '../../src/model/config';
import { phiConfigCheck, phiTokenizerCheck } from '../../src/install/knownContent';
import { writeSafetensors } from '../../src/model/safetensors';
import { DEFAULT_SETTINGS } from '../../src/settings/settings';
import { buildPhiTokenizerJson } from '../../src/tokenizer/tokenizerJson';
import { phiTensorShapes } from '../../src/model/weights';
import { scratchDir, tinyWeights } from '../support/tinyModels';

const CONVERT = path.resolve(__dirname, '../../../dist/convert.js');
const INSTALL_PROCESS = path.resolve(__dirname, '../support/installProcess.js');
const CONVERT_PARENT = path.resolve(__dirname, '../support/convertParent.js');
const REVISION = '0123456789abcdef0123456789abcdef01234567';

let checkpoint: string;
let server: http.Server;
let endpoint: string;
const requests: string[] = [];
/** Serve model.safetensors slowly (about a second and a half), so that two installs started together overlap. */
let slowWeights = false;

before(async () => {
  // A Hugging Face style checkpoint of the tiny model, in fp16 like the real phi-1.5 release.
  checkpoint = scratchDir();
  const weights = tinyWeights('bigram');
  const tensors = new Map([...phiTensorShapes(PHI_TINY)].map(([name, shape]) => [name, { shape, data: weights.tensor(name) }]));
  writeSafetensors(path.join(checkpoint, 'model.safetensors'), tensors, 'F16');
  fs.writeFileSync(path.join(checkpoint, 'config.json'), JSON.stringify({ model_type: 'phi', ...PHI_TINY }));
  fs.writeFileSync(path.join(checkpoint, 'tokenizer.json'), JSON.stringify(buildPhiTokenizerJson()));
  server = http.createServer((request, response) => {
    requests.push(request.url ?? '');
    const match = /^\/tiny\/phi\/resolve\/([0-9a-f]+)\/([\w.]+)$/.exec(request.url ?? '');
    const file = match && match[1] === REVISION ? path.join(checkpoint, match[2]) : '';
    if (!file || !fs.existsSync(file)) {
      response.writeHead(404).end('not found');
      return;
    }
    const bytes = fs.readFileSync(file);
    response.writeHead(200, { 'Content-Length': bytes.length, 'X-Linked-Etag': `"${createHash('sha256').update(bytes).digest('hex')}"` });
    if (!slowWeights || !file.endsWith('.safetensors')) {
      response.end(bytes);
      return;
    }
    const piece = Math.ceil(bytes.length / 30);
    let sent = 0;
    const timer = setInterval(() => {
      response.write(bytes.subarray(sent, sent + piece));
      sent += piece;
      if (sent >= bytes.length) {
        clearInterval(timer);
        response.end();
      }
    }, 50);
    response.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

const entry: CatalogueEntry = {
  id: 'tiny-int4',
  title: 'tiny phi, int4',
  source: {
    repo: 'tiny/phi',
    revision: REVISION,
    // As the catalogue's: the small files checked by content, the weights by the hub's X-Linked-Etag here.
    files: [{ name: 'config.json', content: phiConfigCheck(PHI_TINY) }, { name: 'model.safetensors' }, { name: 'tokenizer.json', content: phiTokenizerCheck() }],
  },
  build: { format: 'int4' },
  downloadBytes: 0,
  modelBytes: 0,
};

test('download + convert in a child process + load + generate; a second install does nothing', async () => {
  const storageDir = scratchDir();
  const stages = new Set<InstallProgress['stage']>();
  const dir = await installCatalogueModel(entry, { storageDir, endpoint, convertScript: CONVERT, onProgress: (p) => stages.add(p.stage) });
  assert.deepEqual([...stages], ['download', 'convert']);
  assert.ok(isInstalled(dir));
  const decoder = await PhiDecoder.load(dir);
  assert.equal((await decoder.forward([50256, 4299], decoder.createCache(), 1)).length, PHI_TINY.vocab_size);
  await decoder.dispose();
  const before = requests.length;
  assert.equal(await installCatalogueModel(entry, { storageDir, endpoint, convertScript: CONVERT }), dir);
  assert.equal(requests.length, before, 'no network access for an installed model');
});

test('a model built otherwise than its catalogue entry now says is rebuilt from the kept download', async () => {
  const storageDir = scratchDir();
  const dir = await installCatalogueModel(entry, { storageDir, endpoint, convertScript: CONVERT });
  assert.equal(readManifest(dir).kvCache, 'int8', 'int4 models get the int8 cache by default');
  const floatCache: CatalogueEntry = { ...entry, build: { format: 'int4', kvCache: 'float' } };
  assert.equal(isBuiltAs(dir, entry.build), true);
  assert.equal(isBuiltAs(dir, floatCache.build), false);
  const weightRequests = (): number => requests.filter((url) => url.endsWith('/model.safetensors')).length;
  const before = weightRequests();
  const stages: string[] = [];
  assert.equal(await installCatalogueModel(floatCache, { storageDir, endpoint, convertScript: CONVERT, onProgress: (p) => stages.push(p.message) }), dir);
  assert.equal(weightRequests(), before, 'the weights are not downloaded again');
  assert.ok(stages.some((message) => message.includes('float KV cache')), stages.join('\n'));
  assert.equal(readManifest(dir).kvCache, 'float');
  const decoder = await PhiDecoder.load(dir);
  assert.deepEqual(decoder.kvPlanes.map((plane) => `${plane.name}:${plane.dtype}`), ['key:float32', 'value:float32']);
  assert.ok(decoder.createCache() instanceof KvCache);
  await decoder.dispose();

  // The GPU build (cache outputs the GPU keeps), as the phi-1_5-int4-gpu entry asks.
  const gpu: CatalogueEntry = { ...entry, build: { format: 'int4', kvCache: 'float', kvOutputs: 'present_settled' } };
  assert.equal(isBuiltAs(dir, gpu.build), false);
  assert.equal(await installCatalogueModel(gpu, { storageDir, endpoint, convertScript: CONVERT, onProgress: (p) => stages.push(p.message) }), dir);
  assert.equal(weightRequests(), before, 'the weights are not downloaded again');
  assert.ok(stages.some((message) => message.includes('for a GPU')), stages.join('\n'));
  assert.equal(readManifest(dir).kvOutputs, 'present_settled');
  const gpuDecoder = await PhiDecoder.load(dir);
  assert.ok(gpuDecoder.createCache() instanceof ResidentKvCache);
  await gpuDecoder.dispose();

  // A model converted before manifests recorded the int4 layout (then blocks of 64) is rebuilt in today's layout.
  assert.equal(await installCatalogueModel(entry, { storageDir, endpoint, convertScript: CONVERT }), dir);
  assert.deepEqual(readManifest(dir).int4Layout, INT4_LAYOUT);
  const manifestPath = path.join(dir, 'manifest.json');
  const older = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
  delete older.int4Layout;
  fs.writeFileSync(manifestPath, JSON.stringify(older));
  assert.equal(isBuiltAs(dir, entry.build), true, 'it works as it is');
  assert.equal(hasCurrentLayout(dir), false, 'blocks of 64 then, not today\'s layout');
  assert.equal(await installCatalogueModel(entry, { storageDir, endpoint, convertScript: CONVERT }), dir);
  assert.equal(weightRequests(), before, 'the weights are not downloaded again');
  assert.deepEqual(readManifest(dir).int4Layout, INT4_LAYOUT);
  assert.equal(hasCurrentLayout(dir), true);
});

test('the model setting offers every catalogue entry, and each entry asks for a build the builder can make', () => {
  const manifest = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')) as {
    contributes: { configuration: { properties: Record<string, { enum?: string[]; enumDescriptions?: string[] }> } };
  };
  const setting = manifest.contributes.configuration.properties['phiComplete.model'];
  assert.deepEqual(setting.enum, CATALOGUE.map((e) => e.id));
  assert.equal(setting.enumDescriptions?.length, CATALOGUE.length);
  for (const { id, build } of CATALOGUE) {
    if (returnsCache(build.kvOutputs ?? 'present_rows')) assert.equal(build.kvCache ?? defaultKvCache(build.format), 'float', `${id}: ${build.kvOutputs} outputs need a float cache`);
  }
});

test('cancelling the conversion leaves no model behind, and the next attempt completes', async () => {
  const storageDir = scratchDir();
  const controller = new AbortController();
  await assert.rejects(installCatalogueModel(entry, {
    storageDir, endpoint, convertScript: CONVERT, signal: controller.signal,
    onProgress: (p) => {
      if (p.stage === 'convert' && (p.fraction ?? 0) > 0) controller.abort(); // mid-conversion
    },
  }), /cancelled/);
  assert.deepEqual(fs.readdirSync(path.join(storageDir, 'models')).filter((name) => name.startsWith('tiny-int4') && !name.includes('.partial-')), []);
  const dir = await installCatalogueModel(entry, { storageDir, endpoint, convertScript: CONVERT });
  assert.ok(isInstalled(dir));
  assert.deepEqual(fs.readdirSync(path.join(storageDir, 'models')), ['tiny-int4'], 'stale staging folders are cleaned up');
});

test('a local Hugging Face folder is converted once; a broken one is an error naming what is missing', async () => {
  const storageDir = scratchDir();
  const dir = await importLocalFolder(checkpoint, { format: 'int4' }, { storageDir, endpoint, convertScript: CONVERT });
  assert.ok(isInstalled(dir));
  assert.equal(await importLocalFolder(dir, { format: 'int4' }, { storageDir, endpoint, convertScript: CONVERT }), dir, 'our own layout is used as it is');
  const broken = scratchDir();
  fs.copyFileSync(path.join(checkpoint, 'config.json'), path.join(broken, 'config.json'));
  await assert.rejects(importLocalFolder(broken, { format: 'int4' }, { storageDir, endpoint, convertScript: CONVERT }), /neither a phi-complete model folder \(manifest\.json\) nor a Hugging Face phi folder \(config\.json and \*\.safetensors\)/);
  const truncated = scratchDir();
  for (const name of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(checkpoint, name), path.join(truncated, name));
  fs.truncateSync(path.join(truncated, 'model.safetensors'), 5000);
  await assert.rejects(importLocalFolder(truncated, { format: 'int4' }, { storageDir, endpoint, convertScript: CONVERT }), /model\.safetensors: file is truncated/);
});

const weightRequests = (): number => requests.filter((url) => url.endsWith('/model.safetensors')).length;

interface ProcessResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runInstallProcess(storageDir: string): Promise<ProcessResult> {
  const child = spawn(process.execPath, [INSTALL_PROCESS, JSON.stringify({ entry, options: { storageDir, endpoint, convertScript: CONVERT } })], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

test('two installs of one model from two processes at once: one downloads and converts, the other waits and uses its result', async () => {
  const storageDir = scratchDir();
  const before = weightRequests();
  slowWeights = true;
  let results: ProcessResult[];
  try {
    results = await Promise.all([runInstallProcess(storageDir), runInstallProcess(storageDir)]);
  } finally {
    slowWeights = false;
  }
  for (const result of results) assert.equal(result.code, 0, result.stderr);
  const outputs = results.map((result) => JSON.parse(result.stdout) as { dir: string; stages: InstallProgress['stage'][] });
  const dir = installedModelDir(storageDir, entry.id);
  assert.deepEqual(outputs.map((output) => output.dir), [dir, dir]);
  assert.equal(weightRequests() - before, 1, 'the weights were downloaded once');
  assert.equal(outputs.filter((output) => output.stages.includes('download') || output.stages.includes('convert')).length, 1, JSON.stringify(outputs));
  assert.deepEqual(await modelFileHashProblems(dir), []);
  const decoder = await PhiDecoder.load(dir);
  assert.equal((await decoder.forward([50256], decoder.createCache(), 1)).length, PHI_TINY.vocab_size);
  await decoder.dispose();
  assert.deepEqual(fs.readdirSync(path.join(storageDir, 'models')), ['tiny-int4'], 'no lock or staging folder is left');
  assert.deepEqual(fs.readdirSync(path.join(storageDir, 'downloads')), [`tiny--phi@${REVISION}`]);
});

test('a lock left by a process that is gone is taken over; one held by a live process is waited for', async () => {
  const storageDir = scratchDir();
  const lock = `${installedModelDir(storageDir, entry.id)}.lock`;
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  const gone = spawnSync(process.execPath, ['-e', '']).pid;
  fs.writeFileSync(lock, JSON.stringify({ pid: gone, host: os.hostname(), token: 'stale', since: new Date().toISOString() }));
  // The signal only ends a wait that would otherwise never end.
  const dir = await installCatalogueModel(entry, { storageDir, endpoint, convertScript: CONVERT, signal: AbortSignal.timeout(60_000) });
  assert.ok(isInstalled(dir));
  assert.ok(!fs.existsSync(lock));

  const other = scratchDir();
  const held = `${installedModelDir(other, entry.id)}.lock`;
  fs.mkdirSync(path.dirname(held), { recursive: true });
  fs.writeFileSync(held, JSON.stringify({ pid: process.pid, host: os.hostname(), token: 'live', since: new Date().toISOString() }));
  const stages: InstallProgress['stage'][] = [];
  const waited = await installCatalogueModel(entry, {
    storageDir: other, endpoint, convertScript: CONVERT,
    onProgress: (p) => {
      if (p.stage === 'wait' && !stages.includes('wait')) fs.rmSync(held); // the other install is done
      stages.push(p.stage);
    },
  });
  assert.equal(stages[0], 'wait');
  assert.ok(stages.includes('download') && isInstalled(waited));
});

test('a damaged install is noticed (sizes on every load, sha256 on Download Model) and Download Model repairs it', async () => {
  const storageDir = scratchDir();
  const phi = { ...entry, id: 'phi-1_5-int4' }; // the tiny model, where the default model setting looks for it
  const settings = { ...DEFAULT_SETTINGS, model: phi.id };
  const dir = await installCatalogueModel(phi, { storageDir, endpoint, convertScript: CONVERT });
  assert.deepEqual(locateModel(settings, storageDir), { ok: true, dir });
  const downloads = path.join(storageDir, 'downloads', `tiny--phi@${REVISION}`);
  const data = path.join(dir, 'model.onnx.data');
  const dataBytes = fs.statSync(data).size;
  fs.truncateSync(data, 1000);
  fs.truncateSync(path.join(downloads, 'model.safetensors'), 5000);
  assert.equal(isInstalled(dir), false);
  const location = locateModel(settings, storageDir);
  assert.ok(!location.ok && location.missing?.id === phi.id && !location.rebuild);
  assert.ok(location.message.endsWith(` is damaged (model.onnx.data has 1000 bytes instead of ${dataBytes}): Download Model repairs it.`), location.message);

  const before = weightRequests();
  assert.equal(await installCatalogueModel(phi, { storageDir, endpoint, convertScript: CONVERT }), dir);
  assert.equal(weightRequests() - before, 1, 'the cut checkpoint was fetched again');
  assert.deepEqual(await modelFileHashProblems(dir), []);
  assert.deepEqual(locateModel(settings, storageDir), { ok: true, dir });

  // Same size, other bytes: only the sha256 tells; Download Model rebuilds it from the (intact) download.
  const original = fs.readFileSync(data);
  const handle = fs.openSync(data, 'r+');
  fs.writeSync(handle, Buffer.from([original[100] ^ 0xff]), 0, 1, 100);
  fs.closeSync(handle);
  assert.equal(isInstalled(dir), true);
  assert.equal((await modelFileHashProblems(dir)).length, 1);
  const stages = new Set<InstallProgress['stage']>();
  // The loaded model lets go of its files before they are replaced: the folder still holds the damaged ones then.
  const replaced: string[] = [];
  const beforeReplace = (folder: string): Promise<void> => {
    assert.ok(!stages.has('convert') && !fs.readFileSync(data).equals(original), 'called before the folder is replaced');
    replaced.push(folder);
    return Promise.resolve();
  };
  await installCatalogueModel(phi, { storageDir, endpoint, convertScript: CONVERT, onProgress: (p) => stages.add(p.stage), beforeReplace });
  assert.deepEqual(replaced, [dir]);
  assert.ok(stages.has('convert'));
  assert.equal(weightRequests() - before, 1, 'nothing downloaded again');
  assert.ok(fs.readFileSync(data).equals(original));
});

test('a mirror serving another config.json or tokenizer.json is refused, with what differs; the file is deleted and the next try, once it serves the right one, installs', async () => {
  const storageDir = scratchDir();
  const downloads = path.join(storageDir, 'downloads', `tiny--phi@${REVISION}`);
  const served = (name: string): string => path.join(checkpoint, name);
  const original = { config: fs.readFileSync(served('config.json')), tokenizer: fs.readFileSync(served('tokenizer.json')) };
  const refused = async (pattern: RegExp, name: string): Promise<void> => {
    await assert.rejects(installCatalogueModel(entry, { storageDir, endpoint, convertScript: CONVERT }), (error: unknown) => {
      assert.ok(error instanceof DownloadError && error.kind === 'hash-mismatch', String(error));
      assert.match(error.message, pattern);
      assert.match(error.message, /the download was deleted/);
      return true;
    });
    assert.equal(fs.existsSync(path.join(downloads, name)), false, `${name} is not kept`);
    assert.equal(fs.existsSync(installedModelDir(storageDir, entry.id)), false, 'nothing was converted');
  };
  try {
    fs.writeFileSync(served('config.json'), JSON.stringify({ model_type: 'phi', ...PHI_TINY, hidden_size: 256, rope_theta: 500 }));
    await refused(/^config\.json from http:\/\/127\.0\.0\.1:\d+ is not the file this model needs: .*hidden_size is 256, expected 128; rope_theta is 500, expected 10000/, 'config.json');
    fs.writeFileSync(served('config.json'), original.config);

    // Two tokens' ids swapped: the same vocabulary, other ids (a different tokenizer).
    const tokenizer = JSON.parse(original.tokenizer.toString('utf8')) as { model: { vocab: Record<string, number> } };
    [tokenizer.model.vocab.def, tokenizer.model.vocab.class] = [tokenizer.model.vocab.class, tokenizer.model.vocab.def];
    fs.writeFileSync(served('tokenizer.json'), JSON.stringify(tokenizer));
    await refused(/^tokenizer\.json from .* is not the file this model needs: token "def" is id \d+, phi-1\.5's is id \d+/, 'tokenizer.json');
  } finally {
    fs.writeFileSync(served('config.json'), original.config);
    fs.writeFileSync(served('tokenizer.json'), original.tokenizer);
  }
  assert.ok(isInstalled(await installCatalogueModel(entry, { storageDir, endpoint, convertScript: CONVERT })));

  // A file already in the download folder is checked too: a changed one is fetched again, not trusted.
  fs.writeFileSync(path.join(downloads, 'config.json'), JSON.stringify({ model_type: 'phi', ...PHI_TINY, num_hidden_layers: 3 }));
  fs.rmSync(installedModelDir(storageDir, entry.id), { recursive: true });
  const before = requests.filter((url) => url.endsWith('/config.json')).length;
  assert.ok(isInstalled(await installCatalogueModel(entry, { storageDir, endpoint, convertScript: CONVERT })));
  assert.equal(requests.filter((url) => url.endsWith('/config.json')).length - before, 1);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(downloads, 'config.json'), 'utf8')), JSON.parse(original.config.toString('utf8')));
});

test("the catalogue's content checks accept phi-1.5's files as the hub writes them (nulls, merges as pairs) and refuse others", () => {
  const files = scratchDir();
  const write = (name: string, json: unknown): string => {
    fs.writeFileSync(path.join(files, name), JSON.stringify(json));
    return path.join(files, name);
  };
  const checks = Object.fromEntries(CATALOGUE[0].source.files.map((file) => [file.name, file.content]));
  for (const entry of CATALOGUE) {
    assert.deepEqual(entry.source.files.map((file) => [file.name, file.content !== undefined || file.sha256 !== undefined]),
      [['config.json', true], ['model.safetensors', true], ['tokenizer.json', true]], `${entry.id}: every file is pinned by hash or content`);
  }
  const configCheck = checks['config.json']!;
  const tokenizerCheck = checks['tokenizer.json']!;
  // transformers' phi config leaves these null; the conversion reads its defaults, which are phi-1.5's.
  assert.equal(configCheck(write('config.json', { architectures: ['PhiForCausalLM'], model_type: 'phi', ...PHI_1_5, bos_token_id: null, eos_token_id: null, num_key_value_heads: null, torch_dtype: 'float16' })), undefined);
  assert.match(configCheck(write('config.json', { ...PHI_1_5, num_hidden_layers: 32 }))!, /num_hidden_layers is 32, expected 24/);
  assert.match(configCheck(write('config.json', { ...PHI_1_5, model_type: 'llama' }))!, /model_type is "llama"/);
  assert.match(configCheck(path.join(files, 'missing.json')) ?? '', /.+/, 'an unreadable file is a problem, not a crash');

  const tokenizer = buildPhiTokenizerJson() as { model: { merges: string[]; vocab: Record<string, number> } };
  assert.equal(tokenizerCheck(write('tokenizer.json', tokenizer)), undefined);
  assert.equal(tokenizerCheck(write('tokenizer.json', { ...tokenizer, model: { ...tokenizer.model, merges: tokenizer.model.merges.map((merge) => merge.split(' ')) } })), undefined);
  const reordered = [...tokenizer.model.merges];
  [reordered[7], reordered[8]] = [reordered[8], reordered[7]];
  assert.match(tokenizerCheck(write('tokenizer.json', { ...tokenizer, model: { ...tokenizer.model, merges: reordered } }))!, /^merge 7 is /);
  assert.match(tokenizerCheck(write('tokenizer.json', { ...tokenizer, model: { ...tokenizer.model, vocab: { ...tokenizer.model.vocab, '<|not phi|>': 60000 } } }))!, /has 50296 tokens, phi-1\.5 has 50295/);
  fs.writeFileSync(path.join(files, 'tokenizer.json'), '{"model": ');
  assert.match(tokenizerCheck(path.join(files, 'tokenizer.json'))!, /cannot be read as JSON/);
});

test('not enough disk space is reported before the download and before a conversion, with how much is needed', async () => {
  const storageDir = scratchDir();
  const freeSpace = (): Promise<number> => Promise.resolve(100 * 2 ** 20);
  const phiSized = { ...entry, downloadBytes: 2_840_000_000, modelBytes: 885_000_000 };
  const mark = requests.length;
  await assert.rejects(installCatalogueModel(phiSized, { storageDir, endpoint, convertScript: CONVERT, freeSpace }), (error) => {
    assert.ok(error instanceof DownloadError && error.kind === 'disk-space');
    assert.match(error.message, /tiny phi, int4 \(2\.6 GiB still to download, 844\.0 MiB for the converted model\) needs 3\.5 GiB more but only 100\.0 MiB is free/);
    return true;
  });
  assert.equal(requests.length, mark, 'nothing was requested');

  // Downloaded already, rebuilt otherwise: only the conversion needs room.
  await installCatalogueModel(entry, { storageDir, endpoint, convertScript: CONVERT });
  const floatCache = { ...phiSized, build: { format: 'int4' as const, kvCache: 'float' as const } };
  await assert.rejects(installCatalogueModel(floatCache, { storageDir, endpoint, convertScript: CONVERT, freeSpace }), /\(0 bytes still to download, 844\.0 MiB for the converted model\) needs 844\.0 MiB more/);
  assert.equal(readManifest(installedModelDir(storageDir, entry.id)).kvCache, 'int8', 'the installed model is left as it was');

  // A local Hugging Face folder: the estimate comes from its config.json.
  await assert.rejects(importLocalFolder(checkpoint, { format: 'fp32' }, { storageDir, endpoint, convertScript: CONVERT, freeSpace: () => Promise.resolve(1000) }),
    /the converted model needs [\d.]+ MiB more but only 1000 bytes is free/);
  assert.deepEqual(fs.readdirSync(path.join(storageDir, 'models')), ['tiny-int4'], 'no conversion was started');
});

/** Whether a process runs (a zombie, which an init without reaping may leave, does not). */
function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
}

/** Whether one of the process's threads waits for the other end of a FIFO; undefined where that cannot be told (no /proc). */
function waitsOnFifo(pid: number): boolean | undefined {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).some((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'utf8').includes('wait_for_partner'));
  } catch {
    return undefined;
  }
}

test('the conversion process ends when the editor that started it dies', { skip: process.platform === 'win32' && 'needs a FIFO' }, async () => {
  // A checkpoint whose weights are a FIFO that nobody writes: the conversion waits to open it for as long as it lives.
  const stuck = scratchDir();
  fs.copyFileSync(path.join(checkpoint, 'config.json'), path.join(stuck, 'config.json'));
  execFileSync('mkfifo', [path.join(stuck, 'model.safetensors')]);
  const request = { from: stuck, to: path.join(scratchDir(), 'model'), format: 'int4' };
  const parent = spawn(process.execPath, [CONVERT_PARENT, CONVERT, JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = Number(await new Promise<string>((resolve) => parent.stdout.setEncoding('utf8').once('data', resolve)));
  try {
    for (let tries = 0; waitsOnFifo(pid) === false && tries < 400; tries++) await sleep(50);
    if (waitsOnFifo(pid) === undefined) await sleep(1000);
    assert.ok(isRunning(pid) && waitsOnFifo(pid) !== false, 'the conversion is under way');
    parent.kill('SIGKILL');
    for (let tries = 0; isRunning(pid) && tries < 100; tries++) await sleep(50);
    assert.equal(isRunning(pid), false, 'the converter outlived its parent by 5 s');
  } finally {
    if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    parent.kill('SIGKILL');
  }
});

test('the hub endpoint and the model folder cannot be set by a workspace; a relative model folder is refused', () => {
  const manifest = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')) as {
    contributes: { configuration: { properties: Record<string, { scope?: string }> } };
  };
  for (const name of ['phiComplete.hubEndpoint', 'phiComplete.modelPath']) {
    assert.ok(['machine', 'application'].includes(manifest.contributes.configuration.properties[name].scope ?? 'window'), name);
  }
  const relative = locateModel({ ...DEFAULT_SETTINGS, modelPath: 'models/phi' }, scratchDir());
  assert.ok(!relative.ok);
  assert.match(relative.message, /^The model folder models\/phi \(setting phiComplete\.modelPath\) is a relative path\. Set it to the folder's full path/);
  const home = locateModel({ ...DEFAULT_SETTINGS, modelPath: '~/no-such-phi-model' }, scratchDir());
  assert.ok(!home.ok && home.message.includes(path.join(os.homedir(), 'no-such-phi-model')), 'a leading ~ is the home folder');
});
