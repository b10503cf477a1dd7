/**
 * Picks the next token from a row of logits: greedy when temperature is 0, otherwise temperature, then top-k,
 * then top-p (nucleus) filtering, drawing from a seeded generator so a request with a seed is reproducible.
 */
import { mulberry32 } from '../util/rng';
import type { SamplingParams } from '../shared/engineTypes';

export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, seed: 0 };

export function argmax(logits: Float32Array, offset = 0, length = logits.length - offset): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < length; i++) {
    if (logits[offset + i] > bestValue) {
      bestValue = logits[offset + i];
      best = i;
    }
  }
  return best;
}

/** The gap between the highest and the second-highest logit of a row. */
export function topTwoGap(logits: Float32Array, offset = 0, length = logits.length - offset): number {
  let first = -Infinity;
  let second = -Infinity;
  for (let i = 0; i < length; i++) {
    const value = logits[offset + i];
    if (value > first) {
      second = first;
      first = value;
    } else if (value > second) {
      second = value;
    }
  }
  return first - second;
}

/** The standard deviation of a row's logits: the scale they, and their rounding errors, live at (whatever their offset). */
export function standardDeviation(logits: Float32Array, offset = 0, length = logits.length - offset): number {
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < length; i++) {
    sum += logits[offset + i];
    squares += logits[offset + i] * logits[offset + i];
  }
  const mean = sum / length;
  return Math.sqrt(Math.max(0, squares / length - mean * mean));
}

export class Sampler {
  private readonly random: () => number;

  constructor(readonly params: SamplingParams) {
    this.random = mulberry32(params.seed);
  }

  get greedy(): boolean {
    return this.params.temperature <= 0 || this.params.topK === 1;
  }

  /** Samples from logits[offset, offset + length) (one row of a [seq, vocab] output). */
  sample(logits: Float32Array, offset = 0, length = logits.length - offset): number {
    if (this.greedy) return argmax(logits, offset, length);
    const { temperature, topK, topP } = this.params;
    // Candidates sorted by logit, cut to top-k; the full sort is skipped for the common small-k case.
    let candidates = Array.from({ length }, (_, i) => i);
    const k = topK > 0 ? Math.min(topK, length) : length;
    candidates.sort((a, b) => logits[offset + b] - logits[offset + a]);
    candidates = candidates.slice(0, k);
    const max = logits[offset + candidates[0]];
    const weights = candidates.map((id) => Math.exp((logits[offset + id] - max) / temperature));
    const total = weights.reduce((a, b) => a + b, 0);
    let kept = candidates.length;
    if (topP < 1) {
      let cumulative = 0;
      for (let i = 0; i < candidates.length; i++) {
        cumulative += weights[i] / total;
        if (cumulative >= topP) {
          kept = i + 1;
          break;
        }
      }
    }
    const keptTotal = weights.slice(0, kept).reduce((a, b) => a + b, 0);
    let r = this.random() * keptTotal;
    for (let i = 0; i < kept; i++) {
      r -= weights[i];
      if (r < 0) return candidates[i];
    }
    return candidates[kept - 1];
  }
}
