/**
 * downloadFiles against a real HTTP server on 127.0.0.1 that behaves like the Hugging Face hub: the resolve
 * URL answers 302 (with X-Linked-Etag / X-Linked-Size) to a CDN on another origin (a second server), which
 * serves the bytes with Range support; small files kept in git (not LFS) it answers itself, with their git blob
 * SHA-1 as the ETag, as the real hub does. Switches cut or stall a response, corrupt bytes, or require a token.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkEndpoint, checkRedirect, DOWNLOAD_RECORD_FILE, DownloadError, downloadFiles, offlineHelp, readDownloadRecord, type DownloadFile, type DownloadOptions, type DownloadProgress } from '../../src/install/download';
import { buildModel } from '../../src/model/build';
import { PHI_TINY } from '../../src/model/config';
import { RandomWeights } from '../../src/model/weights';
import { PhiDecoder } from '../../src/inference/decoder';
import { readSettings } from '../../src/settings/settings';
import { mulberry32 } from '../../src/util/rng';
import { scratchDir } from '../support/tinyModels';

const REPO = 'acme/tiny-phi';
const REV = '0123456789abcdef0123456789abcdef01234567';
const TOKEN = 'secret';
const CHUNK = 16 * 1024;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function gitBlobSha1(bytes: Uint8Array): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

function seededBytes(seed: number, length: number): Buffer {
  const random = mulberry32(seed);
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

interface Logged { readonly server: 'hub' | 'cdn'; readonly url: string; readonly authorization?: string; readonly range?: string }

/** A hub (resolve URLs) and a CDN (bytes) on two loopback ports, i.e. two origins. */
class FakeHub {
  readonly files = new Map<string, Buffer>();
  readonly log: Logged[] = [];
  /** Bytes of body written by the CDN, per file. */
  readonly served = new Map<string, number>();
  requireToken = false;
  /** Redirect to /cdn on the hub's own origin instead of the CDN server. */
  sameOriginCdn = false;
  /** The next CDN response for this file is cut (socket destroyed) after this many body bytes. */
  cutNext: { readonly file: string; readonly after: number } | undefined;
  /** The next CDN response for this file sends this many body bytes and then nothing more. */
  stallNext: { readonly file: string; readonly after: number } | undefined;
  /** These files are served with one byte flipped (while X-Linked-Etag names the right hash). */
  readonly corrupt = new Set<string>();
  /** Files kept in git: the hub answers 200 itself, with the git blob SHA-1 as ETag and no X-Linked-* headers. */
  readonly gitFiles = new Set<string>();
  private readonly hub = http.createServer((req, res) => this.handleHub(req, res));
  private readonly cdn = http.createServer((req, res) => this.handleCdn('cdn', req, res));

