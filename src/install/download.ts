/**
 * Downloads model files the way the Hugging Face hub clients do: `<endpoint>/<repo>/resolve/<revision>/<file>`,
 * following the hub's redirect to its CDN (dropping the Authorization header when the redirect leaves the
 * endpoint's origin), resuming `<name>.partial` files with a Range request, and renaming a file into place
 * only once the file on disk has been verified: its sha256 (given, or the hub's X-Linked-Etag), or for a small
 * file the hub keeps in git, its git blob SHA-1 (the hub's ETag). Each verified file's size and sha256 go into
 * the folder's download record, so a later call notices a file that was changed or cut since.
 * Plain Node: no `vscode` import.
 *
 * The token is only ever put in the Authorization header: it is never logged nor part of an error message, and
 * it never travels in clear: the endpoint must be https (plain http only on loopback), and a redirect from https
 * to http is refused. Credentials in the endpoint (https://user:password@host) are shown as *** in every message.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { insecureUrlReason, redactCredentials, redactUrl, urlCredentials } from '../util/secureUrl';
import type { ContentCheck } from './knownContent';

export interface DownloadFile {
  /** Path of the file in the repository (also its path under the destination). */
  readonly name: string;
  /** Expected size in bytes, when known. */
  readonly size?: number;
  /** Expected sha256 (hex), when known; otherwise the hub's X-Linked-Etag is used when it is one. */
  readonly sha256?: string;
  /** Where no sha256 is pinned: what the file must say (checked before it is renamed into place, and again when found complete). */
  readonly content?: ContentCheck;
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
  /** Bytes free in a folder (default: statfs; undefined when unknown). */
  readonly freeSpace?: FreeSpaceProbe;
}

/** Bytes free for new files in `folder`, or undefined when that cannot be told. */
export type FreeSpaceProbe = (folder: string) => Promise<number | undefined>;

export type DownloadErrorKind = 'not-found' | 'unauthorized' | 'network' | 'hash-mismatch' | 'disk-space' | 'cancelled' | 'insecure' | 'http';

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
/** The download record (size and sha256 of each verified file), in the destination folder. */
export const DOWNLOAD_RECORD_FILE = '.phi-complete-download.json';

/** Refuses an endpoint that is not https (plain http only on loopback), before anything is sent to it. */
export function checkEndpoint(endpoint: string): void {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new DownloadError('insecure', `the hub endpoint ${JSON.stringify(redactUrl(endpoint))} is not a URL; set phiComplete.hubEndpoint to an https URL`);
  }
  const reason = insecureUrlReason(url);
  if (reason) throw new DownloadError('insecure', `refusing to download from ${url.origin}: ${reason}; set phiComplete.hubEndpoint to an https URL`);
}

/** Refuses a redirect that would leave https, or go to a URL that could not be an endpoint either. */
export function checkRedirect(from: URL, to: URL): void {
  const reason = from.protocol === 'https:' && to.protocol !== 'https:' ? `it leaves https for ${to.protocol.slice(0, -1)}` : insecureUrlReason(to);
  if (reason) throw new DownloadError('insecure', `refusing the redirect from ${from.origin} to ${to.origin}: ${reason}`);
}

