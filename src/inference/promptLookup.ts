/**
 * Prompt-lookup drafting for speculative decoding: code repeats itself (names, call patterns, the lines being
 * edited), so the tokens that followed the latest n-gram's previous occurrence are a cheap, often correct
 * guess of what comes next. The guess is verified by the model in one forward pass.
 */

/** Up to `maxDraft` tokens that followed the most recent earlier occurrence of the sequence's last n-gram. */
export function draftFromContext(tokens: readonly number[], maxDraft: number, maxNgram = 3, minNgram = 1): number[] {
  for (let n = Math.min(maxNgram, tokens.length - 1); n >= minNgram; n--) {
    const tail = tokens.length - n;
    for (let start = tail - 1; start >= 0; start--) {
      let match = true;
      for (let i = 0; i < n; i++) {
        if (tokens[start + i] !== tokens[tail + i]) {
          match = false;
          break;
        }
      }
      if (match) {
        const from = start + n;
        return tokens.slice(from, Math.min(from + maxDraft, tail + n));
      }
    }
  }
  return [];
}
