/** float32 values, or float16 bit patterns. */
export type KvDtype = 'float32' | 'float16';
export type KvArray = Float32Array | Uint16Array;

/** Capacity grows in steps of this many positions, so growing (which copies) is rare. */
const GROWTH_STEP = 128;

/**
 * The decoder's key/value cache. For every layer, keys and values live in one preallocated buffer each,
 * [1, heads, capacity, headDim], handed to ONNX Runtime as `past_key_values.*` without a copy; the first
 * `length` positions are filled and the rest are masked out by the attention mask. New rows returned by the
 * graph are appended in place, so a decode step copies only the new token's rows, whatever the context.
 */
export class KvCache {
  private keys: KvArray[] = [];
  private values: KvArray[] = [];
  private filled = 0;
  private slots = 0;

  constructor(
    readonly layers: number,
    readonly heads: number,
    readonly headDim: number,
    readonly maxLength: number,
    readonly dtype: KvDtype = 'float32',
  ) {
    this.allocate(0);
  }

  /** Number of token positions cached. */
  get length(): number {
    return this.filled;
  }

  /** Positions the buffers hold (filled or not). */
  get capacity(): number {
    return this.slots;
  }

  /** Layer's key buffer, [1, heads, capacity, headDim]. */
  key(layer: number): KvArray {
    return this.keys[layer];
  }

  /** Layer's value buffer, [1, heads, capacity, headDim]. */
  value(layer: number): KvArray {
    return this.values[layer];
  }

  /** Makes room for `rows` more positions. */
  reserve(rows: number): void {
    const needed = this.filled + rows;
    if (needed > this.maxLength) throw new RangeError(`KvCache: ${needed} positions exceed the model's ${this.maxLength}`);
    if (needed <= this.slots) return;
    this.allocate(Math.min(this.maxLength, Math.ceil(needed / GROWTH_STEP) * GROWTH_STEP));
  }

  /** Appends `rows` positions; keys[l]/values[l] are layer l's new rows, [1, heads, rows, headDim]. */
  append(keys: readonly KvArray[], values: readonly KvArray[], rows: number): void {
    this.reserve(rows);
    const rowElements = rows * this.headDim;
    for (let layer = 0; layer < this.layers; layer++) {
      if (keys[layer].length !== this.heads * rowElements || values[layer].length !== this.heads * rowElements) {
        throw new Error(`KvCache.append: layer ${layer} rows are not [1, ${this.heads}, ${rows}, ${this.headDim}]`);
      }
      for (let head = 0; head < this.heads; head++) {
        const to = (head * this.slots + this.filled) * this.headDim;
        this.keys[layer].set(keys[layer].subarray(head * rowElements, (head + 1) * rowElements), to);
        this.values[layer].set(values[layer].subarray(head * rowElements, (head + 1) * rowElements), to);
      }
    }
    this.filled += rows;
  }

  /** Forgets every position from `n` on (the rows stay, masked, and are overwritten by the next append). */
  rewindTo(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.filled) throw new RangeError(`KvCache.rewindTo(${n}): cache holds ${this.filled} positions`);
    this.filled = n;
  }

  dispose(): void {
    this.keys = [];
    this.values = [];
    this.filled = 0;
    this.slots = 0;
  }

  /** Moves to buffers of `slots` positions, keeping the filled rows of every head. */
  private allocate(slots: number): void {
    const resize = (old: KvArray | undefined): KvArray => {
      const next = this.dtype === 'float16' ? new Uint16Array(this.heads * slots * this.headDim) : new Float32Array(this.heads * slots * this.headDim);
      if (old) {
        for (let head = 0; head < this.heads; head++) {
          const from = head * this.slots * this.headDim;
          next.set(old.subarray(from, from + this.filled * this.headDim), head * slots * this.headDim);
        }
      }
      return next;
    };
    this.keys = Array.from({ length: this.layers }, (_, l) => resize(this.keys[l]));
    this.values = Array.from({ length: this.layers }, (_, l) => resize(this.values[l]));
    this.slots = slots;
  }
}