/** The URL of one file of the repository at the revision. */
export function fileUrl(options: Pick<DownloadOptions, 'endpoint' | 'repo' | 'revision'>, name: string): string {
  const endpoint = options.endpoint.replace(/\/+$/, '');
  const repo = options.repo.split('/').map(encodeURIComponent).join('/');
  const file = name.split('/').map(encodeURIComponent).join('/');
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(options.revision)}/${file}`;
}

/**
 * A manual route for machines that cannot download: the URL of each file and where to put them (without the
 * endpoint's user name and password, if it has them: the text is logged).
 */
export function offlineHelp(options: Pick<DownloadOptions, 'endpoint' | 'repo' | 'revision' | 'files'>): string {
  const credentials = urlCredentials(options.endpoint).length > 0;
  const lines = [
    `To install the model by hand, download these files of ${options.repo} (revision ${options.revision})`
      + `${credentials ? ', with the user name and password of phiComplete.hubEndpoint in place of ***' : ''}:`,
    '',
  ];
  for (const file of options.files) {
    const details = [
      ...(file.size === undefined ? [] : [formatBytes(file.size)]),
      ...(file.sha256 === undefined ? [] : [`sha256 ${file.sha256.toLowerCase()}`]),
    ];
    lines.push(`  ${redactUrl(fileUrl(options, file.name))}${details.length > 0 ? `  (${details.join(', ')})` : ''}`);
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
  checkEndpoint(options.endpoint);
  for (const file of options.files) checkName(file.name);
  throwIfCancelled(options.signal);
  await fs.promises.mkdir(destination, { recursive: true });
  const record = await readDownloadRecord(destination);
  const probe = options.freeSpace ?? freeDiskSpace;
  await checkDiskSpace(destination, await bytesStillNeeded(destination, options.files, record), probe);
  for (const file of options.files) {
    throwIfCancelled(options.signal);
    await downloadOne(options, destination, withRecorded(file, record), probe);
  }
}

/** Size and sha256 of each file verified into a download folder, by name. */
export type DownloadRecord = Record<string, { readonly bytes: number; readonly sha256: string }>;

/** The download folder's record of verified files (empty when there is none, or it cannot be read). */
export async function readDownloadRecord(destination: string): Promise<DownloadRecord> {
  try {
    const record: unknown = JSON.parse(await fs.promises.readFile(path.join(destination, DOWNLOAD_RECORD_FILE), 'utf8'));
    return record !== null && typeof record === 'object' ? record as DownloadRecord : {};
  } catch {
    return {};
  }
}

/** Adds one verified file to the record (written under a temporary name and renamed, so it is never half written). */
async function recordFile(destination: string, name: string, bytes: number, sha256: string): Promise<void> {
  const record = { ...(await readDownloadRecord(destination)), [name]: { bytes, sha256 } };
  const file = path.join(destination, DOWNLOAD_RECORD_FILE);
  const temporary = `${file}.${process.pid}.tmp`;
  await fs.promises.writeFile(temporary, `${JSON.stringify(record, null, 2)}\n`);
  await fs.promises.rename(temporary, file);
}

/** The file with the size and sha256 it was verified with before, where the caller knows none. */
function withRecorded(file: DownloadFile, record: DownloadRecord): DownloadFile {
  const recorded = Object.hasOwn(record, file.name) ? record[file.name] : undefined;
  if (!recorded) return file;
  return { ...file, size: file.size ?? recorded.bytes, sha256: file.sha256 ?? recorded.sha256 };
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

/**
 * Bytes still to fetch for the files whose size is known (a cheap estimate: sizes only, no hashing); the sizes of
 * files verified before count too, so a file that was cut since is fetched again.
 */
async function bytesStillNeeded(destination: string, files: readonly DownloadFile[], record: DownloadRecord = {}): Promise<number> {
  let needed = 0;
  for (const listed of files) {
    const file = withRecorded(listed, record);
    if (file.size === undefined) continue;
    const target = path.join(destination, file.name);
    if ((await sizeOf(target)) === file.size) continue;
    const partial = (await sizeOf(target + PARTIAL_SUFFIX)) ?? 0;
    needed += partial <= file.size ? file.size - partial : file.size;
  }
  return needed;
}

/** Bytes of the listed files already in `destination`, complete or partly downloaded, and whether all are complete (for estimates). */
export async function downloadedBytes(destination: string, files: readonly DownloadFile[]): Promise<{ readonly bytes: number; readonly complete: boolean }> {
  let bytes = 0;
  let complete = true;
  for (const file of files) {
    const target = path.join(destination, file.name);
    const size = await sizeOf(target);
    complete &&= size !== undefined;
    bytes += size ?? (await sizeOf(target + PARTIAL_SUFFIX)) ?? 0;
  }
  return { bytes, complete };
}

/** Bytes free for new files in `folder` (statfs), or undefined where that cannot be told. */
export async function freeDiskSpace(folder: string): Promise<number | undefined> {
  try {
    const stats = await fs.promises.statfs(folder);
    return stats.bavail * stats.bsize;
  } catch {
    return undefined; // No statfs here (or it failed): the write itself reports ENOSPC.
  }
}

/** Fails as 'disk-space' when `folder` has less than `needed` bytes free; `what` names what needs them. */
export async function checkDiskSpace(folder: string, needed: number, probe: FreeSpaceProbe = freeDiskSpace, what = 'the model'): Promise<void> {
  if (needed <= 0) return;
  const free = await probe(folder);
  if (free !== undefined && needed > free) {
    throw new DownloadError('disk-space',
      `not enough disk space in ${folder}: ${what} needs ${formatBytes(needed)} more but only ${formatBytes(free)} is free; ` +
        'free some space or choose another folder');
  }
}

async function hashFile(file: string, hashes: readonly Hash[], signal: AbortSignal | undefined): Promise<void> {
  for await (const chunk of fs.createReadStream(file)) {
    throwIfCancelled(signal);
    for (const hash of hashes) hash.update(chunk as Buffer);
  }
}

function etagValue(value: string | undefined): string | undefined {
  return value?.trim().replace(/^W\//i, '').replace(/^"(.*)"$/, '$1').toLowerCase();
}

/** The sha256 in an ETag / X-Linked-Etag header, when it is one (git blob ids of small files are not). */
export function etagSha256(value: string | undefined): string | undefined {
  const stripped = etagValue(value);
  return stripped !== undefined && /^[0-9a-f]{64}$/.test(stripped) ? stripped : undefined;
}

/** The git blob SHA-1 in an ETag header, as the hub sends for files it keeps in git (not LFS). */
export function etagGitBlobSha1(value: string | undefined): string | undefined {
  const stripped = etagValue(value);
  return stripped !== undefined && /^[0-9a-f]{40}$/.test(stripped) ? stripped : undefined;
}

/** What the file on disk must hash to, and who said so (for the error message). */
interface Expected {
  readonly algorithm: 'sha256' | 'git blob SHA-1';
  readonly hex: string;
  readonly source: string;
}

/** The check for a file: its given sha256, else the hub's X-Linked-Etag (sha256), else its ETag (sha256, or a git blob SHA-1). */
function expectedHash(file: DownloadFile, hubHeader: (name: string) => string | undefined): Expected | undefined {
  if (file.sha256 !== undefined) return { algorithm: 'sha256', hex: file.sha256.toLowerCase(), source: 'as listed' };
  const linked = etagSha256(hubHeader('x-linked-etag'));
  if (linked) return { algorithm: 'sha256', hex: linked, source: "the hub's X-Linked-Etag" };
  const etag = hubHeader('etag');
  const sha256 = etagSha256(etag);
  if (sha256) return { algorithm: 'sha256', hex: sha256, source: "the hub's ETag" };
  const blob = etagGitBlobSha1(etag);
  return blob ? { algorithm: 'git blob SHA-1', hex: blob, source: "the hub's ETag" } : undefined;
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
  /**
   * A header of the endpoint's own responses (before the redirect that leaves its origin): the latest one that
   * has it, as the hub may first redirect within its origin (as huggingface_hub reads them).
   */
  readonly hubHeader: (name: string) => string | undefined;
}

/**
 * Why a request failed, as it may be shown: without the token, nor the endpoint's credentials (a transport's
 * message may quote the URL; a credential of 6 characters or more is hidden in any other form too, a shorter one
 * would hide parts of words).
 */
function describeCause(error: unknown, options: Pick<DownloadOptions, 'endpoint' | 'token'>): string {
  const cause = error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error);
  const credentials = urlCredentials(options.endpoint).filter((part) => part.length >= 6);
  const secrets = [...(options.token ? [options.token] : []), ...credentials].sort((a, b) => b.length - a.length);
  return secrets.reduce((text, secret) => text.split(secret).join('***'), redactCredentials(cause));
}

/**
 * GET with redirects followed by hand, so that Authorization is dropped when one leaves the origin, and a
 * redirect from https to plain http is refused. `beforeRedirect` may refuse to follow one, seeing the endpoint's
 * headers so far (the hub declares an LFS file's size before redirecting to its bytes).
 */
async function open(
  options: DownloadOptions, transport: Transport, url: string, fileName: string, offset: number,
  beforeRedirect: (hubHeader: (name: string) => string | undefined) => Promise<void>,
): Promise<Opened> {
  const origin = new URL(url).origin;
  const shown = redactUrl(url);
  let current = new URL(url);
  let sameOrigin = true;
  const hubHeaders: ((name: string) => string | undefined)[] = [];
  const hubHeader = (name: string): string | undefined => hubHeaders.map((header) => header(name)).reverse().find((value) => value !== undefined);
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
        `cannot download ${fileName} from ${hop === 0 ? shown : current.origin} (${describeCause(error, options)}); ` +
          `check the network connection and the endpoint setting; ${KEPT}`);
    }
    if (sameOrigin) hubHeaders.push(response.header);
    if (!REDIRECT_STATUSES.has(response.status)) return { response, hubHeader };
    response.close();
    const location = response.header('location');
    if (!location) throw new DownloadError('http', `${shown} answered ${response.status} without a Location header (downloading ${fileName})`);
    if (hop + 1 > MAX_REDIRECTS) throw new DownloadError('http', `too many redirects (more than ${MAX_REDIRECTS}) downloading ${fileName} from ${shown}`);
    const next = new URL(location, current);
    checkRedirect(current, next);
    await beforeRedirect(hubHeader);
    current = next;
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
    await hashFile(target, [hash], signal);
    if (hash.digest('hex') !== file.sha256.toLowerCase()) return false;
  }
  return file.content?.(target) === undefined;
}

/** One file's download: what is fetched, how, and where it goes. */
interface FileJob {
  readonly options: DownloadOptions;
  readonly destination: string;
  readonly file: DownloadFile;
  readonly probe: FreeSpaceProbe;
  readonly transport: Transport;
  readonly url: string;
  /** The URL as messages show it (without the endpoint's credentials). */
  readonly shown: string;
  readonly target: string;
  /** Where the bytes are written until the file is verified (kept when cancelled or cut: the next call resumes it). */
  readonly partial: string;
}

/** One file: nothing to do when it is complete on disk already; else fetched (resuming its partial) and verified into place. */
async function downloadOne(options: DownloadOptions, destination: string, file: DownloadFile, probe: FreeSpaceProbe): Promise<void> {
  const target = path.join(destination, file.name);
  const url = fileUrl(options, file.name);
  const transport = options.fetchImpl ? fetchTransport(options.fetchImpl) : nodeTransport(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const job: FileJob = { options, destination, file, probe, transport, url, shown: redactUrl(url), target, partial: target + PARTIAL_SUFFIX };
  await fs.promises.mkdir(path.dirname(target), { recursive: true });
  if (await isAlreadyComplete(target, file, options.signal)) {
    options.onProgress?.({ file: file.name, receivedBytes: file.size ?? (await sizeOf(target)) ?? 0, ...(file.size === undefined ? {} : { totalBytes: file.size }), bytesPerSecond: 0 });
    return;
  }
  const kept = (await sizeOf(job.partial)) ?? 0;
  const offset = file.size !== undefined && kept > file.size ? 0 : kept;
  // A server that will not resume where the partial ends is asked once more, for the whole file (retried: it must send it).
  if ((await fetchFrom(job, offset, false)) === 'restart') await fetchFrom(job, 0, true);
}

/** One request for the file from `offset` (0: all of it), written and verified into place; 'restart' when the server would not resume there. */
async function fetchFrom(job: FileJob, offset: number, retried: boolean): Promise<'done' | 'restart'> {
  const { options, file } = job;
  const { response, hubHeader } = await open(options, job.transport, job.url, file.name, offset, (hubHeader) => checkDeclaredSpace(job, hubHeader, offset));
  const expected = expectedHash(file, hubHeader);
  const declaredSize = file.size ?? numberHeader(hubHeader('x-linked-size'));
  const resume = resumeAt(job, response, offset, declaredSize, retried);
  if (resume.kind === 'restart') return 'restart';
  if (resume.kind === 'complete') {
    // The partial already holds every byte: verify it as it is.
    await finish(job, expected, declaredSize);
    new ProgressReporter(file.name, options.onProgress, offset).report(offset, offset, true);
    return 'done';
  }
  if (declaredSize === undefined) await checkResponseSpace(job, response, resume);
  const progress = new ProgressReporter(file.name, options.onProgress, resume.offset);
  const received = await receive(options, file.name, job.partial, response, progress, resume.offset, resume.total, resume.length);
  await finish(job, expected, resume.total);
  progress.report(received, resume.total, true);
  return 'done';
}

/** A response whose body is written into the partial file from `offset`. */
interface ResponseBody {
  readonly kind: 'body';
  readonly offset: number;
  /** The file's size, when known. */
  readonly total: number | undefined;
  /** The body's Content-Length, when sent. */
  readonly length: number | undefined;
}

/** What a response means for the partial file: write its body, the partial is complete already, or ask again from the start. */
type Resume = ResponseBody | { readonly kind: 'complete' } | { readonly kind: 'restart' };

/**
 * What the response to a request from `offset` means for the partial file: a 200 replaces it, a 206 of the range
 * asked for goes on from it, a 416 says it is complete (or, like a 206 of another range, that the request must
 * start over, which a `retried` one may not). Fails on a refusal. A response whose body is not used is closed.
 */
function resumeAt({ file, shown }: FileJob, response: RawResponse, offset: number, declaredSize: number | undefined, retried: boolean): Resume {
  if (response.status === 416 && offset > 0) {
    response.close();
    const { total } = parseContentRange(response.header('content-range'));
    if (total === offset && (declaredSize === undefined || declaredSize === offset)) return { kind: 'complete' };
    if (retried) throw new DownloadError('http', `the server refused to resume ${file.name} (${shown} answered 416)`);
    return { kind: 'restart' };
  }
  refuseFailedStatus(response, file.name, shown);
  const length = numberHeader(response.header('content-length'));
  // 200: the whole file again, so the partial is replaced.
  if (response.status === 200) return { kind: 'body', offset: 0, total: declaredSize ?? length, length };
  const range = parseContentRange(response.header('content-range'));
  if (offset === 0 || range.start !== offset) {
    // Not the range asked for: start over from the beginning.
    response.close();
    if (retried) throw new DownloadError('http', `the server sent an unexpected range for ${file.name} (${shown})`);
    return { kind: 'restart' };
  }
  return { kind: 'body', offset, total: declaredSize ?? range.total ?? (length === undefined ? undefined : offset + length), length };
}

/** Fails on a response that brings none of the file's bytes (neither 200 nor 206), saying why; closes it. */
function refuseFailedStatus(response: RawResponse, name: string, shown: string): void {
  const status = response.status;
  if (status === 200 || status === 206) return;
  response.close();
  if (status === 404) {
    throw new DownloadError('not-found', `${name} was not found on the server (${shown} answered 404); check the repository, revision and endpoint settings`);
  }
  if (status === 401 || status === 403) {
    throw new DownloadError('unauthorized', `the server refused access to ${name} (${shown} answered ${status}); if this is a gated mirror, set a token`);
  }
  throw new DownloadError('http', `downloading ${name} failed: ${shown} answered HTTP ${status}`);
}

/** Before the bytes are requested, where the file's size was not known up front: the size the hub declares (X-Linked-Size). */
async function checkDeclaredSpace({ file, destination, probe }: FileJob, hubHeader: (name: string) => string | undefined, offset: number): Promise<void> {
  const declared = numberHeader(hubHeader('x-linked-size'));
  if (file.size === undefined && declared !== undefined) await checkDiskSpace(destination, declared - offset, probe, file.name);
}

/** Neither known up front nor declared by the hub: the size is checked with the response's length (closed when it does not fit). */
async function checkResponseSpace({ file, destination, probe }: FileJob, response: RawResponse, body: ResponseBody): Promise<void> {
  if (body.total === undefined) return;
  try {
    await checkDiskSpace(destination, body.total - body.offset, probe, file.name);
  } catch (error) {
    response.close();
    throw error;
  }
}

/** Appends the response's body to the partial file (from `offset`); returns the partial's size in bytes. */
async function receive(
  options: DownloadOptions, name: string, partial: string, response: RawResponse, progress: ProgressReporter,
  offset: number, total: number | undefined, length: number | undefined,
): Promise<number> {
  let handle: fs.promises.FileHandle | undefined;
  let received = offset;
  const onAbort = (): void => response.close();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    handle = await fs.promises.open(partial, offset > 0 ? 'a' : 'w');
    progress.report(received, total);
    for await (const chunk of response.body) {
      throwIfCancelled(options.signal);
      await handle.write(chunk);
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
      throw new DownloadError('disk-space', `the disk is full while writing ${name}; free some space, ${KEPT}`);
    }
    throw new DownloadError('network',
      `the connection failed while downloading ${name} (${describeCause(error, options)}) after ${formatBytes(received)}; ${KEPT}`);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  throwIfCancelled(options.signal);
  if ((length !== undefined && received - offset < length) || (total !== undefined && received < total)) {
    throw new DownloadError('network', `the connection closed early while downloading ${name} (${formatBytes(received)} received); ${KEPT}`);
  }
  return received;
}

/**
 * Verifies the partial file as it is on disk (not the bytes this call received: those are not the whole story
 * when the file was resumed, or written to by anything else), renames it into place and records it.
 */
async function finish(job: FileJob, expected: Expected | undefined, total: number | undefined): Promise<void> {
  const { size, sha256 } = await verifyPartial(job, expected, total);
  await fs.promises.rename(job.partial, job.target);
  await recordFile(job.destination, job.file.name, size, sha256);
}

/** The partial file's size and sha256, once it has the size `total` and the hash `expected`; else it is deleted. */
async function verifyPartial({ file, partial, options }: FileJob, expected: Expected | undefined, total: number | undefined): Promise<{ size: number; sha256: string }> {
  const size = (await sizeOf(partial)) ?? 0;
  if (total !== undefined && size !== total) {
    await fs.promises.rm(partial, { force: true });
    throw new DownloadError('hash-mismatch',
      `${file.name} has the wrong size (${size} bytes instead of ${total}); the download was deleted, try again`);
  }
  const sha256 = createHash('sha256');
  // A git blob id is the SHA-1 of "blob <size>\0" and the content.
  const blob = expected?.algorithm === 'git blob SHA-1' ? createHash('sha1').update(`blob ${size}\0`) : undefined;
  await hashFile(partial, blob ? [sha256, blob] : [sha256], options.signal);
  const actual = sha256.digest('hex');
  const checked = blob ? blob.digest('hex') : actual;
  if (expected !== undefined && checked !== expected.hex) {
    await fs.promises.rm(partial, { force: true });
    throw new DownloadError('hash-mismatch',
      `${file.name} is corrupt: its ${expected.algorithm} should be ${expected.hex} (${expected.source}), the downloaded file's is ${checked}; ` +
        'the download was deleted, try again');
  }
  const problem = file.content?.(partial);
  if (problem !== undefined) {
    await fs.promises.rm(partial, { force: true });
    throw new DownloadError('hash-mismatch',
      `${file.name} from ${redactUrl(options.endpoint)} is not the file this model needs: ${problem}; the download was deleted. ` +
        'If you use a mirror (phiComplete.hubEndpoint), check that it serves this model\'s files, then try again');
  }
  return { size, sha256: actual };
}
