/**
 * Verify Model while phiComplete.backend is `server`: the server completes VERIFY_PROMPT now — even within the quiet
 * time after a failure, since the user asked — and the user is told what it answered, from where and how fast. A
 * failure is told by the server's notices (its message, Open Settings, Use the local model), again even where that
 * kind was told before.
 *
 * Plain Node: the server, the notices and the notification are given to it.
 */
import type { BackendAnswer, CompletionBackend } from '../completion/backend';
import { VERIFY_PARAMS, VERIFY_PROMPT, verifyReport } from '../shared/verifyPrompt';
import { ServerError } from './serverError';

/** The cache Verify Model's request reads on the server (not a document's). */
export const VERIFY_SEQUENCE = 'verify';

export interface ServerCheckParts {
  readonly server: CompletionBackend & { forgetFailure(): void };
  readonly notices: { reset(): void };
  /** The server's host, as the status bar names it. */
  readonly host: string;
  readonly tell: (severity: 'info' | 'warning', message: string) => void;
  readonly log: (line: string) => void;
}

/** Resolves to the report, or undefined when the server failed (told by the notices). */
export async function verifyServer(parts: ServerCheckParts): Promise<string | undefined> {
  parts.server.forgetFailure();
  parts.notices.reset();
  let answer: BackendAnswer;
  try {
    answer = await parts.server.generate(VERIFY_PROMPT, VERIFY_PARAMS, () => undefined, new AbortController().signal, VERIFY_SEQUENCE);
  } catch (error) {
    if (!(error instanceof ServerError)) throw error;
    parts.log(`verify server: ${error.message}`);
    return undefined;
  }
  const { sane, report } = verifyReport(`the server at ${parts.host}`, '', answer.text, answer.stats);
  parts.log(`verify server: ${report}`);
  parts.tell(sane ? 'info' : 'warning', `phi-complete: ${report}${sane ? '' : '. Check the model it serves (phiComplete.server.model, or the model llama-server loaded).'}`);
  return report;
}
