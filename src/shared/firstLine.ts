/**
 * When a suggestion's first line is complete: non-blank text, then a line break. The completion pipeline shows a
 * suggestion's first line from then on, and the engine ends an answer from a quick prompt there (finish reason
 * `line`): one rule for both sides of the wire.
 */
export function holdsCompleteLine(text: string): boolean {
  return /\S[^\n]*\n/.test(text);
}