  async start(): Promise<void> {
    await Promise.all([this.hub, this.cdn].map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))));
  }

  async stop(): Promise<void> {
    for (const server of [this.hub, this.cdn]) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.hub.address() as AddressInfo).port}`;
  }

  private get cdnOrigin(): string {
    return this.sameOriginCdn ? this.endpoint : `http://127.0.0.1:${(this.cdn.address() as AddressInfo).port}`;
  }

  add(name: string, bytes: Buffer): DownloadFile {
    this.files.set(name, bytes);
    return { name, size: bytes.length, sha256: sha256(bytes) };
  }

  servedTotal(name: string): number {
    return this.served.get(name) ?? 0;
  }

  private handleHub(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '';
    if (url.startsWith('/cdn/')) {
      this.handleCdn('hub', req, res);
      return;
    }
    this.log.push({ server: 'hub', url, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), ...(req.headers.range ? { range: req.headers.range } : {}) });
    const prefix = `/${REPO}/resolve/${REV}/`;
    if (this.requireToken && req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { 'X-Error-Code': 'GatedRepo' }).end('Access to this repo is restricted.');
      return;
    }
    const name = url.startsWith(prefix) ? decodeURIComponent(url.slice(prefix.length)) : undefined;
    const bytes = name === undefined ? undefined : this.files.get(name);
    if (name === undefined || bytes === undefined) {
      res.writeHead(404, { 'X-Error-Code': 'EntryNotFound' }).end('Entry not found');
      return;
    }
    if (this.gitFiles.has(name)) {
      const body = this.corrupt.has(name) ? Buffer.from(bytes).fill(0x20, 0, 1) : bytes;
      res.writeHead(200, { ETag: `"${gitBlobSha1(bytes)}"`, 'Content-Length': String(body.length) }).end(body);
      return;
    }
    res.writeHead(302, {
      Location: `${this.cdnOrigin}/cdn/${encodeURIComponent(name)}?signature=abc`,
      'X-Linked-Etag': `"${sha256(bytes)}"`,
      'X-Linked-Size': String(bytes.length),
      ETag: 'W/"0000000000000000000000000000000000000000"',
    }).end();
  }

  private handleCdn(server: 'hub' | 'cdn', req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.log.push({ server: server === 'hub' ? 'hub' : 'cdn', url: url.pathname, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), ...(req.headers.range ? { range: req.headers.range } : {}) });
    const name = decodeURIComponent(url.pathname.slice('/cdn/'.length));
    let bytes = this.files.get(name);
    if (!bytes) {
      res.writeHead(404).end();
      return;
    }
    if (this.corrupt.has(name)) {
      bytes = Buffer.from(bytes);
      bytes[bytes.length >> 1] ^= 0xff;
    }
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      if (start >= bytes.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${bytes.length}` }).end();
        return;
      }
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${bytes.length - 1}/${bytes.length}`, 'Content-Length': String(bytes.length - start) });
    } else {
      res.writeHead(200, { 'Content-Length': String(bytes.length) });
    }
    const cut = this.cutNext?.file === name ? this.cutNext.after : undefined;
    const stall = this.stallNext?.file === name ? this.stallNext.after : undefined;
    if (cut !== undefined) this.cutNext = undefined;
    if (stall !== undefined) this.stallNext = undefined;
    const body = bytes.subarray(start);
    const limit = Math.min(body.length, cut ?? stall ?? body.length);
    let position = 0;
    const pump = (): void => {
      while (position < limit) {
        const piece = body.subarray(position, Math.min(position + CHUNK, limit));
        position += piece.length;
        this.served.set(name, this.servedTotal(name) + piece.length);
        if (!res.write(piece)) {
          res.once('drain', pump);
          return;
        }
      }
      if (cut !== undefined) res.socket?.end(() => res.socket?.destroy());
      else if (stall === undefined) res.end();
      // stalled: leave the response open; stop() closes the connection.
    };
    pump();
  }
}

