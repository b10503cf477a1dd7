import { newUtf8Decoder, type PhiTokenizer } from './tokenizer';

/**
 * Turns generated token ids into text as they arrive. A UTF-8 character whose bytes span several tokens
 * (emoji, most CJK) is held back until its last byte arrives, so no chunk ever carries half a character.
 */
export class StreamingDetokenizer {
  private readonly tokenizer: PhiTokenizer;
  private decoder = newUtf8Decoder();

  constructor(tokenizer: PhiTokenizer) {
    this.tokenizer = tokenizer;
  }

  /** The text completed by token `id` ('' while a character is still partial). */
  push(id: number): string {
    return this.decoder.decode(this.tokenizer.tokenBytes(id), { stream: true });
  }

  /** Ends the stream: returns what is left (an incomplete trailing character as U+FFFD) and starts afresh. */
  flush(): string {
    return this.decoder.decode();
  }

  /** Drops any held-back bytes and starts afresh. */
  reset(): void {
    this.decoder = newUtf8Decoder();
  }
}
