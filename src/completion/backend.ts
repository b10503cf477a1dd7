/**
 * What the completion pipeline (./pipeline.ts) asks for tokens: a backend. The extension's is the worker process
 * (WorkerClient, src/client/workerClient.ts, satisfies the interface as it is); inProcessBackend runs the engine in
 * the caller's process (the unit tests, the in-editor test's expected suggestions); ServerBackend
 * (src/server/serverBackend.ts) asks llama-server or an OpenAI-compatible server; BackendRouter (src/server/
 * backendRouter.ts) picks between the worker and the server by phiComplete.backend. Each streams text deltas,
 * honours the abort signal, and answers with the text, why it ended and its stats.
 *
 * Uses no runtime import of 'vscode'.
 */
import type { Generator } from '../inference/generator';
import type { FinishReason, GenerationParams, GenerationStats } from '../protocol';

/** A backend's answer to one request. */
export interface BackendAnswer {
  /** All the text generated (cut before a stop sequence). */
  readonly text: string;
  readonly finishReason: FinishReason;
  readonly stats: GenerationStats;
}

export interface CompletionBackend {
  /**
   * Generates from `prompt` (or `params.quick`'s prompt, where the backend would take long to read `prompt`),
   * streaming the text to `onDelta`; resolves 'cancelled' once `signal` aborts (or a newer request took over).
   * `sequence` names the cache the request reads and extends (the document's URI). Rejects when the backend
   * failed; with an error whose `code` is 'disposed' when it was shut down on purpose.
   */
  generate(prompt: string, params: GenerationParams, onDelta: (text: string) => void, signal: AbortSignal, sequence: string): Promise<BackendAnswer>;
}

/** The engine in this process as a backend (what the worker runs for a `generate` message). */
export function inProcessBackend(generator: Pick<Generator, 'generate'>): CompletionBackend {
  return {
    generate: (prompt, params, onDelta, signal, sequence) => generator.generate({
      prompt,
      maxNewTokens: params.maxNewTokens,
      sampling: { temperature: params.temperature, topK: params.topK, topP: params.topP, seed: params.seed },
      stop: params.stop,
      speculative: params.speculative,
      quick: params.quick,
      onText: onDelta,
      signal,
      sequence,
    }),
  };
}
