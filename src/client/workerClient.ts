/**
 * The extension host's side of the inference worker: starts it lazily on the first request, matches replies to
 * requests, streams deltas, cancels, and supervises it — a crash or a missed heartbeat fails the pending
 * requests with a clear error and the next request starts a fresh worker (reloading the model), at most
 * RESTART_LIMIT times in RESTART_WINDOW_MS; beyond that the client pauses until `resume()`.
 * Liveness: the worker's heartbeat thread writes to an extra pipe (fd HEARTBEAT_FD) even while its main thread is
 * blocked in a long native call (src/worker/heartbeat.ts); any message on the IPC channel counts too. Its start-up
 * (until it says `ready`) sends nothing and is not held to the heartbeat timeout but to a longer start timeout: loading
 * ONNX Runtime can take long the first time (an antivirus scanning its native files on Windows).
 * Plain Node (no vscode import), so it is tested against a real worker process.
 */
import type { ChildProcess } from 'node:child_process';
import { Disposable, interval } from '../util/disposable';
import { FIRST_EXTRA_FD, forkNodeProcess } from '../util/fork';
import { isRuntimeLogLine, stripTerminalCodes } from '../util/terminalText';
import type { Device, DoneEvent, GenerationParams, HostMessage, LoadedEvent, LoadRequest, PrefilledEvent, PrefillOptions, WorkerMessage } from '../protocol';

export interface WorkerClientOptions {
  /** The bundled worker script (dist/worker.js). */
  readonly workerPath: string;
  /** Where the client's lines go; `debug` for what only matters when looking into a problem. */
  readonly log?: (message: string, level: 'debug' | 'info') => void;
  /** A worker silent for this long (no heartbeat on its pipe, no message) is considered hung and killed. */
  readonly heartbeatTimeoutMs?: number;
  /** A worker not ready this long after it was started is considered stuck and killed. */
  readonly startTimeoutMs?: number;
  /**
   * How long one call may block the worker's main thread (a model load, a pass) before its heartbeat stops and it
   * is killed as hung: long enough for a large model on a slow disk or a GPU provider's start-up.
   */
  readonly stallLimitMs?: number;
}

export type WorkerState = 'stopped' | 'starting' | 'loading' | 'ready' | 'paused';

/** Thrown for requests the worker could not complete; `code` says why. */
export class WorkerError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

type Answer = LoadedEvent | DoneEvent | PrefilledEvent;

interface Pending {
  readonly onDelta?: (text: string) => void;
  readonly resolve: (message: Answer) => void;
  readonly reject: (error: Error) => void;
}

export const RESTART_LIMIT = 4;
export const RESTART_WINDOW_MS = 3 * 60 * 1000;
const DEFAULT_HEARTBEAT_TIMEOUT_MS = 10_000;
const DEFAULT_START_TIMEOUT_MS = 120_000;
const DEFAULT_STALL_LIMIT_MS = 5 * 60 * 1000;
/** The heartbeat pipe's fd in the worker: after stdin, stdout, stderr and the IPC channel. */
const HEARTBEAT_FD = FIRST_EXTRA_FD;
const SHUTDOWN_GRACE_MS = 1000;

export class WorkerClient extends Disposable {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private crashes: number[] = [];
  /** When the worker last showed it is alive: a heartbeat on its pipe or any message. */
  private lastSignOfLifeAt = 0;
  /** When the worker running now was started, and whether it has said `ready` since. */
  private startedAt = 0;
  private childReady = false;
  /** Why the client killed the worker running now, for its requests' error (undefined: it did not). */
  private killedFor: string | undefined;
  /** The worker being shut down on purpose: its exit, however it ends, is no crash. */
  private stopping: ChildProcess | undefined;
  private lastLoad: Omit<LoadRequest, 'id'> | undefined;
  /** The KV cache budget to give every worker started (setCacheBudget); the worker's default until set. */
  private cacheBytes: number | undefined;
  private loaded: Promise<LoadedEvent> | undefined;
  private currentState: WorkerState = 'stopped';
  private readonly listeners = new Set<(state: WorkerState, detail?: string) => void>();