async function rejection(promise: Promise<unknown>): Promise<DownloadError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof DownloadError, `expected a DownloadError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the download to fail');
}

describe('downloadFiles from a hub-like server', () => {
  const hub = new FakeHub();
  let small: DownloadFile;
  let large: DownloadFile;
  let third: DownloadFile;
  let modelDir: string;
  let modelFiles: DownloadFile[];

  before(async () => {
    await hub.start();
    small = hub.add('config.json', Buffer.from('{"model_type": "phi"}\n'));
    large = hub.add('weights.bin', seededBytes(7, 300_000));
    third = hub.add('sub/extra.bin', seededBytes(8, 120_000));
    modelDir = path.join(scratchDir(), 'tiny-int4');
    buildModel(new RandomWeights(PHI_TINY, 1234, 'tiny', 'bigram'), modelDir, { format: 'int4' });
    modelFiles = fs.readdirSync(modelDir).sort().map((name) => {
      hub.add(`tiny/${name}`, fs.readFileSync(path.join(modelDir, name)));
      return { name: `tiny/${name}` }; // no size or hash given: the X-Linked-Etag is the check
    });
  });

  after(async () => {
    await hub.stop();
  });

  function options(destination: string, files: readonly DownloadFile[], extra: Partial<DownloadOptions> = {}): DownloadOptions {
    return { endpoint: hub.endpoint, repo: REPO, revision: REV, files, destination, timeoutMs: 5_000, ...extra };
  }

  function requestsSince(mark: number): Logged[] {
    return hub.log.slice(mark);
  }

  test('clean download of a built tiny model: files identical, it loads and gives the same logits', async () => {
    const destination = scratchDir();
    const progress: DownloadProgress[] = [];
    await downloadFiles(options(destination, modelFiles, { onProgress: (p) => progress.push(p) }));
    for (const name of fs.readdirSync(modelDir)) {
      assert.ok(fs.readFileSync(path.join(destination, 'tiny', name)).equals(fs.readFileSync(path.join(modelDir, name))), name);
      assert.ok(!fs.existsSync(path.join(destination, 'tiny', `${name}.partial`)));
    }
    const original = await PhiDecoder.load(modelDir);
    const downloaded = await PhiDecoder.load(path.join(destination, 'tiny'));
    const expected = await original.forward([42], original.createCache());
    const actual = await downloaded.forward([42], downloaded.createCache());
    await original.dispose();
    await downloaded.dispose();
    assert.deepEqual(Array.from(actual), Array.from(expected));
    // Progress: per file, bytes only grow, and the last report is the whole file with its total.
    for (const file of modelFiles) {
      const reports = progress.filter((p) => p.file === file.name);
      const size = hub.files.get(file.name)!.length;
      assert.ok(reports.length >= 1 && reports.length <= 20, `${file.name}: ${reports.length} reports`);
      reports.forEach((p, i) => i > 0 && assert.ok(p.receivedBytes >= reports[i - 1].receivedBytes));
      assert.equal(reports.at(-1)!.receivedBytes, size);
      assert.equal(reports.at(-1)!.totalBytes, size);
      assert.ok(reports.every((p) => Number.isFinite(p.bytesPerSecond) && p.bytesPerSecond >= 0));
    }
  });

  test('the Authorization header goes to the hub but not to a CDN on another origin', async () => {
    hub.requireToken = true;
    try {
      const destination = scratchDir();
      const mark = hub.log.length;
      await downloadFiles(options(destination, [large], { token: TOKEN }));
      assert.ok(fs.readFileSync(path.join(destination, large.name)).equals(hub.files.get(large.name)!));
      const requests = requestsSince(mark);
      assert.deepEqual(requests.map((r) => [r.server, r.authorization]), [['hub', `Bearer ${TOKEN}`], ['cdn', undefined]]);
    } finally {
      hub.requireToken = false;
    }
  });

  test('a same-origin redirect keeps the Authorization header', async () => {
    hub.sameOriginCdn = true;
    try {
      const mark = hub.log.length;
      await downloadFiles(options(scratchDir(), [small], { token: TOKEN }));
      assert.deepEqual(requestsSince(mark).map((r) => r.authorization), [`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]);
    } finally {
      hub.sameOriginCdn = false;
    }
  });

  test('a connection cut mid-file fails as network, keeps the partial, and the next call resumes it', async () => {
    const destination = scratchDir();
    const before = hub.servedTotal(large.name);
    hub.cutNext = { file: large.name, after: 100_000 };
    const error = await rejection(downloadFiles(options(destination, [small, large])));
    assert.equal(error.kind, 'network');
    assert.match(error.message, /weights\.bin/);
    assert.match(error.message, /the partial download is kept and resumes next time/);
    assert.ok(fs.existsSync(path.join(destination, small.name)), 'the first file is complete');
    const partial = path.join(destination, `${large.name}.partial`);
    const kept = fs.statSync(partial).size;
    assert.ok(kept > 0 && kept <= 100_000, `partial holds ${kept} bytes`);
    assert.ok(!fs.existsSync(path.join(destination, large.name)));

    const mark = hub.log.length;
    await downloadFiles(options(destination, [small, large]));
    assert.ok(fs.readFileSync(path.join(destination, large.name)).equals(hub.files.get(large.name)!));
    assert.ok(!fs.existsSync(partial));
    const cdnRequests = requestsSince(mark).filter((r) => r.server === 'cdn');
    assert.deepEqual(cdnRequests.map((r) => r.range), [`bytes=${kept}-`], 'only the large file is fetched, from where it stopped');
    const fetchedTwice = hub.servedTotal(large.name) - before - large.size!;
    assert.ok(fetchedTwice >= 0 && fetchedTwice <= CHUNK, `${fetchedTwice} bytes fetched twice`);
  });

  test('a wrong hash (from X-Linked-Etag) fails and keeps neither the file nor the partial', async () => {
    const destination = scratchDir();
    hub.corrupt.add(third.name);
    try {
      const error = await rejection(downloadFiles(options(destination, [{ name: third.name }])));
      assert.equal(error.kind, 'hash-mismatch');
      assert.ok(error.message.includes(third.name));
      assert.ok(error.message.includes(third.sha256!), 'names the expected hash');
      const corrupted = Buffer.from(hub.files.get(third.name)!);
      corrupted[corrupted.length >> 1] ^= 0xff;
      assert.ok(error.message.includes(sha256(corrupted)), 'names the actual hash');
    } finally {
      hub.corrupt.delete(third.name);
    }
    assert.ok(!fs.existsSync(path.join(destination, third.name)));
    assert.ok(!fs.existsSync(path.join(destination, `${third.name}.partial`)));
  });

  test('a wrong given sha256 fails the same way', async () => {
    const destination = scratchDir();
    const wrong = 'ab'.repeat(32);
    const error = await rejection(downloadFiles(options(destination, [{ ...small, sha256: wrong.toUpperCase() }])));
    assert.equal(error.kind, 'hash-mismatch');
    assert.ok(error.message.includes(wrong) && error.message.includes(small.sha256!));
    assert.deepEqual(fs.readdirSync(destination), []);
  });

  test('404 is not-found naming the file and the URL; the token appears in no message', async () => {
    const error = await rejection(downloadFiles(options(scratchDir(), [{ name: 'missing.bin' }], { token: TOKEN })));
    assert.equal(error.kind, 'not-found');
    assert.ok(error.message.includes('missing.bin'));
    assert.ok(error.message.includes(`${hub.endpoint}/${REPO}/resolve/${REV}/missing.bin`));
    assert.ok(!error.message.includes(TOKEN));
  });

  test('401 without (or with a wrong) token is unauthorized with advice, never echoing the token', async () => {
    hub.requireToken = true;
    try {
      for (const token of [undefined, 'not-the-secret']) {
        const error = await rejection(downloadFiles(options(scratchDir(), [small], token === undefined ? {} : { token })));
        assert.equal(error.kind, 'unauthorized');
        assert.match(error.message, /refused access/);
        assert.match(error.message, /set a token/);
        assert.ok(error.message.includes(small.name));
        if (token) assert.ok(!error.message.includes(token));
      }
      const destination = scratchDir();
      await downloadFiles(options(destination, [small], { token: TOKEN }));
      assert.equal(fs.readFileSync(path.join(destination, small.name), 'utf8'), hub.files.get(small.name)!.toString('utf8'));
    } finally {
      hub.requireToken = false;
    }
  });

  test('an unreachable endpoint is a network error', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await rejection(downloadFiles({ ...options(scratchDir(), [small], { token: TOKEN }), endpoint: `http://127.0.0.1:${port}` }));
    assert.equal(error.kind, 'network');
    assert.match(error.message, /resumes next time/);
    assert.ok(!error.message.includes(TOKEN));
  });

  test('a stalled connection times out as a network error', async () => {
    const destination = scratchDir();
    hub.stallNext = { file: large.name, after: 20_000 };
    const error = await rejection(downloadFiles(options(destination, [large], { timeoutMs: 300 })));
    assert.equal(error.kind, 'network');
    assert.ok(fs.statSync(path.join(destination, `${large.name}.partial`)).size > 0);
  });

  test('cancel (AbortSignal) keeps the partial; the next call resumes it', async () => {
    const destination = scratchDir();
    const before = hub.servedTotal(large.name);
    const controller = new AbortController();
    hub.stallNext = { file: large.name, after: 50_000 };
    const error = await rejection(downloadFiles(options(destination, [large], {
      signal: controller.signal,
      onProgress: (p) => p.receivedBytes > 0 && controller.abort(),
    })));
    assert.equal(error.kind, 'cancelled');
    const kept = fs.statSync(path.join(destination, `${large.name}.partial`)).size;
    assert.ok(kept > 0 && kept <= 50_000, `kept ${kept}`);

    const mark = hub.log.length;
    await downloadFiles(options(destination, [large]));
    assert.ok(fs.readFileSync(path.join(destination, large.name)).equals(hub.files.get(large.name)!));
    assert.deepEqual(requestsSince(mark).filter((r) => r.server === 'cdn').map((r) => r.range), [`bytes=${kept}-`]);
    assert.ok(hub.servedTotal(large.name) - before - large.size! <= 50_000);
  });

  test('an already cancelled signal does nothing', async () => {
    const mark = hub.log.length;
    const error = await rejection(downloadFiles(options(scratchDir(), [large], { signal: AbortSignal.abort() })));
    assert.equal(error.kind, 'cancelled');
    assert.equal(hub.log.length, mark);
  });

  test('restart mid-download: a fresh call skips finished files, resumes the partial one, fetches the rest', async () => {
    const destination = scratchDir();
    const files = [small, large, third];
    const controller = new AbortController();
    hub.stallNext = { file: large.name, after: 40_000 }; // so that the abort lands mid-file
    const error = await rejection(downloadFiles(options(destination, files, {
      signal: controller.signal,
      onProgress: (p) => p.file === large.name && p.receivedBytes > 0 && controller.abort(),
    })));
    assert.equal(error.kind, 'cancelled');
    assert.ok(fs.existsSync(path.join(destination, small.name)));
    assert.ok(!fs.existsSync(path.join(destination, third.name)));
    const kept = fs.statSync(path.join(destination, `${large.name}.partial`)).size;
    assert.ok(kept > 0 && kept <= 40_000, `kept ${kept}`);

    const mark = hub.log.length;
    await downloadFiles(options(destination, files));
    for (const file of files) assert.ok(fs.readFileSync(path.join(destination, file.name)).equals(hub.files.get(file.name)!), file.name);
    const requests = requestsSince(mark);
    assert.ok(!requests.some((r) => r.url.includes(small.name)), 'the finished file is not requested again');
    const cdn = requests.filter((r) => r.server === 'cdn');
    assert.deepEqual(cdn.map((r) => [r.url, r.range]), [
      [`/cdn/${encodeURIComponent(large.name)}`, `bytes=${kept}-`],
      [`/cdn/${encodeURIComponent(third.name)}`, undefined],
    ]);
  });

  test('files already complete are skipped without any request', async () => {
    const destination = scratchDir();
    await downloadFiles(options(destination, [small, large]));
    const mark = hub.log.length;
    const progress: DownloadProgress[] = [];
    await downloadFiles(options(destination, [small, large], { onProgress: (p) => progress.push(p) }));
    assert.equal(hub.log.length, mark);
    assert.deepEqual(progress.map((p) => [p.file, p.receivedBytes]), [[small.name, small.size], [large.name, large.size]]);
  });

  test('a complete file with the wrong content is downloaded again', async () => {
    const destination = scratchDir();
    fs.writeFileSync(path.join(destination, large.name), seededBytes(99, large.size!));
    await downloadFiles(options(destination, [large]));
    assert.ok(fs.readFileSync(path.join(destination, large.name)).equals(hub.files.get(large.name)!));
  });

  test('a partial that already holds every byte is verified and renamed (416 from the server)', async () => {
    const destination = scratchDir();
    fs.writeFileSync(path.join(destination, `${large.name}.partial`), hub.files.get(large.name)!);
    await downloadFiles(options(destination, [{ name: large.name }]));
    assert.ok(fs.readFileSync(path.join(destination, large.name)).equals(hub.files.get(large.name)!));
    assert.ok(!fs.existsSync(path.join(destination, `${large.name}.partial`)));
  });

  test('not enough disk space for the declared sizes fails before any request', async () => {
    const mark = hub.log.length;
    const error = await rejection(downloadFiles(options(scratchDir(), [small, { name: 'huge.bin', size: 2 ** 60 }])));
    assert.equal(error.kind, 'disk-space');
    assert.match(error.message, /needs 1\.0 EiB more but only .* is free/);
    assert.equal(hub.log.length, mark);
  });

  test('works through a fetch implementation too', async () => {
    const destination = scratchDir();
    hub.requireToken = true;
    try {
      const mark = hub.log.length;
      await downloadFiles(options(destination, [large], { fetchImpl: fetch, token: TOKEN }));
      assert.ok(fs.readFileSync(path.join(destination, large.name)).equals(hub.files.get(large.name)!));
      assert.deepEqual(requestsSince(mark).map((r) => r.authorization), [`Bearer ${TOKEN}`, undefined]);
    } finally {
      hub.requireToken = false;
    }
  });

  test('offlineHelp lists every URL and says where to put the files', () => {
    const text = offlineHelp({ endpoint: 'https://huggingface.co/', repo: 'microsoft/phi-1_5', revision: REV, files: [small, { name: 'model.onnx' }] });
    assert.ok(text.includes(`https://huggingface.co/microsoft/phi-1_5/resolve/${REV}/config.json`));
    assert.ok(text.includes(`https://huggingface.co/microsoft/phi-1_5/resolve/${REV}/model.onnx`));
    assert.ok(text.includes(small.sha256!));
    assert.match(text, /put them in one folder and point the phiComplete\.modelPath setting at it/);
  });
  test('a small file kept in git is checked against the ETag (its git blob SHA-1); wrong bytes are refused', async () => {
    const bytes = Buffer.from('{"model_type": "phi", "vocab_size": 51200}\n');
    const file = hub.add('git/config.json', bytes);
    hub.gitFiles.add(file.name);
    const destination = scratchDir();
    await downloadFiles(options(destination, [{ name: file.name }]));
    assert.ok(fs.readFileSync(path.join(destination, file.name)).equals(bytes));
    assert.deepEqual((await readDownloadRecord(destination))[file.name], { bytes: bytes.length, sha256: sha256(bytes) }, 'its sha256 is recorded');

    hub.corrupt.add(file.name);
    try {
      const refused = scratchDir();
      const error = await rejection(downloadFiles(options(refused, [{ name: file.name }])));
      assert.equal(error.kind, 'hash-mismatch');
      assert.match(error.message, /git\/config\.json is corrupt: its git blob SHA-1 should be [0-9a-f]{40} \(the hub's ETag\)/);
      assert.ok(error.message.includes(gitBlobSha1(bytes)));
      assert.ok(!fs.existsSync(path.join(refused, file.name)) && !fs.existsSync(path.join(refused, `${file.name}.partial`)));
    } finally {
      hub.corrupt.delete(file.name);
    }
  });

  test('the file on disk is verified, not the bytes received: a partial written to by anything else is refused', async () => {
    const destination = scratchDir();
    const partial = path.join(destination, `${large.name}.partial`);
    let meddled = false;
    const error = await rejection(downloadFiles(options(destination, [{ name: large.name }], {
      onProgress: (p) => {
        if (meddled || p.receivedBytes < 2 * CHUNK) return;
        meddled = true; // another writer: the first bytes of the partial change under the download
        const handle = fs.openSync(partial, 'r+');
        fs.writeSync(handle, Buffer.alloc(16, 0x55), 0, 16, 0);
        fs.closeSync(handle);
      },
    })));
    assert.ok(meddled);
    assert.equal(error.kind, 'hash-mismatch');
    assert.ok(!fs.existsSync(path.join(destination, large.name)), 'nothing wrong is renamed into place');
  });

  test('a verified file that was cut since is fetched again (its recorded size)', async () => {
    const destination = scratchDir();
    await downloadFiles(options(destination, [{ name: large.name }]));
    fs.truncateSync(path.join(destination, large.name), 1000);
    const mark = hub.log.length;
    await downloadFiles(options(destination, [{ name: large.name }]));
    assert.ok(fs.readFileSync(path.join(destination, large.name)).equals(hub.files.get(large.name)!));
    assert.ok(requestsSince(mark).some((r) => r.server === 'cdn'));
    assert.ok(fs.existsSync(path.join(destination, DOWNLOAD_RECORD_FILE)));
  });

  test('not enough disk space for the size the hub declares (X-Linked-Size) fails before the bytes are fetched', async () => {
    const destination = scratchDir();
    const mark = hub.log.length;
    const error = await rejection(downloadFiles(options(destination, [{ name: large.name }], { freeSpace: () => Promise.resolve(100_000) })));
    assert.equal(error.kind, 'disk-space');
    assert.match(error.message, /weights\.bin needs 293\.0 KiB more but only 97\.7 KiB is free/);
    assert.deepEqual(requestsSince(mark).map((r) => r.server), ['hub'], 'the CDN was not asked for the bytes');
    assert.ok(!fs.existsSync(path.join(destination, `${large.name}.partial`)));
  });

  test('the endpoint must be https; plain http only on loopback', async () => {
    for (const endpoint of ['http://example.com', 'http://10.0.0.1:8080', 'http://127.0.0.1.example.com', 'ftp://127.0.0.1']) {
      assert.throws(() => checkEndpoint(endpoint), (error) => error instanceof DownloadError && error.kind === 'insecure', endpoint);
    }
    for (const endpoint of ['https://huggingface.co', 'https://hf-mirror.example', 'http://127.0.0.1:8080', 'http://localhost:1', 'http://[::1]:1']) {
      assert.doesNotThrow(() => checkEndpoint(endpoint), endpoint);
    }
    const error = await rejection(downloadFiles({ ...options(scratchDir(), [small], { token: TOKEN }), endpoint: 'http://example.com' }));
    assert.equal(error.kind, 'insecure');
    assert.match(error.message, /refusing to download from http:\/\/example\.com: .*plain http.*set phiComplete\.hubEndpoint to an https URL/);
  });

  test('an endpoint with a user name and password (https://user:password@host): no message of a failing download shows them', async () => {
    const user = 'alice-the-user';
    const password = 'hunter2-the-password';
    const withCredentials = (endpoint: string): string => endpoint.replace('://', `://${user}:${password}@`);
    const endpoint = withCredentials(hub.endpoint);
    const shownEndpoint = hub.endpoint.replace('://', '://***@');
    /** Every message the download produced (errors and progress), and what installUi logs and notifies from them. */
    const messages: string[] = [];
    const onProgress = (p: DownloadProgress): number => messages.push(JSON.stringify(p));
    const failure = async (request: Partial<DownloadOptions> & { files: DownloadFile[] }): Promise<DownloadError> => {
      const error = await rejection(downloadFiles({ ...options(scratchDir(), request.files, { onProgress }), endpoint, ...request }));
      messages.push(error.message);
      return error;
    };

    const notFound = await failure({ files: [small, { name: 'missing.bin' }] });
    assert.equal(notFound.kind, 'not-found');
    assert.ok(notFound.message.includes(`${shownEndpoint}/${REPO}/resolve/${REV}/missing.bin answered 404`), notFound.message);
    hub.requireToken = true;
    try {
      assert.equal((await failure({ files: [small] })).kind, 'unauthorized');
    } finally {
      hub.requireToken = false;
    }
    // fetch refuses a URL with credentials, and its error quotes the URL.
    assert.equal((await failure({ files: [small], fetchImpl: fetch })).kind, 'network');
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const unreachable = await failure({ files: [small], endpoint: withCredentials(`http://127.0.0.1:${port}`) });
    assert.equal(unreachable.kind, 'network');
    assert.ok(unreachable.message.includes(`from http://***@127.0.0.1:${port}/${REPO}/resolve/`), unreachable.message);
    assert.equal((await failure({ files: [small], endpoint: withCredentials('http://example.com') })).kind, 'insecure');
    const notUrl = await failure({ files: [small], endpoint: withCredentials('https://exa mple.com') });
    assert.match(notUrl.message, /^the hub endpoint "https:\/\/\*\*\*@exa mple\.com" is not a URL/);
    // Show Manual Steps logs this; a setting that is not a secure URL is warned about.
    const help = offlineHelp({ endpoint, repo: REPO, revision: REV, files: [small] });
    assert.ok(help.includes(`${shownEndpoint}/${REPO}/resolve/${REV}/config.json`), help);
    assert.match(help, /with the user name and password of phiComplete\.hubEndpoint in place of \*\*\*/);
    messages.push(help, ...readSettings((key) => (key === 'hubEndpoint' ? withCredentials('http://example.com') : undefined)).warnings);

    assert.ok(messages.length >= 9 && messages.some((message) => message.includes('receivedBytes')), `${messages.length} messages`);
    for (const message of messages) {
      assert.ok(!message.includes(password) && !message.includes(user), `credentials in: ${message}`);
    }
  });

  test('a redirect from https to http is refused, and the token goes nowhere in clear', async () => {
    assert.throws(() => checkRedirect(new URL('https://huggingface.co/a'), new URL('http://cdn.example/a')), /leaves https for http/);
    assert.throws(() => checkRedirect(new URL('https://huggingface.co/a'), new URL('http://127.0.0.1/a')), /leaves https for http/);
    assert.doesNotThrow(() => checkRedirect(new URL('https://huggingface.co/a'), new URL('https://cdn.example/a')));
    assert.doesNotThrow(() => checkRedirect(new URL('http://127.0.0.1:1/a'), new URL('http://127.0.0.1:2/a')));
    assert.throws(() => checkRedirect(new URL('http://127.0.0.1:1/a'), new URL('http://cdn.example/a')), /plain http/);

    // An https hub (this fetch routes https://hub.test to the loopback hub) whose CDN answers plain http.
    const httpsHub: typeof fetch = (input, init) => {
      const url = input instanceof Request ? input.url : input instanceof URL ? input.href : input;
      return fetch(url.replace('https://hub.test', hub.endpoint), init);
    };
    const destination = scratchDir();
    const mark = hub.log.length;
    const error = await rejection(downloadFiles({ ...options(destination, [large], { token: TOKEN, fetchImpl: httpsHub }), endpoint: 'https://hub.test' }));
    assert.equal(error.kind, 'insecure');
    assert.match(error.message, /refusing the redirect from https:\/\/hub\.test to http:\/\/127\.0\.0\.1:\d+: it leaves https for http/);
    assert.deepEqual(requestsSince(mark).map((r) => r.server), ['hub'], 'the http CDN was never asked');
    assert.ok(!fs.existsSync(path.join(destination, large.name)));
  });
});
