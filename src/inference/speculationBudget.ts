/**
 * Whether prompt-lookup drafts are paying for themselves on this model and machine. A verify pass costs more
 * than a plain step (more rows, and near-tied rows recomputed alone) and gains only the drafted tokens the model
 * accepts, so the engine measures both and pauses drafting while verify passes yield fewer tokens per
 * millisecond than plain steps, then tries again. Output is the same either way; only speed depends on it.
 */

/** Weight of the newest pass in the running averages. */
const SMOOTHING = 0.2;
/** Verify passes measured before drafting may be paused. */
const MIN_VERIFY_PASSES = 6;
/** Plain steps to run after a pause starts, before drafting is tried again; doubled for each pause in a row. */
const PAUSE_STEPS = 48;
/** At most PAUSE_STEPS · 2^MAX_DOUBLINGS plain steps between tries. */
const MAX_DOUBLINGS = 4;

export class SpeculationBudget {
  private plainMs = 0;
  private verifyMs = 0;
  private verifyTokens = 0;
  private verifyPasses = 0;
  private pausedFor = 0;
  /** Pauses since drafting last paid off: each try that loses again waits twice as long. */
  private pausesInARow = 0;

  /** Whether the next step may carry a draft. */
  get drafting(): boolean {
    return this.pausedFor === 0;
  }

  /** A step without a draft took `ms`. */
  recordPlain(ms: number): void {
    this.plainMs = this.plainMs === 0 ? ms : this.plainMs + SMOOTHING * (ms - this.plainMs);
    if (this.pausedFor > 0) this.pausedFor--;
  }

  /** A verify pass (with any recomputed row) took `ms` and produced `tokens` tokens (1 + accepted drafts). */
  recordVerify(ms: number, tokens: number): void {
    const first = this.verifyPasses === 0;
    this.verifyMs = first ? ms : this.verifyMs + SMOOTHING * (ms - this.verifyMs);
    this.verifyTokens = first ? tokens : this.verifyTokens + SMOOTHING * (tokens - this.verifyTokens);
    this.verifyPasses++;
    if (this.verifyPasses < MIN_VERIFY_PASSES || this.plainMs === 0) return;
    if (this.speedup >= 1) {
      this.pausesInARow = 0;
      return;
    }
    this.pausedFor = PAUSE_STEPS * 2 ** Math.min(this.pausesInARow, MAX_DOUBLINGS);
    this.pausesInARow++;
    // Keep the averages, but let the next try be judged on new passes too before pausing again.
    this.verifyPasses = MIN_VERIFY_PASSES - 2;
  }

  /** Tokens per millisecond of verify passes over those of plain steps (0 until both were measured). */
  get speedup(): number {
    return this.plainMs > 0 && this.verifyMs > 0 ? (this.verifyTokens / this.verifyMs) * this.plainMs : 0;
  }
}