  constructor(private readonly options: WorkerClientOptions) {
    super();
    const timeout = options.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    const startTimeout = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const checkEvery = Math.min(1000, timeout / 2, startTimeout / 2);
    let lastCheckAt = Date.now();
    this.register(interval(() => {
      const now = Date.now();
      // After this process was itself blocked, timers run before the worker's queued heartbeats are read: wait for them.
      if (now - lastCheckAt > timeout) this.lastSignOfLifeAt = now;
      lastCheckAt = now;
      if (!this.child || this.killedFor) return;
      if (!this.childReady) {
        // Starting: it has no heartbeat yet.
        if (now - this.startedAt > startTimeout) {
          this.killedFor = `did not start within ${Math.round(startTimeout / 1000)} s (an antivirus scanning ONNX Runtime's files can slow its start)`;
          this.log(`worker ${this.killedFor}: killing it`);
          this.child.kill('SIGKILL');
        }
      } else if (now - this.lastSignOfLifeAt > timeout) {
        this.killedFor = `sent nothing for ${timeout} ms`;
        this.log(`worker sent nothing for ${timeout} ms: killing it`);
        this.child.kill('SIGKILL');
      }
    }, checkEvery));
  }

  get state(): WorkerState {
    return this.currentState;
  }

  /** The worker's process id, while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  onStateChange(listener: (state: WorkerState, detail?: string) => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** Loads a model (replacing the current one); resolves once it is ready, with the device in use. */
  load(modelDir: string, device: Device, threads: number): Promise<LoadedEvent> {
    this.lastLoad = { type: 'load', modelDir, device, threads };
    this.loaded = this.startLoad();
    return this.loaded;
  }

