/**
 * Installing a catalogue-style model end to end on loopback: download the Hugging Face files from a local
 * hub-like server, convert them in a child process, load the result and generate.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { PhiDecoder } from '../../src/inference/decoder';
import { KvCache } from '../../src/inference/kvCache';
import { ResidentKvCache } from '../../src/inference/residentKvCache';
import { CATALOGUE, type CatalogueEntry } from '../../src/install/catalogue';
import { importLocalFolder, installCatalogueModel, isBuiltAs, isInstalled, type InstallProgress } from '../../src/install/install';
import { defaultKvCache, readManifest, returnsCache } from '../../src/model/manifest';
import { PHI_TINY } from '../../src/model/config';
import { writeSafetensors } from '../../src/model/safetensors';
import { buildPhiTokenizerJson } from '../../src/tokenizer/tokenizerJson';
import { phiTensorShapes } from '../../src/model/weights';
import { scratchDir, tinyWeights } from '../support/tinyModels';

const CONVERT = path.resolve(__dirname, '../../../dist/convert.js');
const REVISION = '0123456789abcdef0123456789abcdef01234567';

let checkpoint: string;
let server: http.Server;
let endpoint: string;
const requests: string[] = [];

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
    response.end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

const entry: CatalogueEntry = {
  id: 'tiny-int4',
  title: 'tiny phi, int4',
  source: { repo: 'tiny/phi', revision: REVISION, files: [{ name: 'config.json' }, { name: 'model.safetensors' }, { name: 'tokenizer.json' }] },
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
