/**
 * Finds stop sequences in streamed text, across token boundaries: text that could still turn out to be the
 * start of a stop sequence is held back until it is clearly not one.
 */
export class StopMatcher {
  private text = '';
  private released = 0;

  constructor(private readonly stops: readonly string[]) {}

  /**
   * Adds streamed text. Returns the text that is now safe to show and whether a stop sequence was reached
   * (the stop sequence itself and everything after it are never released).
   */
  push(piece: string): { text: string; stopped: boolean } {
    this.text += piece;
    let stopAt = -1;
    for (const stop of this.stops) {
      if (stop === '') continue;
      const at = this.text.indexOf(stop, Math.max(0, this.released - stop.length + 1));
      if (at >= 0 && (stopAt < 0 || at < stopAt)) stopAt = at;
    }
    if (stopAt >= 0) return { text: this.release(stopAt), stopped: true };
    return { text: this.release(this.text.length - this.heldBack()), stopped: false };
  }

  /** Everything not yet released (at the end of generation, a partial stop sequence is just text). */
  flush(): string {
    return this.release(this.text.length);
  }

  /** Length of the longest suffix of the text that is a proper prefix of some stop sequence. */
  private heldBack(): number {
    let longest = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, this.text.length - this.released); n > longest; n--) {
        if (this.text.endsWith(stop.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }

  private release(end: number): string {
    const out = end > this.released ? this.text.slice(this.released, end) : '';
    this.released = Math.max(this.released, end);
    return out;
  }
}