  /**
   * Generates from `prompt`, streaming text to onDelta. A newer generate cancels this one (it resolves "cancelled"); only a newer explanation cancels an explanation.
   * `sequence` names the KV cache it reads and extends: the document's URI for completions, EXPLAIN_SEQUENCE for
   * Explain Selection; the worker's default sequence when absent.
   */
  async generate(prompt: string, params: GenerationParams, onDelta?: (text: string) => void, signal?: AbortSignal, sequence?: string): Promise<DoneEvent> {
    if (!this.lastLoad) throw new WorkerError('no-model', 'no model is configured');
    if (!this.child || !this.loaded) this.loaded = this.startLoad();
    await this.loaded;
    const id = this.nextId++;
    const done = new Promise<DoneEvent>((resolve, reject) => {
      this.pending.set(id, { onDelta, resolve: resolve as (m: Answer) => void, reject });
    });
    const cancel = (): void => this.post({ type: 'cancel', id });
    signal?.addEventListener('abort', cancel, { once: true });
    this.post({ type: 'generate', id, prompt, params, ...(sequence === undefined ? {} : { sequence }) });
    if (signal?.aborted) cancel();
    try {
      return await done;
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }

  /**
   * Warms `sequence`'s KV cache with `prompt` (for a generate of `maxNewTokens` with `options.quick`; with
   * `options.nextOnly`, only what that generate would read now) while the model is idle, so that request starts
   * from it. Only when a model is loaded and ready: it never starts the worker or loads a model, and
   * resolves undefined then. Otherwise resolves with the worker's answer: done, cancelled (a generate or a newer
   * prefill took over) or busy (a generation was in flight or queued).
   */
  async prefill(sequence: string, prompt: string, maxNewTokens: number, options: PrefillOptions = {}): Promise<PrefilledEvent | undefined> {
    if (this.currentState !== 'ready' || !this.child?.connected || !this.loaded) return undefined;
    const id = this.nextId++;
    const answered = new Promise<PrefilledEvent>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (m: Answer) => void, reject });
    });
    this.post({ type: 'prefill', id, sequence, prompt, maxNewTokens, ...options });
    return answered;
  }

  /**
   * The bytes the worker's KV caches (one per recently used sequence) may hold together: sent now, and to every
   * worker started later. Applies without reloading the model.
   */
  setCacheBudget(bytes: number): void {
    this.cacheBytes = bytes;
    this.post({ type: 'configure', cacheBytes: bytes });
  }

  /** After too many crashes the client pauses; this allows new starts again. */
  resume(): void {
    this.crashes = [];
    if (this.currentState === 'paused') this.setState('stopped');
  }

  /** Asks the worker to exit, and kills it if it has not within a second; not counted as a crash either way. */
  async shutdown(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.stopping = child;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.post({ type: 'shutdown' });
    const timer = setTimeout(() => child.kill('SIGKILL'), SHUTDOWN_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  override dispose(): void {
    void this.shutdown();
    super.dispose();
  }

  private startLoad(): Promise<LoadedEvent> {
    const request = this.lastLoad!;
    this.ensureStarted();
    this.setState('loading');
    const id = this.nextId++;
    const loaded = new Promise<LoadedEvent>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (m: Answer) => void, reject });
    });
    this.post({ ...request, id });
    const settled: Promise<LoadedEvent> = loaded.then(
      (event) => {
        if (this.loaded === settled) this.setState('ready', event.device);
        return event;
      },
      (error: Error) => {
        // Only the latest load speaks for the worker: an older one failing leaves a newer one in flight alone.
        if (this.loaded === settled) {
          this.loaded = undefined;
          if (this.currentState === 'loading') this.setState('stopped', error.message);
        }
        throw error;
      },
    );
    return settled;
  }

  private ensureStarted(): void {
    if (this.child) return;
    if (this.isDisposed) throw new WorkerError('disposed', 'the inference worker has been shut down');
    if (this.currentState === 'paused' || this.recentCrashes() >= RESTART_LIMIT) {
      // Said once, when it pauses: requests while paused fail quietly.
      if (this.currentState !== 'paused') this.setState('paused', this.pausedMessage());
      throw new WorkerError('paused', this.pausedMessage());
    }
    this.setState('starting');
    const heartbeatArgs = [`--heartbeat-fd=${HEARTBEAT_FD}`, `--stall-limit-ms=${this.options.stallLimitMs ?? DEFAULT_STALL_LIMIT_MS}`];
    const child = forkNodeProcess(this.options.workerPath, heartbeatArgs, { extraPipes: 1 });
    this.child = child;
    this.lastSignOfLifeAt = Date.now();
    this.startedAt = this.lastSignOfLifeAt;
    this.childReady = false;
    this.killedFor = undefined;
    if (this.cacheBytes !== undefined) this.post({ type: 'configure', cacheBytes: this.cacheBytes });
    child.stderr?.setEncoding('utf8').on('data', (text: string) => this.logWorkerOutput(text));
    child.stdio[HEARTBEAT_FD]?.on('data', () => (this.lastSignOfLifeAt = Date.now()));
    child.on('message', (message: WorkerMessage) => this.onMessage(message));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    child.on('error', (error) => this.log(`worker process error: ${error.message}`));
  }

  private onMessage(message: WorkerMessage): void {
    this.lastSignOfLifeAt = Date.now();
    switch (message.type) {
      case 'ready':
        this.childReady = true;
        break;
      case 'delta':
        this.pending.get(message.id)?.onDelta?.(message.text);
        break;
      case 'loaded':
      case 'done':
      case 'prefilled': {
        const pending = this.pending.get(message.id);
        this.pending.delete(message.id);
        pending?.resolve(message);
        break;
      }
      case 'error': {
        const pending = message.id === undefined ? undefined : this.pending.get(message.id);
        if (pending) {
          this.pending.delete(message.id!);
          pending.reject(new WorkerError(message.code, message.message));
        } else {
          this.log(`worker error (${message.code}): ${message.message}`);
        }
        break;
      }
      default:
        break;
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = undefined;
    this.loaded = undefined;
    const stopped = this.stopping === child;
    this.stopping = undefined;
    const expected = this.isDisposed || code === 0 || stopped;
    const killedFor = this.killedFor;
    this.killedFor = undefined;
    const how = killedFor && !this.childReady ? `${killedFor} and was killed` : signal ? `was killed (${signal})` : `exited with code ${String(code)}`;
    if (!expected) {
      this.crashes.push(Date.now());
      this.log(`worker ${how}`);
    }
    const paused = !expected && this.recentCrashes() >= RESTART_LIMIT;
    const error = stopped
      ? new WorkerError('shut-down', 'the inference worker was shut down')
      : new WorkerError('worker-crashed', paused ? `${this.pausedMessage()}; the last time it ${how}` : `the inference worker ${how}; it restarts on the next request`);
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
    if (expected) this.setState('stopped');
    else this.setState(paused ? 'paused' : 'stopped', error.message);
  }

  /** The crashes within RESTART_WINDOW_MS (older ones are forgotten). */
  private recentCrashes(): number {
    const now = Date.now();
    this.crashes = this.crashes.filter((t) => now - t < RESTART_WINDOW_MS);
    return this.crashes.length;
  }

  private pausedMessage(): string {
    return `the inference worker crashed ${this.crashes.length} times in ${RESTART_WINDOW_MS / 60000} minutes; completions are paused until it is restarted`;
  }

  private post(message: HostMessage): void {
    if (this.child?.connected) this.child.send(message);
  }

  private setState(state: WorkerState, detail?: string): void {
    this.currentState = state;
    for (const listener of this.listeners) listener(state, detail);
  }

  /** The worker's stderr: ONNX Runtime's own lines (e.g. a GPU provider that `auto` passed over) at debug level. */
  private logWorkerOutput(text: string): void {
    for (const line of stripTerminalCodes(text).split('\n')) {
      if (line.trim() !== '') this.log(`worker: ${line.trimEnd()}`, isRuntimeLogLine(line) ? 'debug' : 'info');
    }
  }

  private log(message: string, level: 'debug' | 'info' = 'info'): void {
    this.options.log?.(message, level);
  }
}
