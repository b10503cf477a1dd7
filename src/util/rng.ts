/**
 * Seeded random numbers for weight initialisation. Every tensor gets its own stream, derived from the
 * seed and the tensor's name, so a tensor's values do not depend on the order tensors are generated in.
 */

/** FNV-1a over the string, mixed with the seed: a 32-bit stream id. */
function streamSeed(seed: number, name: string): number {
  let hash = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** mulberry32: small, fast, good enough for weights; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` values uniform in [mean - std·√3, mean + std·√3): the given mean and standard deviation. */
export function seededUniform(seed: number, name: string, count: number, mean: number, std: number): Float32Array {
  const next = mulberry32(streamSeed(seed, name));
  const halfWidth = std * Math.sqrt(3);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = mean + (2 * next() - 1) * halfWidth;
  return out;
}
