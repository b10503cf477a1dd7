/**
 * The messages between the extension host and the inference worker (a child process, over Node's IPC channel).
 * Every request but `configure` and `shutdown` carries an id; a generation streams `delta`s and ends with exactly
 * one `done` or `error`, a prefill with one `prefilled` or `error`.
 * The worker keeps a KV cache per named sequence (a document's URI; EXPLAIN_SEQUENCE), least recently used out first.
 */
import type { Device, FinishReason, GenerationStats, PrefillOutcome, PrefillStats, QuickPrompt, SamplingParams } from './shared/engineTypes';

// The types of the values the engine reads and reports, defined below both this file and src/inference/.
export type { Device, FinishReason, GenerationStats, PrefillOutcome, PrefillStats, QuickPrompt, SamplingParams } from './shared/engineTypes';

export const DEVICES: readonly Device[] = ['auto', 'cpu', 'cuda', 'dml', 'coreml', 'webgpu'];

export interface GenerationParams extends SamplingParams {
  readonly maxNewTokens: number;
  readonly stop: readonly string[];
  readonly speculative: boolean;
  /** A shorter prompt to answer from while the prompt's text is not cached yet (see QuickPrompt). */
  readonly quick?: QuickPrompt;
}

/**
 * Explain Selection's sequence: not a URI (no scheme), so no document's. Its requests never evict the most recently
 * used other sequence, the file being edited.
 */
export const EXPLAIN_SEQUENCE = 'explain';

// Host → worker.
/** Load (or replace) the model; answered by `loaded` or `error`. */
export interface LoadRequest { readonly type: 'load'; readonly id: number; readonly modelDir: string; readonly device: Device; readonly threads: number }
/** Generate from a prompt on `sequence`'s cache (the worker's default one when absent); answered by `delta`s then `done` or `error`. A newer generate cancels this one, but only a newer explanation (EXPLAIN_SEQUENCE) cancels an explanation: other generates wait for it. */
export interface GenerateRequest { readonly type: 'generate'; readonly id: number; readonly prompt: string; readonly params: GenerationParams; readonly sequence?: string }
/** Warm `sequence`'s cache for the generate these fields describe (its quick prompt's window first where it would answer from it; with nextOnly, only that) while no generation is in flight or queued; answered by `prefilled` or `error`. Any later generate or prefill cancels it at its next chunk. */
export interface PrefillRequest { readonly type: 'prefill'; readonly id: number; readonly sequence: string; readonly prompt: string; readonly maxNewTokens: number; readonly quick?: QuickPrompt; readonly nextOnly?: boolean }
/** What a prefill reads besides its prompt. */
export type PrefillOptions = Pick<PrefillRequest, 'quick' | 'nextOnly'>;
/** Stop generation or prefill `id` at its next step; it still ends with `done` or `prefilled` (cancelled). */
export interface CancelRequest { readonly type: 'cancel'; readonly id: number }
/** Settings that apply without reloading the model: the bytes all sequences' KV caches may hold together; not answered. */
export interface ConfigureRequest { readonly type: 'configure'; readonly cacheBytes: number }
/** The worker's KV cache budget until a `configure` gives one: 768 MiB, the default of the phiComplete.cacheMemoryMB setting. */
export const DEFAULT_CACHE_BYTES = 768 * 1024 * 1024;
/** Release the model and exit. */
export interface ShutdownRequest { readonly type: 'shutdown' }
export type HostMessage = LoadRequest | GenerateRequest | PrefillRequest | CancelRequest | ConfigureRequest | ShutdownRequest;

// Worker → host.
/** The worker is up and listening. */
export interface ReadyEvent { readonly type: 'ready'; readonly pid: number }
/** Sent every HEARTBEAT_MS while the worker's main thread is free (a thread also beats on a pipe meanwhile: src/worker/heartbeat.ts). */
export interface HeartbeatEvent { readonly type: 'heartbeat' }
/** Loading progress for request `id`, for the status bar. */
export interface ProgressEvent { readonly type: 'progress'; readonly id: number; readonly message: string }
/** The model is loaded: the device it runs on, why a preferred device was not used, and a better model for that device. */
export interface LoadedEvent { readonly type: 'loaded'; readonly id: number; readonly device: Device; readonly fallbacks: readonly string[]; readonly advice?: string; readonly loadMs: number }
/** More generated text for request `id`. */
export interface DeltaEvent { readonly type: 'delta'; readonly id: number; readonly text: string }
/** Generation `id` ended. */
export interface DoneEvent { readonly type: 'done'; readonly id: number; readonly text: string; readonly finishReason: FinishReason; readonly stats: GenerationStats }
/** Prefill `id` ended: done, cancelled (a newer request took over; what it fed stays cached) or busy (a generation was in flight or queued: it never ran). */
export interface PrefilledEvent { readonly type: 'prefilled'; readonly id: number; readonly outcome: PrefillOutcome; readonly stats: PrefillStats }
/** Request `id` failed (or, without an id, a message could not be handled); the worker stays up. */
export interface ErrorEvent { readonly type: 'error'; readonly id?: number; readonly code: ErrorCode; readonly message: string }
export type WorkerMessage = ReadyEvent | HeartbeatEvent | ProgressEvent | LoadedEvent | DeltaEvent | DoneEvent | PrefilledEvent | ErrorEvent;

