/** Measures of how far one set of logits is from another, for the fidelity and device tests. */
import assert from 'node:assert/strict';

/** ‖actual − expected‖ / ‖expected‖ over all logits. */
export function relativeRmsError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let squaredError = 0;
  let squared = 0;
  for (let i = 0; i < expected.length; i++) {
    squaredError += (actual[i] - expected[i]) ** 2;
    squared += expected[i] ** 2;
  }
  return Math.sqrt(squaredError / squared);
}

/** The highest logit's index in each row of `vocab` logits (written here, apart from the sampler's). */
export function argmaxRows(logits: Float32Array, vocab: number): number[] {
  const rows: number[] = [];
  for (let t = 0; t < logits.length / vocab; t++) {
    let best = 0;
    for (let v = 1; v < vocab; v++) if (logits[t * vocab + v] > logits[t * vocab + best]) best = v;
    rows.push(best);
  }
  return rows;
}
