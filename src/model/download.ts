/**
 * Downloads model files the way the Hugging Face hub clients do: `<endpoint>/<repo>/resolve/<revision>/<file>`,
 * following the hub's redirect to its CDN (dropping the Authorization header when the redirect leaves the
 * endpoint's origin), resuming `<name>.partial` files with a Range request, and renaming a file into place
 * only once its sha256 (given, or the hub's X-Linked-Etag) has been verified. Plain Node: no `vscode` import.
 *
 * The token is only ever put in the Authorization header: it is never logged nor part of an error message.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';

export interface DownloadFile {
  /** Path of the file in the repository (also its path under the destination). */
  readonly name: string;
  /** Expected size in bytes, when known. */
  readonly size?: number;
  /** Expected sha256 (hex), when known; otherwise the hub's X-Linked-Etag is used when it is one. */
  readonly sha256?: string;
}

export interface DownloadProgress {
  readonly file: string;
  /** Bytes of this file on disk so far (resumed bytes included). */
  readonly receivedBytes: number;
  readonly totalBytes?: number;
  /** Smoothed download rate of this file. */
  readonly bytesPerSecond: number;
}

export interface DownloadOptions {
  /** e.g. https://huggingface.co (configurable for mirrors). */
  readonly endpoint: string;
  /** e.g. microsoft/phi-1_5 */
  readonly repo: string;
  /** A pinned commit (or branch/tag). */
  readonly revision: string;
  readonly files: readonly DownloadFile[];
  /** Folder the files are written to (created when missing). */
  readonly destination: string;
  /** Sent as `Authorization: Bearer <token>` to the endpoint's origin only; never logged or put in messages. */
  readonly token?: string;
  /** Cancels the download; the partial file is kept so that the next call resumes it. */
  readonly signal?: AbortSignal;
  /** Called at most about ten times a second per file, and once when a file is complete. */
  readonly onProgress?: (progress: DownloadProgress) => void;
  /** Use this fetch (with manual redirects) instead of Node's http/https modules. */
  readonly fetchImpl?: typeof fetch;
  /** A connection that sends nothing for this long fails as 'network' (default 30 s; Node http/https only). */
  readonly timeoutMs?: number;
}

export type DownloadErrorKind = 'not-found' | 'unauthorized' | 'network' | 'hash-mismatch' | 'disk-space' | 'cancelled' | 'http';

export class DownloadError extends Error {
  constructor(readonly kind: DownloadErrorKind, message: string) {
    super(message);
    this.name = 'DownloadError';
  }
}

const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const PROGRESS_INTERVAL_MS = 100;
const RATE_SMOOTHING = 0.3;
const DEFAULT_TIMEOUT_MS = 30_000;
const PARTIAL_SUFFIX = '.partial';
const KEPT = 'the partial download is kept and resumes next time';