export type ErrorCode = 'bad-message' | 'no-model' | 'model-invalid' | 'device-unavailable' | 'generation-failed' | 'worker-crashed';

/** How often the worker shows it is alive: on the IPC channel and on its heartbeat pipe. */
export const HEARTBEAT_MS = 1000;

/** Checks an untrusted message from the host; returns a reason when it is not a well-formed HostMessage. */
export function validateHostMessage(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return 'message is not an object';
  const m = message as Record<string, unknown>;
  const isId = (value: unknown): boolean => Number.isInteger(value) && (value as number) >= 0;
  const isCount = (value: unknown): boolean => Number.isInteger(value) && (value as number) >= 0;
  const isNumber = (value: unknown): boolean => typeof value === 'number' && Number.isFinite(value);
  const isSequence = (value: unknown): boolean => typeof value === 'string' && value !== '';
  const isQuickPrompt = (value: unknown): boolean => typeof value === 'object' && value !== null
    && typeof (value as Record<string, unknown>).prompt === 'string' && isCount((value as Record<string, unknown>).readLimit)
    && ((value as Record<string, unknown>).maxNewTokens === undefined || isCount((value as Record<string, unknown>).maxNewTokens));
  switch (m.type) {
    case 'load':
      if (!isId(m.id)) return 'load: id must be a non-negative integer';
      if (typeof m.modelDir !== 'string' || m.modelDir === '') return 'load: modelDir must be a non-empty string';
      if (!DEVICES.includes(m.device as Device)) return `load: device must be one of ${DEVICES.join(', ')}`;
      if (!isCount(m.threads)) return 'load: threads must be a non-negative integer (0 = automatic)';
      return undefined;
    case 'generate': {
      if (!isId(m.id)) return 'generate: id must be a non-negative integer';
      if (typeof m.prompt !== 'string') return 'generate: prompt must be a string';
      const p = m.params as Record<string, unknown> | undefined;
      if (typeof p !== 'object' || p === null) return 'generate: params missing';
      if (!isCount(p.maxNewTokens) || !isNumber(p.temperature) || !isCount(p.topK) || !isNumber(p.topP) || !isCount(p.seed)) {
        return 'generate: params need maxNewTokens, temperature, topK, topP and seed as numbers';
      }
      if (!Array.isArray(p.stop) || !p.stop.every((s) => typeof s === 'string')) return 'generate: params.stop must be an array of strings';
      if (typeof p.speculative !== 'boolean') return 'generate: params.speculative must be a boolean';
      if (p.quick !== undefined && !isQuickPrompt(p.quick)) return 'generate: params.quick must be { prompt: string, readLimit: non-negative integer, maxNewTokens?: non-negative integer } when given';
      if (m.sequence !== undefined && !isSequence(m.sequence)) return 'generate: sequence must be a non-empty string when given';
      return undefined;
    }
    case 'prefill':
      if (!isId(m.id)) return 'prefill: id must be a non-negative integer';
      if (!isSequence(m.sequence)) return 'prefill: sequence must be a non-empty string';
      if (typeof m.prompt !== 'string') return 'prefill: prompt must be a string';
      if (!isCount(m.maxNewTokens)) return 'prefill: maxNewTokens must be a non-negative integer';
      if (m.quick !== undefined && !isQuickPrompt(m.quick)) return 'prefill: quick must be { prompt: string, readLimit: non-negative integer, maxNewTokens?: non-negative integer } when given';
      if (m.nextOnly !== undefined && typeof m.nextOnly !== 'boolean') return 'prefill: nextOnly must be a boolean when given';
      return undefined;
    case 'configure':
      return Number.isSafeInteger(m.cacheBytes) && (m.cacheBytes as number) >= 0 ? undefined : 'configure: cacheBytes must be a non-negative integer';
    case 'cancel':
      return isId(m.id) ? undefined : 'cancel: id must be a non-negative integer';
    case 'shutdown':
      return undefined;
    default:
      return `unknown message type ${JSON.stringify(m.type)}`;
  }
}
