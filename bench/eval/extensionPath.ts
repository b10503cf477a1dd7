/**
 * What the extension does around the engine for one inline completion, outside VS Code: the completion pipeline's
 * stages (src/completion/pipeline.ts): the prompt as the provider and the warmer build it (completionPromptAt), the
 * stop sequences it asks for, and its post-processing (shapeSuggestion).
 */
import { shapeSuggestion } from '../../src/completion/pipeline';
import { COMPLETION_STOPS } from '../../src/completion/postprocess';
import { completionPromptAt } from '../../src/completion/requestPrompts';
import { TextDocumentModel } from '../../test/support/textDocument';
import type { Settings } from '../../src/settings/settings';
import type { Cursor } from './cursors';


export interface PromptOptions {
  /** The provider's settings (contextTokens is the budget). */
  readonly settings: Settings;
  /**
   * false: the prompt builder's path for languages other than Python, which never keeps the file's header in front
   * of a window (the "header kept or not" comparison). Post-processing stays Python's either way.
   */
  readonly keepHeader?: boolean;
}

/** The prompt the provider sends for a cursor, the document being the cursor's prefix and suffix. */
export function promptFor(cursor: Cursor, options: PromptOptions): string {
  const document = new TextDocumentModel(cursor.prefix + cursor.suffix, options.keepHeader === false ? 'python-without-header' : 'python', cursor.file);
  return completionPromptAt(document, document.positionAt(cursor.prefix.length), options.settings).prompt;
}

/** The model's raw text cut before its first stop sequence, as the engine's StopMatcher cuts a stream. */
export function cutAtStops(raw: string): string {
  let end = raw.length;
  for (const stop of COMPLETION_STOPS) {
    const at = raw.indexOf(stop);
    if (at >= 0) end = Math.min(end, at);
  }
  return raw.slice(0, end);
}

/** The suggestion the provider shows for the model's raw text ('' for none). */
export function suggestionFor(cursor: Cursor, raw: string): string {
  return shapeSuggestion(raw, { prefix: cursor.prefix, suffix: cursor.suffix, eol: '\n', languageId: 'python' });
}