/** The URL of one file of the repository at the revision. */
export function fileUrl(options: Pick<DownloadOptions, 'endpoint' | 'repo' | 'revision'>, name: string): string {
  const endpoint = options.endpoint.replace(/\/+$/, '');
  const repo = options.repo.split('/').map(encodeURIComponent).join('/');
  const file = name.split('/').map(encodeURIComponent).join('/');
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(options.revision)}/${file}`;
}

/** A manual route for machines that cannot download: the URL of each file and where to put them. */
export function offlineHelp(options: Pick<DownloadOptions, 'endpoint' | 'repo' | 'revision' | 'files'>): string {
  const lines = [
    `To install the model by hand, download these files of ${options.repo} (revision ${options.revision}):`,
    '',
  ];
  for (const file of options.files) {
    const details = [
      ...(file.size === undefined ? [] : [formatBytes(file.size)]),
      ...(file.sha256 === undefined ? [] : [`sha256 ${file.sha256.toLowerCase()}`]),
    ];
    lines.push(`  ${fileUrl(options, file.name)}${details.length > 0 ? `  (${details.join(', ')})` : ''}`);
  }
  lines.push(
    '',
    'Keep their names (a name with a folder goes in that subfolder), put them in one folder and point the ' +
      'phiComplete.modelPath setting at it.',
  );
  return lines.join('\n');
}

export async function downloadFiles(options: DownloadOptions): Promise<void> {
  const destination = path.resolve(options.destination);
  for (const file of options.files) checkName(file.name);
  throwIfCancelled(options.signal);
  await fs.promises.mkdir(destination, { recursive: true });
  await checkDiskSpace(destination, await bytesStillNeeded(destination, options.files));
  for (const file of options.files) {
    throwIfCancelled(options.signal);
    await downloadOne(options, destination, file);
  }
}

// ---------------------------------------------------------------------------------------------------------

function checkName(name: string): void {
  const parts = name.split(/[\\/]/);
  if (name.length === 0 || path.isAbsolute(name) || parts.some((part) => part === '' || part === '.' || part === '..')) {
    throw new DownloadError('http', `invalid file name in the download list: ${JSON.stringify(name)}`);
  }
}

function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new DownloadError('cancelled', `download cancelled; ${KEPT}`);
}

export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    const stat = await fs.promises.stat(file);
    return stat.isFile() ? stat.size : undefined;
  } catch {
    return undefined;
  }
}

/** Bytes still to fetch for the files whose size is known (a cheap estimate: sizes only, no hashing). */
async function bytesStillNeeded(destination: string, files: readonly DownloadFile[]): Promise<number> {
  let needed = 0;
  for (const file of files) {
    if (file.size === undefined) continue;
    const target = path.join(destination, file.name);
    if ((await sizeOf(target)) === file.size) continue;
    const partial = (await sizeOf(target + PARTIAL_SUFFIX)) ?? 0;
    needed += partial <= file.size ? file.size - partial : file.size;
  }
  return needed;
}

async function checkDiskSpace(destination: string, needed: number): Promise<void> {
  if (needed <= 0) return;
  let free: number;
  try {
    const stats = await fs.promises.statfs(destination);
    free = stats.bavail * stats.bsize;
  } catch {
    return; // No statfs here (or it failed): the write itself reports ENOSPC.
  }
  if (needed > free) {
    throw new DownloadError('disk-space',
      `not enough disk space in ${destination}: the model needs ${formatBytes(needed)} more but only ${formatBytes(free)} is free; ` +
        'free some space or choose another folder');
  }
}

async function hashFile(file: string, hash: Hash, signal: AbortSignal | undefined): Promise<void> {
  for await (const chunk of fs.createReadStream(file)) {
    throwIfCancelled(signal);
    hash.update(chunk as Buffer);
  }
}

/** The sha256 in an ETag / X-Linked-Etag header, when it is one (git blob ids of small files are not). */
export function etagSha256(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const stripped = value.trim().replace(/^W\//i, '').replace(/^"(.*)"$/, '$1').toLowerCase();
  return /^[0-9a-f]{64}$/.test(stripped) ? stripped : undefined;
}

// --- transport ----------------------------------------------------------------------------------------------

interface RawResponse {
  readonly status: number;
  readonly header: (name: string) => string | undefined;
  readonly body: AsyncIterable<Uint8Array>;
  close(): void;
}

type Transport = (url: URL, headers: Record<string, string>, signal: AbortSignal | undefined) => Promise<RawResponse>;

function nodeTransport(timeoutMs: number): Transport {
  return (url, headers, signal) => new Promise<RawResponse>((resolve, reject) => {
    const module = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
    if (!module) {
      reject(new DownloadError('http', `unsupported URL scheme ${url.protocol} (only http and https)`));
      return;
    }
    const request = module.request(url, { method: 'GET', headers, ...(signal ? { signal } : {}) });
    request.setTimeout(timeoutMs, () => request.destroy(new Error(`no data received for ${timeoutMs / 1000} s`)));
    request.on('error', reject);
    request.on('response', (response) => {
      resolve({
        status: response.statusCode ?? 0,
        header: (name) => {
          const value = response.headers[name.toLowerCase()];
          return Array.isArray(value) ? value[0] : value;
        },
        body: flowing(response),
        close: () => {
          response.destroy();
          request.destroy();
        },
      });
    });
    request.end();
  });
}

const MAX_QUEUED_BYTES = 4 << 20;

/**
 * Reads a response in flowing mode into a queue that the consumer drains, pausing the socket only when
 * the queue is full. When the connection is cut, everything that arrived is still handed out before the
 * error (a stream's async iterator would drop its buffered data), so the partial file keeps it.
 */
async function* flowing(stream: http.IncomingMessage): AsyncGenerator<Uint8Array> {
  const queue: Buffer[] = [];
  let queued = 0;
  let done = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  stream.on('data', (chunk: Buffer) => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued >= MAX_QUEUED_BYTES) stream.pause();
    notify();
  });
  stream.on('error', (error: Error) => {
    failure ??= error;
    done = true;
    notify();
  });
  stream.on('end', () => {
    done = true;
    notify();
  });
  stream.on('close', () => {
    done = true; // without 'end': the caller's length check reports the early close
    notify();
  });
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk) {
        queued -= chunk.length;
        if (queued < MAX_QUEUED_BYTES && stream.isPaused() && !done) stream.resume();
        yield chunk;
      } else if (done) {
        if (failure !== undefined) throw failure;
        return;
      } else {
        await new Promise<void>((resolve) => (wake = resolve));
      }
    }
  } finally {
    stream.destroy();
  }
}

function fetchTransport(fetchImpl: typeof fetch): Transport {
  return async (url, headers, signal) => {
    const response = await fetchImpl(url, { method: 'GET', headers, redirect: 'manual', ...(signal ? { signal } : {}) });
    const stream = response.body;
    return {
      status: response.status,
      header: (name) => response.headers.get(name) ?? undefined,
      body: stream ?? emptyBody(),
      close: () => {
        stream?.cancel().catch(() => undefined);
      },
    };
  };
}

async function* emptyBody(): AsyncIterable<Uint8Array> {}

interface Opened {
  readonly response: RawResponse;
  /** Headers of the first response (the endpoint's own, before any redirect). */
  readonly firstHeader: (name: string) => string | undefined;
}

function describeCause(error: unknown, token: string | undefined): string {
  const cause = error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error);
  return token ? cause.split(token).join('***') : cause;
}

/** GET with redirects followed by hand, so that Authorization is dropped when one leaves the origin. */
async function open(options: DownloadOptions, transport: Transport, url: string, fileName: string, offset: number): Promise<Opened> {
  const origin = new URL(url).origin;
  let current = new URL(url);
  let sameOrigin = true;
  let firstHeader: ((name: string) => string | undefined) | undefined;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'User-Agent': 'phi-complete', 'Accept-Encoding': 'identity' };
    if (offset > 0) headers.Range = `bytes=${offset}-`;
    if (options.token && sameOrigin) headers.Authorization = `Bearer ${options.token}`;
    let response: RawResponse;
    try {
      response = await transport(current, headers, options.signal);
    } catch (error) {
      if (error instanceof DownloadError) throw error;
      throwIfCancelled(options.signal);
      throw new DownloadError('network',
        `cannot download ${fileName} from ${hop === 0 ? url : current.origin} (${describeCause(error, options.token)}); ` +
          `check the network connection and the endpoint setting; ${KEPT}`);
    }
    firstHeader ??= response.header;
    if (!REDIRECT_STATUSES.has(response.status)) return { response, firstHeader };
    response.close();
    const location = response.header('location');
    if (!location) throw new DownloadError('http', `${url} answered ${response.status} without a Location header (downloading ${fileName})`);
    if (hop + 1 > MAX_REDIRECTS) throw new DownloadError('http', `too many redirects (more than ${MAX_REDIRECTS}) downloading ${fileName} from ${url}`);
    current = new URL(location, current);
    if (current.origin !== origin) sameOrigin = false;
  }
}

// --- one file ----------------------------------------------------------------------------------------------

class ProgressReporter {
  private lastTime = -Infinity;
  private lastBytes: number;
  private rate: number | undefined;
  private announced = false;
  private readonly start = performance.now();

  constructor(private readonly file: string, private readonly callback: DownloadOptions['onProgress'], startBytes: number) {
    this.lastBytes = startBytes;
  }

  report(receivedBytes: number, totalBytes: number | undefined, final = false): void {
    if (!this.callback) return;
    const now = performance.now();
    if (!final && this.rate === undefined && receivedBytes === this.lastBytes) {
      // The start (nothing received yet): announced once, without holding back the first data's report.
      if (!this.announced) this.callback({ file: this.file, receivedBytes, ...(totalBytes === undefined ? {} : { totalBytes }), bytesPerSecond: 0 });
      this.announced = true;
      return;
    }
    if (!final && now - this.lastTime < PROGRESS_INTERVAL_MS) return;
    const since = Number.isFinite(this.lastTime) ? this.lastTime : this.start;
    const seconds = Math.max(now - since, 1) / 1000;
    const instant = (receivedBytes - this.lastBytes) / seconds;
    this.rate = this.rate === undefined ? instant : RATE_SMOOTHING * instant + (1 - RATE_SMOOTHING) * this.rate;
    this.lastTime = now;
    this.lastBytes = receivedBytes;
    this.callback({ file: this.file, receivedBytes, ...(totalBytes === undefined ? {} : { totalBytes }), bytesPerSecond: this.rate });
  }
}

/** Parses `bytes a-b/total` or `bytes * /total`. */
function parseContentRange(value: string | undefined): { start?: number; total?: number } {
  const match = value ? /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/i.exec(value.trim()) : null;
  if (!match) return {};
  return {
    ...(match[1] === undefined ? {} : { start: Number(match[1]) }),
    ...(match[2] === '*' ? {} : { total: Number(match[2]) }),
  };
}

function numberHeader(value: string | undefined): number | undefined {
  if (value === undefined || !/^\s*\d+\s*$/.test(value)) return undefined;
  return Number(value);
}

async function isAlreadyComplete(target: string, file: DownloadFile, signal: AbortSignal | undefined): Promise<boolean> {
  const size = await sizeOf(target);
  if (size === undefined) return false;
  if (file.size !== undefined && size !== file.size) return false;
  if (file.sha256 !== undefined) {
    const hash = createHash('sha256');
    await hashFile(target, hash, signal);
    return hash.digest('hex') === file.sha256.toLowerCase();
  }
  return true;
}

async function downloadOne(options: DownloadOptions, destination: string, file: DownloadFile): Promise<void> {
  const target = path.join(destination, file.name);
  const partial = target + PARTIAL_SUFFIX;
  const url = fileUrl(options, file.name);
  await fs.promises.mkdir(path.dirname(target), { recursive: true });
  if (await isAlreadyComplete(target, file, options.signal)) {
    options.onProgress?.({ file: file.name, receivedBytes: file.size ?? (await sizeOf(target)) ?? 0, ...(file.size === undefined ? {} : { totalBytes: file.size }), bytesPerSecond: 0 });
    return;
  }
  const transport = options.fetchImpl ? fetchTransport(options.fetchImpl) : nodeTransport(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);

  let offset = (await sizeOf(partial)) ?? 0;
  if (file.size !== undefined && offset > file.size) offset = 0;
  for (let attempt = 0; ; attempt++) {
    const { response, firstHeader } = await open(options, transport, url, file.name, offset);
    const expected = file.sha256?.toLowerCase() ?? etagSha256(firstHeader('x-linked-etag') ?? firstHeader('etag'));
    const declaredSize = file.size ?? numberHeader(firstHeader('x-linked-size'));
    const status = response.status;

    if (status === 416 && offset > 0) {
      response.close();
      const { total } = parseContentRange(response.header('content-range'));
      if (total === offset && (declaredSize === undefined || declaredSize === offset)) {
        // The partial already holds every byte: verify it as it is.
        const hash = createHash('sha256');
        await hashFile(partial, hash, options.signal);
        await finish(file, partial, target, hash, offset, expected, declaredSize);
        new ProgressReporter(file.name, options.onProgress, offset).report(offset, offset, true);
        return;
      }
      if (attempt > 0) throw new DownloadError('http', `the server refused to resume ${file.name} (${url} answered 416)`);
      offset = 0;
      continue;
    }
    if (status === 404) {
      response.close();
      throw new DownloadError('not-found', `${file.name} was not found on the server (${url} answered 404); check the repository, revision and endpoint settings`);
    }
    if (status === 401 || status === 403) {
      response.close();
      throw new DownloadError('unauthorized',
        `the server refused access to ${file.name} (${url} answered ${status}); if this is a gated mirror, set a token`);
    }
    if (status !== 200 && status !== 206) {
      response.close();
      throw new DownloadError('http', `downloading ${file.name} failed: ${url} answered HTTP ${status}`);
    }

    let total = declaredSize;
    const length = numberHeader(response.header('content-length'));
    if (status === 206) {
      const range = parseContentRange(response.header('content-range'));
      if (offset === 0 || range.start !== offset) {
        // Not the range asked for: start over from the beginning.
        response.close();
        if (attempt > 0) throw new DownloadError('http', `the server sent an unexpected range for ${file.name} (${url})`);
        offset = 0;
        continue;
      }
      total ??= range.total ?? (length === undefined ? undefined : offset + length);
    } else {
      offset = 0; // 200: the whole file again, so the partial is replaced.
      total ??= length;
    }
    if (declaredSize === undefined && total !== undefined) {
      try {
        await checkDiskSpace(destination, total - offset);
      } catch (error) {
        response.close();
        throw error;
      }
    }
    await receive(options, file, partial, target, response, offset, total, length, expected);
    return;
  }
}

async function receive(
  options: DownloadOptions, file: DownloadFile, partial: string, target: string, response: RawResponse,
  offset: number, total: number | undefined, length: number | undefined, expected: string | undefined,
): Promise<void> {
  const hash = createHash('sha256');
  let handle: fs.promises.FileHandle | undefined;
  let received = offset;
  const progress = new ProgressReporter(file.name, options.onProgress, offset);
  const onAbort = (): void => response.close();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (offset > 0) await hashFile(partial, hash, options.signal);
    handle = await fs.promises.open(partial, offset > 0 ? 'a' : 'w');
    progress.report(received, total);
    for await (const chunk of response.body) {
      throwIfCancelled(options.signal);
      await handle.write(chunk);
      hash.update(chunk);
      received += chunk.byteLength;
      progress.report(received, total);
    }
    await handle.close();
    handle = undefined;
  } catch (error) {
    response.close();
    await handle?.close().catch(() => undefined);
    if (error instanceof DownloadError) throw error;
    throwIfCancelled(options.signal);
    if ((error as NodeJS.ErrnoException).code === 'ENOSPC') {
      throw new DownloadError('disk-space', `the disk is full while writing ${file.name}; free some space, ${KEPT}`);
    }
    throw new DownloadError('network',
      `the connection failed while downloading ${file.name} (${describeCause(error, options.token)}) after ${formatBytes(received)}; ${KEPT}`);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  throwIfCancelled(options.signal);
  if ((length !== undefined && received - offset < length) || (total !== undefined && received < total)) {
    throw new DownloadError('network', `the connection closed early while downloading ${file.name} (${formatBytes(received)} received); ${KEPT}`);
  }
  await finish(file, partial, target, hash, received, expected, total);
  progress.report(received, total, true);
}

async function finish(
  file: DownloadFile, partial: string, target: string, hash: Hash, size: number, expected: string | undefined, total: number | undefined,
): Promise<void> {
  const actual = hash.digest('hex');
  if (total !== undefined && size !== total) {
    await fs.promises.rm(partial, { force: true });
    throw new DownloadError('hash-mismatch',
      `${file.name} has the wrong size (${size} bytes instead of ${total}); the download was deleted, try again`);
  }
  if (expected !== undefined && actual !== expected) {
    await fs.promises.rm(partial, { force: true });
    throw new DownloadError('hash-mismatch',
      `${file.name} is corrupt: expected sha256 ${expected}, got ${actual}; the download was deleted, try again`);
  }
  await fs.promises.rename(partial, target);
}
