/**
 * The one estimate of a text's length in the model's tokens that completions use without the tokenizer (the host
 * has none; the worker counts exactly and keeps a prompt's tail if it is still too long): the prompt's budget, the
 * window's step and the quick prompt's size in the extension, and the same figures in the eval (bench/eval/) and
 * the in-editor test's expected suggestions (test/integration/).
 *
 * Uses no runtime import of 'vscode'.
 */

/** Code is roughly this many characters per token (phi-1.5's tokenizer on Python: 3–4; the lower end keeps prompts within budget). */
export const CHARS_PER_TOKEN = 3;

/** `text`'s length in tokens at CHARS_PER_TOKEN, rounded up. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}
